"""A benchmark anyone can rerun (issue 8): what the four scripts cost in requests, time and memory.

Their work is network-bound: almost all of a run is waiting for the proxy. So what counts is how
many requests a script makes, and how well --workers overlaps their latency. Each run starts the
stand-in in-process with a fixed latency per request, seeds it directly (no HTTP) with N users in
20 teams, each with one key, runs one script as a subprocess, as a user does, and reports:

- the requests made, by endpoint (StandIn.counts()), beside the fewest the API allows:

      pages(x) = max(1, ceil(x / 100))        (one page even when there is nothing: it says so)
      minimum  = pages(users on the proxy)                 /user/list
               + 1                                         /team/list, where the script needs teams:
                                                           add, sync; list only for team_name or --team
               + pages(keys on the proxy)                  /key/list, where key names are checked
               + 1 per user created                        /user/new (joins its one team and gets its key)
               + 1 per role change                         /user/update
               + ceil(joins / 100) per team joined         /team/member_add
               + 1 per team left                           /team/member_delete
               + ceil(deletions / 100)                     /user/delete

  The scripts may also ask the proxy's release once (/health/readiness/details): the first time
  two writes to one team would overlap, since releases before 1.100 lose members when they do.
  That request is shown apart ("release"), not counted as made;
- the wall time beside the ideal, minimum x latency / workers, and their ratio;
- the script process's peak memory (its own max RSS).

    python -m tests.benchmark                          # N = 1,000 and 10,000 at 1, 4 and 8 workers
    python -m tests.benchmark --sizes 1000 --workers 8
    python -m tests.benchmark --memory                 # N = 100,000: list_user.py, sync_user.py --dry-run
    LITELLM_TEST_BASE_URL=... LITELLM_TEST_MASTER_KEY=... python -m tests.benchmark --real

--real compares add_user.py and del_user.py on a real proxy with a minimal client (plain
requests, same worker count) doing the same work, and checks that no team membership was lost.
Both scripts first list every user on the proxy, so list_user.py is timed beside them.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from litellm_client import BULK_SIZE as BULK
from litellm_client import LiteLLMClient, Release
from tests.standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
PAGE = 100  # users or keys per listing page, ids per /user/delete, members per /team/member_add
TEAMS = 20
RELEASES = ("/health/readiness/details", "/health/readiness")
MEMORY_USERS = 100_000
MEMORY_TARGET_MB = 300
DEFAULT_WORKERS = 4  # the scripts' default
REFERENCE = {  # litellm-api.md, "Measured speed": a real 1.108.7 on 2 shared cores
    "add": "15/s (1 client) to 22/s (2-8 clients)",
    "delete": "220/s",
}


def pages(count: int) -> int:
    return max(1, math.ceil(count / PAGE))


def minimum_requests(
    users: int,
    *,
    release: str = "1.108.7",
    writes: bool = False,
    teams: bool = False,
    keys: int | None = None,
    key_lookups: int = 0,
    created: int = 0,
    role_changes: int = 0,
    joins: Iterable[int] = (),
    leaves: int = 0,
    deleted: int = 0,
) -> Counter[str]:
    """The fewest requests, by endpoint, that the API allows for a run (the formula above).
    writes: the run takes the proxy's lease (its listing of teams is the run's); keys: how many
    keys the proxy holds, where they are all listed; key_lookups: users whose keys are listed one
    by one (for the undo file); joins: new members per team."""
    need = {
        "/user/list": pages(users),
        "/team/list": int(teams or writes),
        "/team/new": int(writes),
        "/team/delete": int(writes),
        "/key/list": (pages(keys) if keys is not None else 0) + key_lookups,
        "/team/member_add": sum(math.ceil(count / PAGE) for count in joins),
        "/team/member_delete": leaves,
    }
    able = Release(tuple(int(part) for part in release.split(".")))
    if able.bulk_users:
        need |= {
            "/management/v1/users/bulk": math.ceil(created / BULK),
            "/management/v1/users/bulk_delete": math.ceil(deleted / BULK),
        }
    else:
        need |= {"/user/new": created, "/user/delete": math.ceil(deleted / PAGE)}
    need |= (
        {"/user/bulk_update": math.ceil(role_changes / BULK)}
        if able.bulk_user_update
        else {"/user/update": role_changes}
    )
    return Counter({path: count for path, count in need.items() if count})


# -- the proxy's state and each script's work ------------------------------------------------


def email(n: int) -> str:
    return f"user{n}@example.com"


def team(n: int) -> str:
    """The team of seeded user n."""
    return f"team{n % TEAMS:02d}"


def seed(standin: StandIn, n: int) -> None:
    """N managed users, user n in team(n) with one key, as on a proxy in use. Creating the first
    team adds default_user_id, as a real proxy does: the proxy then has N + 1 users."""
    team_ids = [standin.seed_team(team(t)) for t in range(TEAMS)]
    for i in range(n):
        standin.seed_user(email(i), "internal_user", teams=(team_ids[i % TEAMS],), keys=1)


@dataclass(frozen=True)
class Case:
    """One script run on a seeded proxy: its arguments and the fewest requests its work needs."""

    script: str
    args: list[str]
    minimum: Counter[str]


def write_csv(path: Path, header: str, lines: Iterable[str]) -> None:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")


def add_case(standin: StandIn, n: int, workdir: Path) -> Case:
    """N new users, each with a key name and one of the 20 teams, in no particular order."""
    pick = random.Random(n)
    rows = (f"new{i}@example.com,internal_user,{team(pick.randrange(TEAMS))},key-new{i}" for i in range(n))
    write_csv(workdir / "add.csv", "email,role,team_name,key_name", rows)
    need = minimum_requests(len(standin.users), writes=True, keys=len(standin.keys), created=n)
    return Case("add_user.py", ["--csv-file", "add.csv"], need)


def list_case(standin: StandIn, n: int, workdir: Path) -> Case:  # noqa: ARG001 (one signature for all cases)
    """Every user, default columns and format: team ids, no team names, so no need for /team/list."""
    return Case("list_user.py", [], minimum_requests(len(standin.users)))


def del_case(standin: StandIn, n: int, workdir: Path) -> Case:
    write_csv(workdir / "del.csv", "email", (email(i) for i in range(n)))
    need = minimum_requests(len(standin.users), writes=True, keys=len(standin.keys), deleted=n)
    return Case("del_user.py", ["--csv-file", "del.csv"], need)


def sync_case(standin: StandIn, n: int, workdir: Path, *, drift: float = 0.01, dry_run: bool = False) -> Case:
    """The seeded users with `drift` of them changed: a third added, a third updated (role or
    team, in turn), a third deleted (left out of the file)."""
    changes = round(n * drift)
    adds = deletes = changes // 3
    pick = random.Random(n)
    chosen = pick.sample(range(n), changes - adds)
    deleted, updated = set(chosen[:deletes]), chosen[deletes:]
    promoted, moved = set(updated[::2]), set(updated[1::2])
    rows = {i: f"{email(i)},internal_user,{team(i)}" for i in range(n) if i not in deleted}
    rows |= {i: f"{email(i)},proxy_admin,{team(i)}" for i in promoted}
    rows |= {i: f"{email(i)},internal_user,{team(i + 1)}" for i in moved}
    added = [f"new{i}@example.com,internal_user,{team(pick.randrange(TEAMS))}" for i in range(adds)]
    write_csv(workdir / "sync.csv", "email,role,team_name", [*rows.values(), *added])
    if dry_run:
        need = minimum_requests(len(standin.users), teams=True)
        return Case("sync_user.py", ["--csv-file", "sync.csv", "--dry-run"], need)
    need = minimum_requests(
        len(standin.users),
        writes=True,
        key_lookups=deletes,
        created=adds,
        role_changes=len(promoted),
        joins=Counter(team(i + 1) for i in moved).values(),
        leaves=len(moved),
        deleted=deletes,
    )
    return Case("sync_user.py", ["--csv-file", "sync.csv"], need)


CASES: dict[str, Callable[[StandIn, int, Path], Case]] = {
    "add_user.py": add_case,
    "list_user.py": list_case,
    "sync_user.py": sync_case,
    "del_user.py": del_case,
}


# -- running and reporting ---------------------------------------------------------------------


# Linux gives a child the max RSS of the process it was forked from, and this process holds the
# stand-in's users: so a small launcher starts each script and reports the script's own wall time
# and peak memory (ru_maxrss, KiB).
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.perf_counter() - started} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_script(script: str, args: list[str], *, cwd: Path, url: str = "", master_key: str = "") -> tuple[float, float]:
    """Run a script as a user does, in its own process with the proxy in its environment.
    Returns its wall time in seconds and its peak memory (max RSS) in MB."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LITELLM_")}
    env |= {"LITELLM_BASE_URL": url, "LITELLM_MASTER_KEY": master_key}
    command = [sys.executable, "-c", LAUNCHER, "measured.txt", sys.executable, str(ROOT / script), *args]
    with (cwd / "stdout.txt").open("w") as out, (cwd / "stderr.txt").open("w") as err:
        done = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=err, check=False)
    if done.returncode:
        problem = (cwd / "stderr.txt").read_text()[-2000:]
        raise SystemExit(f"{script} {' '.join(args)} exited {done.returncode}:\n{problem}")
    seconds, max_rss = (cwd / "measured.txt").read_text().split()
    return float(seconds), int(max_rss) / 1024


