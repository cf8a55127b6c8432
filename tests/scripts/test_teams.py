"""Teams as code (issue 25): a teams file beside the users file, run as a user runs the scripts, on
the stand-in as each release and on the real proxy. Team admins: LiteLLM makes them with
/team/member_update, which from 1.74 needs an Enterprise licence; the real proxies have none, so
there the tests expect the row error that names it."""

from __future__ import annotations

import json
from pathlib import Path

from common.lease import HOLDER_KEYS, LEASE_ALIAS, LEASE_PREFIX
from litellm_client import Team
from tests.conftest import Proxy, Run, run_script, write_csv
from tests.contract import raw
from tests.support.standin import StandIn

SETTINGS = "max_budget,budget_duration,models,tpm_limit,rpm_limit,metadata.cost_center"


def admins_allowed(proxy: Proxy) -> bool:
    """Whether /team/member_update makes admins here: 1.65.8, or a licensed proxy (none of the real ones)."""
    if proxy.standin is not None:
        return not proxy.standin.admins_need_licence or proxy.standin.licensed
    with proxy.client() as client:
        return not client.release.at_least(1, 74)


def team_info(proxy: Proxy, team_id: str) -> dict[str, object]:
    answer = raw.get(proxy, "/team/info", team_id=team_id)
    answer.raise_for_status()
    return dict(answer.json()["team_info"])


def the_team(proxy: Proxy, alias: str) -> Team:
    with proxy.client() as client:
        (team,) = [team for team in client.teams() if team.alias == alias]
        return team


def files(proxy: Proxy, tmp_path: Path, *, budget: str = "1000") -> dict[str, str]:
    """A teams file (eng with every setting, ops bare) and a users file (two admins of eng)."""
    eng, ops = f"eng-{proxy.tag}", f"ops-{proxy.tag}"
    write_csv(
        tmp_path / "teams.csv",
        f"team_name,{SETTINGS}\n{eng},{budget},30d,gpt-4o;claude-3-5-sonnet,1000,10,cc-1\n{ops},,,,,,\n",
    )
    write_csv(
        tmp_path / "users.csv",
        "email,role,team_name,admin_of\n"
        f"{proxy.email('ann')},internal_user,{eng},{eng}\n"
        f"{proxy.email('bob')},internal_user,{eng};{ops},{eng}\n"
        f"{proxy.email('cy')},internal_user,{ops},\n",
    )
    return {"eng": eng, "ops": ops}


def sync(proxy: Proxy, tmp_path: Path, *args: str, users: str = "users.csv", teams: str = "teams.csv") -> Run:
    return run_script(
        "sync_user.py", "--csv-file", users, "--teams-file", teams, "--no-delete", *args, proxy=proxy, cwd=tmp_path
    )


def test_a_teams_file_creates_its_teams_with_every_setting_and_two_admins(proxy: Proxy, tmp_path: Path) -> None:
    names = files(proxy, tmp_path)

    run = sync(proxy, tmp_path)

    assert run.code == (0 if admins_allowed(proxy) else 1), run.output
    assert f"  + team {names['eng']} (max_budget: 1000, budget_duration: 30d, models: claude-3-5-sonnet;gpt-4o, " \
        "tpm_limit: 1000, rpm_limit: 10, metadata.cost_center: cc-1)" in run.stdout  # fmt: skip
    assert (
        f"  + {proxy.email('ann')} (Role: internal_user, Team: {names['eng']}, admin_of: {names['eng']})" in run.stdout
    )
    eng = the_team(proxy, names["eng"])
    info = team_info(proxy, eng.team_id)
    assert (info["max_budget"], info["budget_duration"], sorted(info["models"]), info["tpm_limit"]) == (  # type: ignore[arg-type]
        1000.0, "30d", ["claude-3-5-sonnet", "gpt-4o"], 1000,
    )  # fmt: skip
    assert (info["rpm_limit"], info["metadata"]) == (10, {"cost_center": "cc-1"})
    users = proxy.users()
    ann, bob, cy = (users[proxy.email(name)] for name in ("ann", "bob", "cy"))
    roles = {m["user_id"]: m["role"] for m in info["members_with_roles"]}  # type: ignore[attr-defined]
    expected = "admin" if admins_allowed(proxy) else "user"
    assert (roles[ann.user_id], roles[bob.user_id]) == (expected, expected)
    assert cy.user_id not in roles
    results = {row["team_name"]: (row["action"], row["status"]) for row in run.rows("user_sync_teams_result.csv")}
    assert results == {names["eng"]: ("CREATED", "SUCCESS"), names["ops"]: ("CREATED", "SUCCESS")}
    user_rows = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    assert all(row["api_keys"].startswith("sk-") for row in user_rows.values())  # created with their keys either way
    if not admins_allowed(proxy):
        assert "Enterprise licence" in user_rows[proxy.email("ann")]["error_reason"]


