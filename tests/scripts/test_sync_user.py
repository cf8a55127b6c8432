"""sync_user.py, run as a user runs it, against the stand-in (both releases) and the real proxy.

sync plans against every user on the proxy, so on a real proxy each test first deletes the
managed users earlier tests left.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Proxy, new_user, run_script, write_csv
from tests.support.standin import StandIn


@pytest.fixture
def clean(proxy: Proxy) -> Proxy:
    if proxy.real:
        proxy.clear_managed_users()
    return proxy


def test_a_mixed_plan_is_applied_exactly_and_a_second_run_plans_nothing(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    eng, ops, new = (f"{name}-{proxy.tag}" for name in ("eng", "ops", "new"))
    eng_id, ops_id, new_id = proxy.create_team(eng), proxy.create_team(ops), proxy.create_team(new)
    with proxy.client() as client:
        mover = new_user(
            client, proxy.email("mover"), role="internal_user", team_ids=[eng_id], key_alias=f"mover-{proxy.tag}"
        )
        own_key = client.generate_key(mover.user_id, team_id=None, alias=f"mover-own-{proxy.tag}")
    proxy.create_user(proxy.email("promote"), "internal_user", (eng_id,))
    proxy.create_user(proxy.email("same"), "internal_user_viewer", (ops_id,))
    proxy.create_user(proxy.email("gone"), "internal_user", (ops_id,))
    proxy.create_user(proxy.email("noemail-twin"), None)  # no role: never deleted
    write_csv(
        tmp_path / "user_list.csv",
        f"""