@dataclass(frozen=True)
class Row:
    case: Case
    n: int
    workers: int
    made: Counter[str]  # by endpoint, without the release look-up
    release: int  # /health/readiness/details requests
    seconds: float
    ideal: float
    peak_mb: float

    @property
    def over(self) -> float:
        """Requests made above the minimum, as a share of it."""
        return sum(self.made.values()) / sum(self.case.minimum.values()) - 1


def measure(standin: StandIn, case: Case, n: int, workers: int, workdir: Path) -> Row:
    standin.reset_log()
    seconds, peak_mb = run_script(
        case.script,
        [*case.args, "--workers", str(workers)],
        cwd=workdir,
        url=standin.url,
        master_key=standin.master_key,
    )
    made = standin.counts()
    release = sum(made.pop(path, 0) for path in RELEASES)
    ideal = sum(case.minimum.values()) * standin.latency / workers
    return Row(case, n, workers, made, release, seconds, ideal, peak_mb)


def by_endpoint(counts: Counter[str]) -> str:
    return ", ".join(f"{path.lstrip('/')} {count}" for path, count in counts.items())


def extra(row: Row) -> str:
    diff = Counter(row.made)
    diff.subtract(row.case.minimum)
    parts = [f"{count:+d} {path.lstrip('/')}" for path, count in diff.items() if count]
    return f"{', '.join(parts)} ({row.over:+.1%})" if parts else "0"


