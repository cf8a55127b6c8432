"""Each script makes the fewest requests the proxy's API allows, on a proxy with 1,000 users.

The scripts' time is the proxy's time, request by request, so a change that makes more requests
fails here, long before anyone times it. The work and the minimum are tests/support/benchmark.py's: one
definition for the benchmark and for these tests.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Proxy, run_script
from tests.support.benchmark import CASES, RELEASES, email, minimum_on, seed, team
from tests.support.standin import StandIn

N = 1000


def requests_made(standin: Proxy, script: str, *args: str, cwd: Path) -> tuple[Counter[str], int]:
    """Run the script; the requests it made by endpoint, and apart from them its release look-ups."""
    run = run_script(script, *args, "--quiet", proxy=standin, cwd=cwd)
    assert run.code == 0, run.output
    made = standin.standin.counts()
    return made, sum(made.pop(path, 0) for path in RELEASES)


@pytest.mark.parametrize("script", list(CASES))
def test_each_script_makes_the_fewest_requests_the_api_allows(standin: Proxy, tmp_path: Path, script: str) -> None:
    seed(standin.standin, N)
    case = CASES[script](standin.standin, N, tmp_path)

    made, release = requests_made(standin, case.script, *case.args, cwd=tmp_path)

    assert made == case.minimum
    # A run that writes asks the release once, before its first change (what the proxy can do
    # decides how it writes); a run that only reads asks only where it lists teams.
    assert release == (0 if script == "list_user.py" else 1)


def test_a_listing_with_team_names_reads_the_teams_once_and_each_page_once(standin: Proxy, tmp_path: Path) -> None:
    seed(standin.standin, N)

    made, release = requests_made(
        standin, "list_user.py", "--format", "csv", "--columns", "email,role,team_name", cwd=tmp_path
    )

    assert made == minimum_on(standin.standin)
    assert release == 1  # which listing of teams the release has


# -- small runs on large proxies (issue 24): the cost grows with the file, not with the proxy ------------

SMALL = 10


def _small_case(standin: Proxy, kind: str, tmp_path: Path) -> tuple[list[str], Counter[str]]:
    """A file of SMALL rows on the seeded stand-in: its script's arguments and its minimum."""
    assert standin.standin is not None
    proxy = standin.standin
    seeded = [proxy.user_by_email(email(i))[0] for i in range(SMALL)]
    if kind == "add":
        rows = "".join(f"new{i}@example.com,internal_user,{team(i)},key-new{i}\n" for i in range(SMALL))
        (tmp_path / "small.csv").write_text("email,role,team_name,key_name\n" + rows, encoding="utf-8")
        need = minimum_on(proxy, writes=True, key_names=SMALL, named=(0, 0), refused=SMALL, created=SMALL)
        return ["add_user.py", "--csv-file", "small.csv"], need
    if kind == "sync":
        rows = "".join(f"{email(i)},proxy_admin,{team(i)}\n" for i in range(SMALL))
        (tmp_path / "small.csv").write_text("email,role,team_name\n" + rows, encoding="utf-8")
        need = minimum_on(proxy, writes=True, named=(SMALL, 0), role_changes=SMALL)
        return ["sync_user.py", "--csv-file", "small.csv", "--no-delete"], need
    by_id = kind == "del-by-id"
    cells = [user["user_id"] for user in seeded] if by_id else [email(i) for i in range(SMALL)]
    column = "user_id" if by_id else "email"
    (tmp_path / "small.csv").write_text(f"{column}\n" + "".join(f"{cell}\n" for cell in cells), encoding="utf-8")
    named = (0, SMALL) if by_id else (SMALL, 0)
    if kind == "block":
        need = minimum_on(proxy, writes=True, named=named, key_owners=[SMALL], blocks=[1] * SMALL)
        return ["del_user.py", "--csv-file", "small.csv", "--block"], need
    need = minimum_on(proxy, writes=True, named=named, key_owners=[SMALL], deleted=SMALL)
    return ["del_user.py", "--csv-file", "small.csv"], need


@pytest.mark.parametrize("size", [1_000, 20_000])
@pytest.mark.parametrize("kind", ["add", "del-by-email", "del-by-id", "block", "sync"])
def test_a_small_file_costs_what_its_rows_need_whatever_the_proxys_size(
    standin: Proxy, tmp_path: Path, kind: str, size: int
) -> None:
    """Ten rows: each named user looked up where that is cheaper than listing every user (never more
    than 4n + 30 requests on a proxy of any size), every user listed where that is cheaper."""
    assert standin.standin is not None
    seed(standin.standin, size)
    args, need = _small_case(standin, kind, tmp_path)

    made, release = requests_made(standin, *args, cwd=tmp_path)

    assert made == need
    assert sum(made.values()) + release <= 4 * SMALL + 30


@pytest.mark.parametrize("kind", ["del-by-email", "del-by-id", "block"])
@pytest.mark.parametrize("release", ["1.80.7", "1.65.8"])
def test_a_small_file_on_an_older_release(tmp_path: Path, kind: str, release: str) -> None:
    """1.80 looks users up as the newest releases do; 1.65 cannot filter by email and lists every user
    for emails (by user_id it looks them up)."""
    with StandIn(release=release) as proxy:
        standin = Proxy(f"standin-{release}", proxy.url, proxy.master_key, proxy)
        seed(proxy, 20_000)
        args, need = _small_case(standin, kind, tmp_path)

        made, _ = requests_made(standin, *args, cwd=tmp_path)

    assert made == need
    listed = release == "1.65.8" and kind != "del-by-id"
    assert made["/user/list"] == (201 if listed else 1 + SMALL if kind != "del-by-id" else 2)


def test_a_listing_filtered_by_email_reads_only_the_matching_users(standin: Proxy, tmp_path: Path) -> None:
    """--email-like is the proxy's own filter: three matches on a proxy of 20,000 users take one page."""
    assert standin.standin is not None
    seed(standin.standin, 20_000)
    for name in ("kim", "kimberly", "akim"):
        standin.standin.seed_user(f"{name}@corp.example")

    run = run_script("list_user.py", "--email-like", "kim", "--quiet", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert len(run.stdout.splitlines()) == 1 + 3
    assert standin.standin.counts() == {"/user/list": 1}
