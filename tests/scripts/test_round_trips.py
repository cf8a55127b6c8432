"""Round trips are promises: what list_user.py exports (and what an undo file holds) syncs back
as no change, whatever values the proxy holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Proxy, new_user, run_script, write_csv


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


# -- every value a proxy holds (issue 22, items 1, 3 and 8) ------------------------------------------

ODD_EMAILS = ("o'brien-{tag}@example.com", "jdoe-{tag}", "first:last-{tag}@example.com", '"j doe {tag}"@example.com')
EXPORTED = "email,role,team_name,state,user_alias,max_budget,budget_duration,models,metadata"


@pytest.fixture
def clean(proxy: Proxy) -> Proxy:
    """sync plans against every user: on a real proxy, the managed users earlier tests left go first."""
    if proxy.real:
        proxy.clear_managed_users()
    return proxy


def odd_proxy(proxy: Proxy, tmp_path: Path) -> dict[str, str]:
    """Users with the values a proxy accepts and a file could trip over: odd addresses, a blocked
    user (with its keys blocked), a model twice, text that starts with a quote, a duration in
    another spelling, JSON metadata. Their keys, by email."""
    team_id = proxy.create_team(f"eng-{proxy.tag}")
    keys: dict[str, str] = {}
    with proxy.client() as client:
        for email in (pattern.format(tag=proxy.tag) for pattern in ODD_EMAILS):
            keys[email] = new_user(client, email, team_ids=[team_id]).key
        odd = new_user(
            client,
            proxy.email("odd"),
            role="internal_user_viewer",
            models=["gpt-4o", "gpt-4o"],
            user_alias="'-x",
            budget_duration="24hr",
            max_budget=2.5,
            metadata={"cost": 5, "note": "'=y", "pad": " x "},
        )
        keys[proxy.email("odd")] = odd.key
        keys[proxy.email("leaver")] = new_user(client, proxy.email("leaver"), key_alias=f"leaver-{proxy.tag}").key
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('leaver')}\n")
    blocked = run_script("del_user.py", "--block", "--output-dir", "block", proxy=proxy, cwd=tmp_path)
    assert blocked.code == 0, blocked.output
    return keys


@pytest.mark.parametrize("columns", [EXPORTED, "email,role,team_name"], ids=["every-column", "the-seed-columns"])
def test_an_unedited_export_syncs_back_as_no_change_in_every_mode(clean: Proxy, tmp_path: Path, columns: str) -> None:
    """Blocked users stay blocked (reinstating takes the state active), odd addresses are their
    users, and every value reads back as the proxy holds it."""
    proxy = clean
    keys = odd_proxy(proxy, tmp_path)
    export = run_script(
        "list_user.py", "--format", "csv", "--columns", columns, "--output", "user_list.csv", proxy=proxy,
        cwd=tmp_path,
    )  # fmt: skip
    assert export.code == 0, export.output
    print((tmp_path / "user_list.csv").read_text())

    for mode in (["--check"], ["--check", "--remove", "block"], ["--no-delete"], ["--remove", "block"], []):
        run = run_script("sync_user.py", *mode, proxy=proxy, cwd=tmp_path)
        assert run.code == 0, (mode, run.output)
        assert "No changes: the proxy already matches the file." in run.stdout, (mode, run.output)

    assert not proxy.key_works(keys[proxy.email("leaver")])
    assert all(proxy.key_works(key) for email, key in keys.items() if email != proxy.email("leaver"))
    assert proxy.users()[proxy.email("leaver")].metadata.get("offboarded_at")
