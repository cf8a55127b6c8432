"""Fixtures: stand-in proxies (as the newest and as the older release), the real proxy when
LITELLM_TEST_BASE_URL and LITELLM_TEST_MASTER_KEY name one, and running a script the way a user
does: a subprocess in a fresh working directory, with the proxy in its environment.

The real proxy keeps what earlier tests left, so tests name their users and teams with a fresh
tag and look only at those. Tests that need a proxy without other managed users (sync) clear
them first: never point LITELLM_TEST_BASE_URL at a proxy whose users matter.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from litellm_client import LiteLLMClient, NewUser, NewUserSpec, User
from tests.support.benchmark import minimum_requests
from tests.support.replicas import Replicas, free_port
from tests.support.standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
REAL_URL = os.environ.get("LITELLM_TEST_BASE_URL", "")
REAL_KEY = os.environ.get("LITELLM_TEST_MASTER_KEY", "")
REQUIRE_REAL = os.environ.get("LITELLM_TEST_REQUIRE_REAL") == "1"
# the real proxy's LP_ROOT (start.sh): a second proxy process is started on it for the replica tests
REPLICA_ROOT = os.environ.get("LITELLM_TEST_LP_ROOT", "")
REQUIRE_REPLICAS = os.environ.get("LITELLM_TEST_REQUIRE_REPLICAS") == "1"


@dataclass
class Proxy:
    """A proxy a test runs against: a stand-in (with its controls) or the real one."""

    name: str
    url: str
    master_key: str
    standin: StandIn | None = None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def real(self) -> bool:
        return self.standin is None

    def client(self, **options: object) -> LiteLLMClient:
        return LiteLLMClient(self.url, self.master_key, **options)  # type: ignore[arg-type]

    def email(self, name: str) -> str:
        """A fresh address for this test: real proxies keep earlier tests' users."""
        return f"{name}-{self.tag}@example.com"

    def users(self) -> dict[str, User]:
        """This test's users (by lower-case email), as the proxy lists them now."""
        with self.client() as proxy:
            return {u.email.lower(): u for u in proxy.users(email_contains=self.tag) if u.email}

    def teams_by_alias(self) -> dict[str, list[str]]:
        """alias -> member ids, for this test's teams."""
        with self.client() as proxy:
            return {t.alias: sorted(t.member_ids) for t in proxy.teams() if t.alias and self.tag in t.alias}

    def team_id(self, alias: str) -> str:
        with self.client() as proxy:
            (team,) = [t for t in proxy.teams() if t.alias == alias]
            return team.team_id

    def create_team(self, alias: str) -> str:
        with self.client() as proxy:
            return proxy.create_team(alias).team_id

    def create_user(
        self, email: str, role: str | None = "internal_user", teams: tuple[str, ...] = (), **kw: Any
    ) -> str:
        with self.client() as proxy:
            return new_user(proxy, email, role=role, team_ids=teams, **kw).user_id

    def key_works(self, key: str) -> bool:
        """A key authenticates: it may read its own info."""
        answer = requests.get(f"{self.url}/key/info", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        return answer.status_code == 200

    def clear_managed_users(self) -> None:
        """Delete every user with an email and a role, for tests that plan against all users."""
        with self.client() as proxy:
            managed = [u for u in proxy.users() if u.is_managed]
            for batch in range(0, len(managed), 100):
                proxy.delete_many(managed[batch : batch + 100])


def new_user(
    client: LiteLLMClient,
    email: str,
    *,
    role: str | None = "internal_user",
    team_ids: Sequence[str] = (),
    key_alias: str | None = None,
    with_key: bool = True,
    **fields: Any,
) -> NewUser:
    """Create a user the way the tools do (for a test's setup)."""
    return client.create_user(NewUserSpec(email, role, tuple(team_ids), key_alias, with_key, fields=fields))


def _real_or_skip() -> Proxy:
    if not (REAL_URL and REAL_KEY):
        if REQUIRE_REAL:
            pytest.fail("LITELLM_TEST_REQUIRE_REAL=1 but LITELLM_TEST_BASE_URL/LITELLM_TEST_MASTER_KEY are not set")
        pytest.skip("no real proxy: set LITELLM_TEST_BASE_URL and LITELLM_TEST_MASTER_KEY")
    return Proxy("real", REAL_URL.rstrip("/"), REAL_KEY)


PROXIES = [
    "standin",
    "standin-1.80.7",
    "standin-1.65.8",
    pytest.param("real", marks=pytest.mark.integration),
]


def proxy_named(name: str) -> Iterator[Proxy]:
    """The proxy a PROXIES entry names: "real", "standin" (as 1.108.7) or "standin-<release>"."""
    if name == "real":
        yield _real_or_skip()
        return
    with StandIn(release=name.partition("-")[2] or "1.108.7") as standin:
        yield Proxy(name, standin.url, standin.master_key, standin)


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """Each test runs against the stand-in as 1.108.7, as 1.80.7, as 1.65.8, and the real proxy."""
    yield from proxy_named(request.param)


@pytest.fixture
def real() -> Proxy:
    """The real proxy alone, for what only it can show (skipped without one)."""
    return _real_or_skip()


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicas]:
    """The real proxy run as two processes over its one database, the second with its clock 600 s
    ahead, behind a round-robin forwarder (replicas.url): how large proxies run (skipped without
    LITELLM_TEST_LP_ROOT, the real proxy's LP_ROOT)."""
    if not (REAL_URL and REAL_KEY and REPLICA_ROOT):
        if REQUIRE_REPLICAS:
            pytest.fail("LITELLM_TEST_REQUIRE_REPLICAS=1 but the real proxy or LITELLM_TEST_LP_ROOT is not set")
        pytest.skip("no replicas: set LITELLM_TEST_BASE_URL, LITELLM_TEST_MASTER_KEY and LITELLM_TEST_LP_ROOT")
    first = urlsplit(REAL_URL).port or 4000
    with Replicas(Path(REPLICA_ROOT), first, free_port(first + 1), clock_offset=600, master_key=REAL_KEY) as replicas:
        yield replicas