def test_one_edited_cell_changes_exactly_that_value_and_nothing_else(proxy: Proxy, tmp_path: Path) -> None:
    names = files(proxy, tmp_path)
    assert sync(proxy, tmp_path).code in (0, 1)
    before = the_team(proxy, names["eng"])
    files(proxy, tmp_path, budget="2000")
    if proxy.standin:
        proxy.standin.reset_log()

    run = sync(proxy, tmp_path)

    assert f"  ~ team {names['eng']} (max_budget: 1000 -> 2000)" in run.stdout
    after = the_team(proxy, names["eng"])
    assert after.max_budget == 2000
    assert (after.budget_duration, after.models, after.tpm_limit, after.rpm_limit, dict(after.metadata)) == (
        before.budget_duration, before.models, before.tpm_limit, before.rpm_limit, dict(before.metadata),
    )  # fmt: skip
    if proxy.standin:  # one update for the team, one for the lease that holds the proxy
        assert proxy.standin.count("/team/update") == 2
        assert proxy.standin.count("/team/new") == 1  # the lease only


def test_an_export_of_teams_and_users_syncs_back_as_no_change(proxy: Proxy, tmp_path: Path) -> None:
    names = files(proxy, tmp_path)
    assert sync(proxy, tmp_path).code in (0, 1)
    with proxy.client() as client:  # a team with odd values no file of ours made: no alias change, a bare team
        client.update_team(the_team(proxy, names["ops"]).team_id, {"metadata": {"note": "=SUM(A1)", "n": 1}})
    columns = "team_name,team_id,max_budget,budget_duration,models,tpm_limit,rpm_limit,metadata,members,admins,spend"

    teams = run_script("list_user.py", "--teams", "--format", "csv", "--columns", columns, "--output",
                       "teams_export.csv", proxy=proxy, cwd=tmp_path)  # fmt: skip
    users = run_script(
        "list_user.py", "--format", "csv", "--email-like", proxy.tag, "--columns",
        "email,role,team_name,admin_of,max_budget,models,metadata", "--output", "users_export.csv",
        proxy=proxy, cwd=tmp_path,
    )  # fmt: skip
    assert teams.code == 0, teams.output  # every team on the proxy: each syncs back unchanged
    assert users.code == 0, users.output
    check = sync(proxy, tmp_path, "--check", users="users_export.csv", teams="teams_export.csv")

    assert check.code == 0, check.output
    assert "No changes: the proxy already matches the file." in check.stdout


def test_a_bad_team_row_fails_alone(proxy: Proxy, tmp_path: Path) -> None:
    good, bad = f"good-{proxy.tag}", f"bad-{proxy.tag}"
    write_csv(tmp_path / "teams.csv", f"team_name,max_budget,tpm_limit\n{good},5,\n{bad},-3,\n")
    write_csv(tmp_path / "users.csv", "email\n")

    run = sync(proxy, tmp_path)

    assert run.code == 1, run.output
    assert f"  ! teams.csv line 3 team {bad}: max_budget '-3' is not a number of 0 or more" in run.stdout
    assert the_team(proxy, good).max_budget == 5
    with proxy.client() as client:
        assert [team for team in client.teams() if team.alias == bad] == []
    results = {row["team_name"]: row["status"] for row in run.rows("user_sync_teams_result.csv")}
    assert results == {good: "SUCCESS", bad: "FAILED"}


def test_a_team_the_file_does_not_name_is_left_alone(proxy: Proxy, tmp_path: Path) -> None:
    names = files(proxy, tmp_path)
    other = f"other-{proxy.tag}"
    with proxy.client() as client:
        kept = client.create_team(other, settings={"max_budget": 5, "models": ["gpt-4o"]}, metadata={"k": "v"})
    if proxy.standin:
        proxy.standin.reset_log()

    run = sync(proxy, tmp_path)

    assert run.code in (0, 1), run.output
    assert names["eng"] in run.stdout
    assert other not in run.stdout
    after = the_team(proxy, other)
    assert (after.team_id, after.max_budget, after.models, dict(after.metadata)) == (
        kept.team_id,
        5,
        ("gpt-4o",),
        {"k": "v"},
    )