def print_table(rows: list[Row]) -> None:
    print(
        "| script | N | workers | requests made, by endpoint | made | minimum | above minimum | release "
        "| wall s | ideal s | wall/ideal | peak MB |"
    )
    print("|---|--:|--:|---|--:|--:|---|--:|--:|--:|--:|--:|")
    for r in rows:
        ratio = f"{r.seconds / r.ideal:.2f}" if r.ideal else "-"
        print(
            f"| {r.case.script} | {r.n:,} | {r.workers} | {by_endpoint(r.made)} | {sum(r.made.values()):,} "
            f"| {sum(r.case.minimum.values()):,} | {extra(r)} | {r.release} | {r.seconds:.2f} | {r.ideal:.2f} "
            f"| {ratio} | {r.peak_mb:.0f} |"
        )


def startup_seconds() -> float:
    """What every run pays before its first request: the interpreter and the scripts' imports."""
    with tempfile.TemporaryDirectory() as tmp:
        return min(run_script("list_user.py", ["--version"], cwd=Path(tmp))[0] for _ in range(3))


def print_notes(latency: float) -> None:
    print(
        f"\nLatency {latency * 1000:g} ms per request; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}. "
        f"Process start-up (python list_user.py --version, best of 3): {startup_seconds():.2f} s, in every wall time."
    )
    print(
        "release: /health/readiness/details, asked once when two writes to one team would first overlap "
        "(releases before 1.100 lose members then); not counted in 'made'."
    )


def stand_in_benchmark(sizes: list[int], workers: list[int], latency: float) -> None:
    rows = []
    for n in sizes:
        for make_case in CASES.values():
            for count in workers:
                with StandIn(latency=latency) as standin, tempfile.TemporaryDirectory() as tmp:
                    seed(standin, n)
                    case = make_case(standin, n, Path(tmp))
                    rows.append(measure(standin, case, n, count, Path(tmp)))
                    print(f"done: {case.script} N={n:,} workers={count}", file=sys.stderr, flush=True)
    print_table(rows)
    print_notes(latency)


def memory_benchmark(latency: float) -> None:
    """list_user.py and sync_user.py --dry-run (with a file matching every user) on 100,000 users."""
    with StandIn(latency=latency) as standin, tempfile.TemporaryDirectory() as tmp:
        seed(standin, MEMORY_USERS)
        cases = [
            list_case(standin, MEMORY_USERS, Path(tmp)),
            sync_case(standin, MEMORY_USERS, Path(tmp), drift=0, dry_run=True),
        ]
        rows = [measure(standin, case, MEMORY_USERS, DEFAULT_WORKERS, Path(tmp)) for case in cases]
    print_table(rows)
    for row in rows:
        verdict = "met" if row.peak_mb < MEMORY_TARGET_MB else "MISSED"
        print(f"{row.case.script}: peak {row.peak_mb:.0f} MB, target under {MEMORY_TARGET_MB} MB: {verdict}")
    print_notes(latency)


