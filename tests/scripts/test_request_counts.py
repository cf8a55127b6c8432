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
from tests.support.benchmark import CASES, RELEASES, minimum_on, seed

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