def test_a_dry_run_and_a_check_change_nothing_and_check_sees_team_drift(proxy: Proxy, tmp_path: Path) -> None:
    names = files(proxy, tmp_path)

    dry = sync(proxy, tmp_path, "--dry-run")
    check = sync(proxy, tmp_path, "--check")

    assert dry.code == 0, dry.output
    assert check.code == 5, check.output
    with proxy.client() as client:
        assert not [team for team in client.teams() if team.alias in names.values()]
    assert not (tmp_path / "user_sync_teams_result.csv").exists()
    if proxy.standin:
        assert proxy.standin.writes() == 0


def test_the_undo_files_put_a_teams_settings_and_roles_back(proxy: Proxy, tmp_path: Path) -> None:
    names = files(proxy, tmp_path)
    assert sync(proxy, tmp_path).code in (0, 1)
    before = the_team(proxy, names["eng"])
    write_csv(
        tmp_path / "teams.csv", f"team_name,max_budget,models,metadata.cost_center\n{names['eng']},none,none,cc-9\n"
    )
    write_csv(
        tmp_path / "users.csv", f"email,team_name,admin_of\n{proxy.email('bob')},{names['eng']};{names['ops']},\n"
    )
    changed = sync(proxy, tmp_path, "--output-dir", "second")
    assert changed.code == 0, changed.output
    cleared = the_team(proxy, names["eng"])
    assert (cleared.max_budget, cleared.models, cleared.metadata.get("cost_center")) == (None, (), "cc-9")
    assert "user_sync_teams_undo.csv" in changed.stdout

    restore = sync(proxy, tmp_path, users="second/user_sync_undo.csv", teams="second/user_sync_teams_undo.csv")

    assert restore.code == 0, restore.output
    back = the_team(proxy, names["eng"])
    assert (back.max_budget, back.models, dict(back.metadata)) == (
        before.max_budget,
        before.models,
        dict(before.metadata),
    )
    assert back.admin_ids == before.admin_ids


def test_add_user_creates_the_missing_teams_with_their_settings_and_leaves_existing_ones(
    proxy: Proxy, tmp_path: Path
) -> None:
    names = files(proxy, tmp_path)
    with proxy.client() as client:
        ops = client.create_team(names["ops"], settings={"max_budget": 7})
    write_csv(tmp_path / "teams.csv", f"team_name,max_budget\n{names['eng']},1000\n{names['ops']},8\n")
    add = ("add_user.py", "--csv-file", "users.csv", "--teams-file", "teams.csv", "--create-teams")

    dry = run_script(*add, "--dry-run", proxy=proxy, cwd=tmp_path)
    assert dry.code == 0, dry.output
    assert f"  + team {names['eng']} (max_budget: 1000)" in dry.stdout
    assert [team for team in proxy.client().teams() if team.alias == names["eng"]] == []

    run = run_script(*add, proxy=proxy, cwd=tmp_path)

    assert run.code == (0 if admins_allowed(proxy) else 1), run.output
    assert f"NOTE: team {names['ops']} differs from teams.csv (max_budget: 7 -> 8)" in run.stdout
    assert the_team(proxy, names["ops"]).max_budget == 7  # add_user.py changes no team
    eng = the_team(proxy, names["eng"])
    assert eng.max_budget == 1000
    users = proxy.users()
    admins = {users[proxy.email(name)].user_id for name in ("ann", "bob")}
    assert eng.admin_ids & admins == (admins if admins_allowed(proxy) else set())
    assert ops.team_id == the_team(proxy, names["ops"]).team_id


def test_list_teams_hides_the_lease_and_takes_columns_where_and_formats(standin: Proxy, tmp_path: Path) -> None:
    server = standin.standin
    assert server is not None
    eng = server.seed_team("eng")
    lease = server.seed_team(LEASE_ALIAS, f"{LEASE_PREFIX}held")
    with server.lock:
        server.teams[eng].update(max_budget=10.5, models=["gpt-4o"], metadata={"cost_center": "cc-1"})
        server.teams[lease]["metadata"] = dict.fromkeys(HOLDER_KEYS, "x")
    ann = server.seed_user("ann@example.com", teams=(eng,))
    server.write_roster(eng, lambda roster: [{**m, "role": "admin"} if m["user_id"] == ann else m for m in roster])

    table = run_script("list_user.py", "--teams", "--format", "table", proxy=standin, cwd=tmp_path)
    found = run_script(
        "list_user.py", "--teams", "--format", "json", "--columns", "team_name,metadata.cost_center,admins,members",
        "--where", "max_budget=10.5", proxy=standin, cwd=tmp_path,
    )  # fmt: skip
    refused = run_script("list_user.py", "--teams", "--role", "proxy_admin", proxy=standin, cwd=tmp_path)

    assert table.code == 0, table.output
    assert found.code == 0, found.output
    assert LEASE_ALIAS not in table.stdout
    assert "eng" in table.stdout
    assert json.loads(found.stdout) == [
        {"team_name": "eng", "metadata.cost_center": "cc-1", "admins": ["ann@example.com"], "members": 1}
    ]
    assert refused.code == 2
    assert "--role filter users: with --teams, use --where." in refused.stderr