# -- a real proxy --------------------------------------------------------------------------------


class RealProxy:
    """The real proxy named by LITELLM_TEST_BASE_URL / LITELLM_TEST_MASTER_KEY, through plain requests:
    the minimal client the scripts are measured against."""

    def __init__(self, url: str, master_key: str, workers: int):
        self.url = url.rstrip("/")
        self.master_key = master_key
        self.workers = workers
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {master_key}"

    def post(self, path: str, body: Mapping[str, object]) -> dict[str, object]:
        answer = self.session.post(self.url + path, json=body, timeout=120)
        answer.raise_for_status()
        return answer.json()

    def create_team(self, alias: str) -> str:
        return str(self.post("/team/new", {"team_alias": alias})["team_id"])

    def create_users(self, emails: list[str], team_id: str) -> list[str]:
        """The minimal client: one /user/new per user, with key, key alias and team, in parallel."""

        def create(address: str) -> str:
            body = {"user_email": address, "user_role": "internal_user", "key_alias": address, "team_id": team_id}
            return str(self.post("/user/new", body)["user_id"])

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(create, emails))

    def add_fillers(self, emails: list[str]) -> None:
        """Users without key or team, put back in place of those just deleted: both deleters must
        first list every user on the proxy, so both should find as many there."""
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda e: self.post("/user/new", {"user_email": e, "auto_create_key": False}), emails))

    def delete_users(self, emails: list[str]) -> None:
        """The minimal client, doing the calls del_user.py must: find the users' ids in one listing of
        the proxy (pages of 100, read in parallel), then /user/delete with 100 ids a request, in parallel."""

        def page(number: int) -> dict[str, object]:
            params: dict[str, str | int] = {
                "page": number,
                "page_size": PAGE,
                "sort_by": "user_id",
                "sort_order": "asc",
            }
            answer = self.session.get(f"{self.url}/user/list", params=params, timeout=120)
            answer.raise_for_status()
            return dict(answer.json())

        first = page(1)
        with ThreadPoolExecutor(self.workers) as pool:
            rest = list(pool.map(page, range(2, int(str(first["total_pages"])) + 1)))
        wanted = {address.lower() for address in emails}
        user_ids = [
            str(user["user_id"])
            for listing in [first, *rest]
            for user in listing["users"]  # type: ignore[attr-defined]
            if str(user.get("user_email") or "").lower() in wanted
        ]
        batches = [user_ids[start : start + PAGE] for start in range(0, len(user_ids), PAGE)]
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda batch: self.post("/user/delete", {"user_ids": batch}), batches))

    def roster(self, team_id: str) -> set[str]:
        answer = self.session.get(f"{self.url}/team/list", timeout=120)
        answer.raise_for_status()
        (found,) = [t for t in answer.json() if t["team_id"] == team_id]
        return {member["user_id"] for member in found["members_with_roles"]}

    def clean_up(self, tag: str) -> None:
        """Delete every user and team this run created (their names hold the tag), and only those."""
        with LiteLLMClient(self.url, self.master_key) as client:
            users = list(client.users(email_contains=tag))
            for start in range(0, len(users), PAGE):
                client.delete_user_batch(users[start : start + PAGE])
            teams = [t.team_id for t in client.teams() if t.alias and tag in t.alias]
        if teams:
            self.post("/team/delete", {"team_ids": teams})


@dataclass(frozen=True)
class RealRow:
    work: str
    n: int
    workers: int
    script_seconds: float
    minimal_seconds: float
    proxy_users: int  # on the proxy when the script ran: it lists them all first
    listing_seconds: float  # list_user.py on that proxy just before, for comparison
    reference: str