email,role,team_name
{proxy.email("mover")},internal_user,{ops};{new}
{proxy.email("PROMOTE")},proxy_admin,
{proxy.email("same")},internal_user_viewer,{ops}
{proxy.email("fresh")},internal_user,{new}
""",
    )
    dry = run_script("sync_user.py", "--dry-run", proxy=proxy, cwd=tmp_path)
    assert dry.code == 0, dry.output
    assert dry.stdout.splitlines()[:5] == [
        "Synchronization Plan:",
        "  Users to add: 1",
        "  Users to delete: 1",
        "  Users to update: 2",
        "  Users unchanged: 1",
    ]
    assert f"  + {proxy.email('fresh')} (Role: internal_user, Team: {new})" in dry.stdout
    assert f"  - {proxy.email('gone')} (Role: internal_user, Team: {ops}, keys: 1)" in dry.stdout
    assert f"  ~ {proxy.email('promote')} (Role: internal_user -> proxy_admin)" in dry.stdout
    assert f"  ~ {proxy.email('mover')} (Teams: {eng} -> {new};{ops}, leaving {eng} deletes 1 key)" in dry.stdout

    run = run_script("sync_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    users = proxy.users()
    assert {email: (u.role, set(u.teams)) for email, u in users.items()} == {
        proxy.email("mover"): ("internal_user", {ops_id, new_id}),
        proxy.email("promote"): ("proxy_admin", {eng_id}),
        proxy.email("same"): ("internal_user_viewer", {ops_id}),
        proxy.email("fresh"): ("internal_user", {new_id}),
        proxy.email("noemail-twin"): (None, set()),
    }
    assert users[proxy.email("mover")].user_id == mover.user_id  # changed in place, never re-created
    assert proxy.key_works(own_key)
    assert not proxy.key_works(mover.key)  # its eng team key went with the membership, as the plan said
    rosters = proxy.teams_by_alias()
    assert mover.user_id not in rosters[eng]
    assert mover.user_id in rosters[ops]
    assert mover.user_id in rosters[new]
    results = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    assert {email: (row["action"], row["status"]) for email, row in results.items()} == {
        proxy.email("mover"): ("UPDATED", "SUCCESS"),
        proxy.email("promote"): ("UPDATED", "SUCCESS"),
        proxy.email("same"): ("UNCHANGED", "SUCCESS"),
        proxy.email("fresh"): ("ADDED", "SUCCESS"),
        proxy.email("gone"): ("DELETED", "SUCCESS"),
    }
    assert proxy.key_works(results[proxy.email("fresh")]["api_keys"])
    assert results[proxy.email("fresh")]["api_keys"] not in run.output

    again = run_script("sync_user.py", proxy=proxy, cwd=tmp_path)
    assert again.code == 0, again.output
    assert "No changes: the proxy already matches the file." in again.stdout
    assert {row["action"] for row in again.rows("user_sync_result.csv")} == {"UNCHANGED"}


def test_an_email_in_another_case_is_the_same_user(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    proxy.create_user(proxy.email("Case.Only"), "internal_user")
    write_csv(tmp_path / "user_list.csv", f"email,role\n{proxy.email('CASE.ONLY').upper()},internal_user\n")

    run = run_script("sync_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert [row["action"] for row in run.rows("user_sync_result.csv")] == ["UNCHANGED"]


def test_empty_cells_leave_the_proxy_as_it_is(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    team = proxy.create_team(f"keep-{proxy.tag}")
    proxy.create_user(proxy.email("kept"), "internal_user_viewer", (team,))
    write_csv(tmp_path / "user_list.csv", f"email,role,team_name\n{proxy.email('kept')},,\n")

    run = run_script("sync_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "Users unchanged: 1" in run.stdout
    user = proxy.users()[proxy.email("kept")]
    assert (user.role, user.teams) == ("internal_user_viewer", (team,))


def test_users_outside_the_managed_set_are_never_deleted(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    proxy.create_user(proxy.email("listed"), "internal_user")
    proxy.create_user(proxy.email("norole"), None)
    proxy.create_team(f"t-{proxy.tag}")  # brings the proxy's default_user_id (no email) along
    write_csv(tmp_path / "user_list.csv", f"email,role\n{proxy.email('listed')},internal_user\n")

    run = run_script("sync_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "Users to delete: 0" in run.stdout
    assert set(proxy.users()) == {proxy.email("listed"), proxy.email("norole")}
    with proxy.client() as client:
        assert any(u.user_id == "default_user_id" for u in client.users())


def test_a_plan_over_the_deletion_limit_changes_nothing(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    with proxy.client(workers=8) as client:
        for n in range(8):
            new_user(client, proxy.email(f"old{n}"), role="internal_user", with_key=False)
    write_csv(
        tmp_path / "user_list.csv",
        f"email,role\n{proxy.email('old0')},internal_user\n{proxy.email('newbie')},internal_user\n",
    )

    run = run_script("sync_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 4
    assert "the plan deletes or blocks 7 users, more than the limit of 5" in run.stderr
    assert "rerun with --max-delete 7" in run.stderr
    assert len(proxy.users()) == 8
    assert not (tmp_path / "user_sync_result.csv").exists()

    share = run_script("sync_user.py", "--max-delete", "50%", proxy=proxy, cwd=tmp_path)
    assert share.code == 4
    assert "limit of 4 (--max-delete 50% of 8 managed users)" in share.stderr
    allowed = run_script("sync_user.py", "--max-delete", "7", proxy=proxy, cwd=tmp_path)
    assert allowed.code == 0, allowed.output
    assert set(proxy.users()) == {proxy.email("old0"), proxy.email("newbie")}


def test_no_add_no_update_no_delete(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    proxy.create_user(proxy.email("stay"), "internal_user")
    proxy.create_user(proxy.email("change"), "internal_user")
    write_csv(
        tmp_path / "user_list.csv",
        f"email,role\n{proxy.email('change')},proxy_admin\n{proxy.email('add')},internal_user\n",
    )

    run = run_script("sync_user.py", "--no-add", "--no-update", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "Left out by --no-add/--no-update/--no-delete: 2" in run.stdout  # "stay" is not in the file: not read
    assert {email: u.role for email, u in proxy.users().items()} == {
        proxy.email("stay"): "internal_user",
        proxy.email("change"): "internal_user",
    }
    assert {row["email"]: row["status"] for row in run.rows("user_sync_result.csv")} == {
        proxy.email("change"): "SKIPPED",
        proxy.email("add"): "SKIPPED",
    }


def test_bad_rows_fail_alone_and_protect_their_users(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    proxy.create_user(proxy.email("badrole"), "internal_user")
    write_csv(
        tmp_path / "user_list.csv",
        f"email,role,team_name\n{proxy.email('badrole')},wizard,\n{proxy.email('ok')},internal_user,\n{proxy.email('x')},,nope-{proxy.tag}\n",
    )

    run = run_script("sync_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 1
    rows = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    assert rows[proxy.email("badrole")]["status"] == "FAILED"
    assert rows[proxy.email("badrole")]["error_reason"].startswith("role 'wizard' is not one of")
    assert rows[proxy.email("x")]["error_reason"] == f"team 'nope-{proxy.tag}' does not exist"
    assert rows[proxy.email("ok")]["status"] == "SUCCESS"
    assert set(proxy.users()) == {proxy.email("badrole"), proxy.email("ok")}  # listed, so not deleted


def test_the_list_export_is_a_file_sync_takes_as_it_is(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    a, b = proxy.create_team(f"a-{proxy.tag}"), proxy.create_team(f"b-{proxy.tag}")
    proxy.create_user(proxy.email("one"), "internal_user", (a, b))
    proxy.create_user(proxy.email("two"), "proxy_admin_viewer", (b,))
    proxy.create_user(proxy.email("three"), "proxy_admin")
    export = run_script(
        "list_user.py",
        "--format",
        "csv",
        "--columns",
        "email,role,team_name",
        "--output",
        "user_list.csv",
        proxy=proxy,
        cwd=tmp_path,
    )
    assert export.code == 0, export.output
    writes = proxy.standin.writes() if proxy.standin else 0

    run = run_script("sync_user.py", "--dry-run", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "No changes: the proxy already matches the file." in run.stdout
    if proxy.standin:
        assert proxy.standin.writes() == writes  # the dry run wrote nothing


def test_a_header_only_sync_file_is_refused_with_a_real_proxy(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    proxy.create_user(proxy.email("safe"), "internal_user")
    write_csv(tmp_path / "user_list.csv", "email,role,team_name\n")

    run = run_script("sync_user.py", "--max-delete", "100%", proxy=proxy, cwd=tmp_path)

    assert run.code == 2
    assert "lists no users: a sync would delete every managed user" in run.stderr
    assert list(proxy.users()) == [proxy.email("safe")]


def test_drift_of_one_percent_costs_the_listing_and_one_request_per_change(standin: Proxy, tmp_path: Path) -> None:
    proxy = standin.standin
    teams = [proxy.seed_team(f"team{n}") for n in range(10)]
    for n in range(10_000):
        proxy.seed_user(f"u{n}@example.com", "internal_user", teams=(teams[n % 10],), keys=1)
    lines = [f"u{n}@example.com,internal_user,team{n % 10}" for n in range(10_000)]
    for n in range(0, 10_000, 300):  # 34 role changes
        lines[n] = f"u{n}@example.com,proxy_admin,team{n % 10}"
    for n in range(1, 10_000, 300):  # 34 deletions
        lines[n] = ""
    lines += [f"new{n}@example.com,internal_user,team{n % 10}" for n in range(33)]  # 33 additions
    write_csv(tmp_path / "user_list.csv", "email,role,team_name\n" + "\n".join(line for line in lines if line) + "\n")

    run = run_script("sync_user.py", "--quiet", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "Users to add: 33" in run.stdout
    assert "Users to delete: 34" in run.stdout
    assert "Users to update: 34" in run.stdout
    assert proxy.counts() == {
        "/health/readiness/details": 1,
        "/team/new": 1,  # the lease
        "/team/update": 1,  # the lease holds the proxy
        "/team/delete": 1,
        "/user/list": 101,  # 10,000 users and default_user_id, 100 a page
        "/v2/team/list": 2,  # no other run's lease; the teams
        "/key/list": 34,  # the keys of each deleted user, for the undo file (fewer than 101 pages of every key)
        "/management/v1/users/bulk": 1,  # 33 additions
        "/user/bulk_update": 1,  # 34 role changes
        "/management/v1/users/bulk_delete": 1,  # 34 deletions
    }


def test_leaving_a_team_takes_its_keys_on_a_release_that_keeps_them(tmp_path: Path) -> None:
    """1.65 keeps a user's team keys when the user leaves the team: they would still spend as
    the team's. The tools delete them, as later releases do, and report what happened."""
    with StandIn(release="1.65.8") as proxy:
        standin = Proxy("standin-1.65.8", proxy.url, proxy.master_key, proxy)
        old, new = proxy.seed_team("old"), proxy.seed_team("new")
        mover = proxy.seed_user("mover@example.com", "internal_user", teams=(old,))
        team_key, _ = proxy._insert_key(mover, old, "mover-old")
        own_key, _ = proxy._insert_key(mover, None, "mover-own")
        write_csv(tmp_path / "user_list.csv", "email,role,team_name\nmover@example.com,internal_user,new\n")

        run = run_script("sync_user.py", proxy=standin, cwd=tmp_path)

        assert run.code == 0, run.output
        (row,) = run.rows("user_sync_result.csv")
        assert "left old, 1 team key deleted" in row["detail"]
        assert not standin.key_works(team_key)
        assert standin.key_works(own_key)
        assert mover in proxy.roster(new)