def test_a_sync_with_a_teams_file_makes_the_fewest_requests(tmp_path: Path) -> None:
    """One /team/new per new team, one /team/update per changed team, one /team/member_update per
    role change (1.65.8 makes admins without a licence), beside the users' own requests."""
    with StandIn(release="1.65.8") as server:
        proxy = Proxy("standin-1.65.8", server.url, server.master_key, server)
        names = files(proxy, tmp_path)

        run = sync(proxy, tmp_path)

        assert run.code == 0, run.output
        counts = server.counts()
        assert counts["/team/new"] == 2 + 1  # eng, ops; the lease
        assert counts["/team/member_update"] == 2  # ann and bob made admins of eng
        assert counts["/team/update"] == 1  # the lease holds the proxy; no team changes
        assert counts["/user/new"] == 3
        assert names


def test_a_teams_files_header_is_read_in_any_case_and_its_plan_comes_before_the_users(
    standin: Proxy, tmp_path: Path
) -> None:
    write_csv(tmp_path / "teams.csv", "Team_Name,MAX_BUDGET,Models\neng,1000,gpt-4o\n")
    write_csv(tmp_path / "users.csv", "email,role,team_name\nann@example.com,internal_user,eng\n")

    run = sync(standin, tmp_path, "--dry-run")

    assert run.code == 0, run.output
    assert "  + team eng (max_budget: 1000, models: gpt-4o)" in run.stdout
    assert run.stdout.index("Teams (teams.csv)") < run.stdout.index("Users to add")


def test_check_sees_a_team_role_changed_on_the_proxy_as_drift(standin: Proxy, tmp_path: Path) -> None:
    server = standin.standin
    assert server is not None
    eng = server.seed_team("eng")
    server.seed_user("ann@example.com", teams=(eng,))
    write_csv(tmp_path / "teams.csv", "team_name\neng\n")
    write_csv(tmp_path / "users.csv", "email,role,team_name,admin_of\nann@example.com,internal_user,eng,eng\n")

    check = sync(standin, tmp_path, "--check")

    assert check.code == 5, check.output
    assert "~ ann@example.com (admin_of: - -> eng)" in check.stdout
    assert server.count("/team/member_update") == 0


def test_a_teams_sync_stops_at_another_runs_lease_before_any_team_change(standin: Proxy, tmp_path: Path) -> None:
    server = standin.standin
    assert server is not None
    lease = server.seed_team(LEASE_ALIAS, f"{LEASE_PREFIX}other")
    with server.lock:
        server.teams[lease]["metadata"] = {
            "litellm_user_tools_lease": 1, "script": "sync_user.py", "owner": "cron@elsewhere",
            "host": "elsewhere/boot/pid:[1]", "pid": 1, "ttl_seconds": 300, "renewals": 1,
            "started_at": "2026-12-01T00:00:00+00:00", "renewed_at": "2999-01-01T00:00:00+00:00",
        }  # fmt: skip
    files(standin, tmp_path)

    run = sync(standin, tmp_path)

    assert run.code == 4, run.output
    assert "another run is applying changes to this proxy" in run.stderr
    assert [team["team_alias"] for team in server.teams.values()] == [LEASE_ALIAS]  # no team of the file made
    assert server.count("/team/update") == 0


def test_list_teams_reads_every_page(standin: Proxy, tmp_path: Path) -> None:
    server = standin.standin
    assert server is not None
    for n in range(250):
        server.seed_team(f"team-{n:03d}")

    run = run_script(
        "list_user.py", "--teams", "--format", "json", "--columns", "team_name", proxy=standin, cwd=tmp_path
    )

    assert run.code == 0, run.output
    assert sorted(team["team_name"] for team in json.loads(run.stdout)) == [f"team-{n:03d}" for n in range(250)]