@pytest.fixture
def standin() -> Iterator[Proxy]:
    """The stand-in alone, for what only it can do: faults, latency, request counts."""
    with StandIn() as proxy:
        yield Proxy("standin", proxy.url, proxy.master_key, proxy)


@pytest.fixture(params=["1.80.7", "1.65.8"])
def old_standin(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """The stand-in as each release that rewrites team rosters without a lock."""
    with StandIn(release=request.param) as proxy:
        yield Proxy(f"standin-{request.param}", proxy.url, proxy.master_key, proxy)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    cwd: Path

    def rows(self, name: str) -> list[dict[str, str]]:
        with (self.cwd / name).open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "REQUESTS_CA"))}
    env.update(extra)
    return env


def run_script(
    script: str, *args: str, proxy: Proxy | None, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> Run:
    """Run one of the four scripts as a user would, in cwd, with the proxy in the environment."""
    variables = {"LITELLM_BASE_URL": proxy.url, "LITELLM_MASTER_KEY": proxy.master_key} if proxy else {}
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=clean_env(**{**variables, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, cwd)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


# The endpoints a script writes through, by the path the release takes: one user a request
# before 1.108, the bulk endpoints from 1.108 on. Faults go where the requests go.
PATHS = {
    "1.80.7": {"create": "/user/new", "delete": "/user/delete", "update": "/user/bulk_update"},
    "1.108.7": {
        "create": "/management/v1/users/bulk",
        "delete": "/management/v1/users/bulk_delete",
        "update": "/user/bulk_update",
    },
}


@pytest.fixture(params=list(PATHS), ids=["per-user", "bulk"])
def paths(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """A stand-in where the scripts write one user a request (as 1.80.7), and one where they use
    the bulk endpoints (as 1.108.7): every failure path runs on both."""
    with StandIn(release=request.param) as standin:
        yield Proxy(f"standin-{request.param}", standin.url, standin.master_key, standin)


def endpoint(proxy: Proxy, kind: str) -> str:
    """Where this stand-in's scripts send a kind of write: create, delete or update."""
    assert proxy.standin is not None
    return PATHS[proxy.standin.release][kind]


def bulk(proxy: Proxy) -> bool:
    return proxy.standin is not None and proxy.standin.release == "1.108.7"


def team_listings(release: str, *, teams: int = 1) -> dict[str, int]:
    """A writing run's requests for teams: its lease's look for other leases, and the listing of
    `teams` teams (as tests/support/benchmark.py counts them)."""
    need = minimum_requests(0, release=release, writes=True, teams=teams)
    return {path: count for path, count in need.items() if "team/list" in path}


# -- helpers the fault tests share -----------------------------------------------------------------


def spawn(script: str, *args: str, proxy: Proxy, cwd: Path) -> subprocess.Popen[str]:
    """A script running in the background; its stdout (a plan can be long) goes to a file, so
    that a full pipe never stops it; its stderr is read with communicate()."""
    env = clean_env(LITELLM_BASE_URL=proxy.url, LITELLM_MASTER_KEY=proxy.master_key)
    with (cwd / f"{script}.stdout").open("w") as stdout:
        return subprocess.Popen(
            [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, text=True, stdout=stdout,
            stderr=subprocess.PIPE,
        )  # fmt: skip


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def addlist(path: Path, count: int, team: str = "") -> list[str]:
    """An add_user.py file of `count` users (user000@example.com, ...), each with a key name."""
    emails = [f"user{n:03d}@example.com" for n in range(count)]
    write_csv(
        path,
        "email,role,team_name,key_name\n" + "".join(f"{e},internal_user,{team},key{n}\n" for n, e in enumerate(emails)),
    )
    return emails


def accounted_once(run: Run, emails: list[str]) -> dict[str, dict[str, str]]:
    """Every input row is in exactly one of add_user.py's result and error files; the results."""
    results = run.rows("user_reg_result.csv")
    errors = run.rows("user_reg_error.csv")
    seen = sorted([r["email"] for r in results] + [r["email"] for r in errors])
    assert seen == sorted(emails)
    return {r["email"]: r for r in results}


def no_duplicates(proxy: Proxy, emails: list[str]) -> None:
    assert proxy.standin is not None
    assert [len(proxy.standin.user_by_email(e)) for e in emails] == [1] * len(emails)


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


class Held:
    """A request the stand-in holds open until the test lets it go: a test acts while a request is
    in flight by waiting for a state it can see, never for time."""

    def __init__(self, standin: StandIn, path: str, **fault: Any) -> None:
        self._arrived = threading.Event()
        self._release = threading.Event()
        self.fault = standin.fail(path, "call", call=self._hold, **fault)

    def _hold(self) -> None:
        self._arrived.set()
        self._release.wait(120)

    def wait(self, timeout: float = 60, process: subprocess.Popen[str] | None = None) -> None:
        """Until the request arrives; a run that ends first fails the test with what it said."""
        deadline = time.monotonic() + timeout
        while not self._arrived.wait(0.1):
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the run ended before {self.fault.path} arrived: {process.communicate()[1]}")
            assert time.monotonic() < deadline, f"no request for {self.fault.path} arrived"

    def let_go(self) -> None:
        self._release.set()


def interrupt(process: subprocess.Popen[str], sig: int, held: Held) -> str:
    """Send a signal while `held` is in flight, read stderr until the run says it was interrupted
    (it finishes the rows in flight, or stops), then let the request go; all of stderr."""
    held.wait(process=process)
    process.send_signal(sig)
    seen = []
    assert process.stderr is not None
    for line in process.stderr:
        seen.append(line)
        if line.startswith("Interrupted"):
            break
    held.let_go()
    _, rest = process.communicate(timeout=120)
    return "".join(seen) + rest