def test_the_sync_summary_counts_the_outcome_not_the_plan(tmp_path: Path) -> None:
    with StandIn(release="1.80.7") as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        standin.fail("/user/new", status=500, skip=1, times=2)
        write_csv(
            tmp_path / "user_list.csv", "email,role\n" + "".join(f"n{n}@example.com,internal_user\n" for n in range(4))
        )

        run = run_script("sync_user.py", "--workers", "1", proxy=proxy, cwd=tmp_path)

    assert run.code == 1
    assert "Sync done: added 2, updated 0, deleted 0, unchanged 0; failed 2;" in run.stdout
    assert sorted(row["status"] for row in run.rows("user_sync_result.csv")) == [
        "FAILED",
        "FAILED",
        "SUCCESS",
        "SUCCESS",
    ]


# -- for real: sync_user.py twice against the stand-in ----------------------------------------------

STANDIN_ROLES = ("internal_user", "internal_user_viewer", "proxy_admin")


Case = tuple[str, list[tuple[str, str | None, int]], list[tuple[str, str, str, str]]]


@st.composite
def standin_cases(draw: st.DrawFn) -> Case:
    """A release; users on the proxy (name, role, team index or -1); the file's rows (email, role,
    teams, max_budget), the emails in any case."""
    names = ["ann", "bob", "cy", "dee", "eve"]
    on_proxy = draw(st.lists(st.sampled_from(names), unique=True, max_size=4))
    users = [(name, draw(st.sampled_from([*STANDIN_ROLES, None])), draw(st.integers(-1, 1))) for name in on_proxy]
    rows = []
    for name in draw(st.lists(st.sampled_from(names), unique=True, min_size=1, max_size=4)):
        email = f"{name.upper() if draw(st.booleans()) else name}-{{tag}}@example.com"
        teams = draw(st.sampled_from(["", "none", "{0}", "{1}", "{0};{1}"]))
        role = draw(st.sampled_from(["", "default", *STANDIN_ROLES]))
        rows.append((email, role, teams, draw(st.sampled_from(["", "25", "none"]))))
    return draw(st.sampled_from(["1.108.7", "1.80.7"])), users, rows


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=standin_cases())
def test_a_second_sync_against_the_stand_in_plans_nothing(tmp_path_factory: pytest.TempPathFactory, case: Case) -> None:
    release, users, rows = case
    tag = uuid.uuid4().hex[:6]
    folder = tmp_path_factory.mktemp("sync_twice")
    with StandIn(release=release) as standin:
        proxy = Proxy("standin", standin.url, standin.master_key, standin)
        teams = [f"eng-{tag}", f"ops-{tag}"]
        team_ids = [proxy.create_team(team) for team in teams]
        with proxy.client() as client:
            for name, role, team in users:
                new_user(client, f"{name}-{tag}@example.com", role=role, team_ids=[team_ids[team]] if team >= 0 else [])
        lines = ["email,role,team_name,max_budget"]
        lines += [",".join([e.format(tag=tag), r, t.format(*teams), b]) for e, r, t, b in rows]
        write_csv(folder / "user_list.csv", "\n".join(lines) + "\n")

        first = run_script("sync_user.py", "--max-delete", "100", "--quiet", proxy=proxy, cwd=folder)
        assert first.code == 0, first.output
        second = run_script("sync_user.py", "--quiet", proxy=proxy, cwd=folder)
        assert second.code == 0, second.output
        assert "No changes: the proxy already matches the file." in second.stdout, second.stdout
