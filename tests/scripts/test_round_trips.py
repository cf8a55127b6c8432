"""Round trips are promises: what list_user.py exports (and what an undo file holds) syncs back
as no change, whatever values the proxy holds.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Proxy, run_script, write_csv


def test_odd_team_aliases_round_trip_through_export_and_sync(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    proxy = standin.standin
    semi = proxy.seed_team("rt-eng;rt-ops")
    eng, ops = proxy.seed_team("rt-eng"), proxy.seed_team("rt-ops")
    nameless = proxy.seed_team(None)
    spaced = proxy.seed_team("  lead")
    lead = proxy.seed_team("lead")
    twins = [proxy.seed_team("twin"), proxy.seed_team("twin")]
    proxy.seed_user("semi@example.com", teams=(semi,))
    proxy.seed_user("both@example.com", teams=(eng, ops))
    proxy.seed_user("nameless@example.com", teams=(nameless,))
    proxy.seed_user("spaced@example.com", teams=(spaced,))
    proxy.seed_user("lead@example.com", teams=(lead,))
    proxy.seed_user("twin@example.com", teams=(twins[0],))
    export = run_script(
        "list_user.py", "--format", "csv", "--columns", "email,role,team_name", "--output", "user_list.csv",
        proxy=standin, cwd=tmp_path,
    )  # fmt: skip
    assert export.code == 0, export.output

    run = run_script("sync_user.py", "--dry-run", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "No changes: the proxy already matches the file." in run.stdout
    cells = {row["email"]: row["team_name"] for row in export.rows("user_list.csv")}
    assert cells["semi@example.com"] == semi  # ';' inside: written by its id
    assert cells["both@example.com"] == "rt-eng;rt-ops"
    assert cells["nameless@example.com"] == nameless
    assert cells["spaced@example.com"] == spaced
    assert cells["lead@example.com"] == "lead"
    assert cells["twin@example.com"] == twins[0]


def test_a_plan_line_never_looks_unchanged_when_it_is_not(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    proxy = standin.standin
    semi = proxy.seed_team("rt-eng;rt-ops")
    proxy.seed_team("rt-eng")
    proxy.seed_team("rt-ops")
    proxy.seed_user("semi@example.com", teams=(semi,))
    write_csv(tmp_path / "user_list.csv", "email,team_name\nsemi@example.com,rt-eng;rt-ops\n")

    run = run_script("sync_user.py", "--dry-run", proxy=standin, cwd=tmp_path)

    assert f"~ semi@example.com (Teams: {semi} -> rt-eng;rt-ops)" in run.stdout