def real_round(proxy: RealProxy, n: int, tag: str, workdir: Path) -> tuple[RealRow, RealRow, str]:
    """Create N users with add_user.py and N with the minimal client, each set into its own new team;
    check both rosters; then delete the first set with del_user.py and the second with the minimal client."""
    label = f"bench-{tag}-w{proxy.workers}"
    script_emails = [f"{label}-s{i}@example.com" for i in range(n)]
    minimal_emails = [f"{label}-m{i}@example.com" for i in range(n)]
    script_team, minimal_team = proxy.create_team(f"{label}-s"), proxy.create_team(f"{label}-m")
    write_csv(
        workdir / "add.csv",
        "email,role,team_name,key_name",
        (f"{e},internal_user,{label}-s,{e}" for e in script_emails),
    )
    write_csv(workdir / "del.csv", "email", script_emails)
    workers = ["--workers", str(proxy.workers), "--quiet"]

    def script(name: str, *args: str) -> float:
        return run_script(name, [*args, *workers], cwd=workdir, url=proxy.url, master_key=proxy.master_key)[0]

    def listing() -> tuple[int, float]:
        with LiteLLMClient(proxy.url, proxy.master_key) as client:
            users = client.users().total
        return users, script("list_user.py")

    add_listing = listing()
    add_seconds = script("add_user.py", "--csv-file", "add.csv")
    started = time.perf_counter()
    minimal_ids = proxy.create_users(minimal_emails, minimal_team)
    minimal_add_seconds = time.perf_counter() - started

    with (workdir / "user_reg_result.csv").open(newline="", encoding="utf-8") as results:
        script_ids = [row["user_id"] for row in csv.DictReader(results)]
    kept = len(set(script_ids) & proxy.roster(script_team)), len(set(minimal_ids) & proxy.roster(minimal_team))
    rosters = (
        f"workers {proxy.workers}: team rosters hold {kept[0]}/{len(script_ids)} of add_user.py's users "
        f"and {kept[1]}/{len(minimal_ids)} of the minimal client's"
    )

    del_listing = listing()
    del_seconds = script("del_user.py", "--csv-file", "del.csv")
    proxy.add_fillers([f"{label}-f{i}@example.com" for i in range(n)])  # both deleters list as many users
    started = time.perf_counter()
    proxy.delete_users(minimal_emails)
    minimal_del_seconds = time.perf_counter() - started
    w = proxy.workers
    return (
        RealRow("create (key, alias, team)", n, w, add_seconds, minimal_add_seconds, *add_listing, REFERENCE["add"]),
        RealRow("delete (batches of 100)", n, w, del_seconds, minimal_del_seconds, *del_listing, REFERENCE["delete"]),
        rosters,
    )


def real_benchmark(n: int, workers: list[int]) -> None:
    url, master_key = os.environ.get("LITELLM_TEST_BASE_URL"), os.environ.get("LITELLM_TEST_MASTER_KEY")
    if not (url and master_key):
        raise SystemExit("--real needs LITELLM_TEST_BASE_URL and LITELLM_TEST_MASTER_KEY (a real proxy)")
    tag = uuid.uuid4().hex[:8]
    rows: list[RealRow] = []
    rosters: list[str] = []
    try:
        for count in workers:
            with tempfile.TemporaryDirectory() as tmp:
                add, delete, roster = real_round(RealProxy(url, master_key, count), n, tag, Path(tmp))
            rows += [add, delete]
            rosters.append(roster)
            print(f"done: real proxy, workers={count}", file=sys.stderr, flush=True)
    finally:
        RealProxy(url, master_key, 1).clean_up(tag)
    print(f"Real proxy {url}, {n} users per run. A script's time includes its start-up and its listing of the proxy.")
    print(
        "| work | N | workers | script s | minimal client s | script users/s | minimal client users/s "
        "| ratio (target >= 0.85) | users on the proxy | list_user.py s | reference users/s |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        script_rate, minimal_rate = r.n / r.script_seconds, r.n / r.minimal_seconds
        print(
            f"| {r.work} | {r.n} | {r.workers} | {r.script_seconds:.2f} | {r.minimal_seconds:.2f} | {script_rate:.1f} "
            f"| {minimal_rate:.1f} | {script_rate / minimal_rate:.2f} | {r.proxy_users} | {r.listing_seconds:.2f} "
            f"| {r.reference} |"
        )
    print("\nParallel runs lose no team membership:")
    print("\n".join(rosters))


def comma_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=comma_ints, default=[1000, 10_000], help="users on the proxy (default: 1000,10000)")
    p.add_argument("--workers", type=comma_ints, default=[1, 4, 8], help="--workers values to run (default: 1,4,8)")
    p.add_argument("--latency", type=float, default=0.020, help="stand-in seconds per request (default: 0.020)")
    p.add_argument("--memory", action="store_true", help=f"peak memory of list and sync --dry-run on {MEMORY_USERS:,}")
    p.add_argument("--real", action="store_true", help="a real proxy (LITELLM_TEST_BASE_URL) against a minimal client")
    p.add_argument("--real-users", type=int, default=200, help="users per --real run (default: 200)")
    args = p.parse_args()
    if args.real:
        real_benchmark(args.real_users, args.workers)
    elif args.memory:
        memory_benchmark(args.latency)
    else:
        stand_in_benchmark(args.sizes, args.workers, args.latency)


if __name__ == "__main__":
    main()
