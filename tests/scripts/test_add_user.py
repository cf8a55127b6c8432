"""add_user.py, run as a user runs it, against the stand-in (both releases) and the real proxy."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from tests.conftest import Proxy, bulk, endpoint, run_script, write_csv
from tests.support.standin import StandIn


def test_users_get_roles_teams_and_working_keys(proxy: Proxy, tmp_path: Path) -> None:
    eng, research = f"eng-{proxy.tag}", f"research-{proxy.tag}"
    eng_id, research_id = proxy.create_team(eng), proxy.create_team(research)
    write_csv(
        tmp_path / "user_addlist.csv",
        f"""
email,role,team_name,key_name
{proxy.email("alice")},internal_user,{eng},alice-{proxy.tag}
{proxy.email("bob")},proxy_admin_viewer,{eng};{research},bob-{proxy.tag}
{proxy.email("carol")},internal_user_view_only,,
{proxy.email("dan")},,{research},
""",
    )
    run = run_script("add_user.py", "--debug", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    users = proxy.users()
    assert {email: (u.role, set(u.teams)) for email, u in users.items()} == {
        proxy.email("alice"): ("internal_user", {eng_id}),
        proxy.email("bob"): ("proxy_admin_viewer", {eng_id, research_id}),
        proxy.email("carol"): ("internal_user_viewer", set()),
        proxy.email("dan"): ("proxy_admin", {research_id}),  # the documented default role
    }
    rosters = proxy.teams_by_alias()
    assert {users[proxy.email(n)].user_id for n in ("alice", "bob")} <= set(rosters[eng])
    assert {users[proxy.email(n)].user_id for n in ("bob", "dan")} <= set(rosters[research])
    results = {row["email"]: row for row in run.rows("user_reg_result.csv")}
    assert set(results) == set(users)
    assert all(row["status"] == "created" and proxy.key_works(row["api_keys"]) for row in results.values())
    with proxy.client() as client:
        aliases = client.key_aliases()
        key_teams = {
            name: [(k.alias, k.team_id) for k in client.user_keys(users[proxy.email(name)].user_id)]
            for name in ("alice", "bob")
        }
    assert {f"alice-{proxy.tag}", f"bob-{proxy.tag}"} <= aliases
    assert key_teams == {
        "alice": [(f"alice-{proxy.tag}", eng_id)],  # one team: the key is the team's too
        "bob": [(f"bob-{proxy.tag}", None)],
    }
    assert stat.S_IMODE((tmp_path / "user_reg_result.csv").stat().st_mode) == 0o600
    for row in results.values():
        assert row["api_keys"] not in run.output
    assert proxy.master_key not in run.output
    assert "1 got the default role proxy_admin" in run.stdout


def test_bad_rows_go_to_the_error_file_and_good_rows_are_created(proxy: Proxy, tmp_path: Path) -> None:
    team = f"ops-{proxy.tag}"
    proxy.create_team(team)
    proxy.create_user(proxy.email("taken"))
    with proxy.client() as client:
        client.generate_key(
            proxy.create_user(proxy.email("owner"), with_key=False), team_id=None, alias=f"used-{proxy.tag}"
        )
    write_csv(
        tmp_path / "user_addlist.csv",
        f"""
email,role,team_name,key_name
{proxy.email("good1")},internal_user,{team},
not-an-email,internal_user,,
{proxy.email("badrole")},superuser,,
{proxy.email("TAKEN")},internal_user,,
{proxy.email("noteam")},internal_user,missing-{proxy.tag},
{proxy.email("usedkey")},internal_user,,used-{proxy.tag}
{proxy.email("GOOD1")},internal_user,,
{proxy.email("good2")},,,twice-{proxy.tag}
{proxy.email("dupkey")},internal_user,,twice-{proxy.tag}
""",
    )
    run = run_script("add_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 1, run.output
    errors = {row["line"]: row for row in run.rows("user_reg_error.csv")}
    reasons = {line: row["error_reason"] for line, row in errors.items()}
    assert reasons == {
        "3": "invalid email 'not-an-email': not an address a mail system accepts, nor a user's on the proxy",
        "4": "role 'superuser' is not one of proxy_admin, proxy_admin_viewer, internal_user, "
        "internal_user_viewer (or default)",
        "5": "User already exists in the system",
        "6": f"team 'missing-{proxy.tag}' does not exist (--create-teams creates it)",
        "7": f"key name 'used-{proxy.tag}' is already used on the proxy",
        "8": "duplicate email in the file (first on line 2)",
        "10": "duplicate key name in the file (first on line 9)",
    }
    assert errors["4"]["email"] == proxy.email("badrole")  # the input columns come back, to fix and feed back
    assert errors["4"]["role"] == "superuser"
    created = {row["email"] for row in run.rows("user_reg_result.csv")}
    assert created == {proxy.email("good1"), proxy.email("good2")}
    assert set(proxy.users()) == {proxy.email(n) for n in ("taken", "owner", "good1", "good2")}


def test_a_second_run_creates_nothing_and_reports_every_row(proxy: Proxy, tmp_path: Path) -> None:
    write_csv(tmp_path / "user_addlist.csv", f"email,role\n{proxy.email('a')},internal_user\n{proxy.email('b')},\n")
    first = run_script("add_user.py", proxy=proxy, cwd=tmp_path)
    assert first.code == 0, first.output
    before = proxy.users()

    again = run_script("add_user.py", proxy=proxy, cwd=tmp_path)

    assert again.code == 1
    assert [row["error_reason"] for row in again.rows("user_reg_error.csv")] == [
        "User already exists in the system"
    ] * 2
    assert proxy.users() == before
    kept = sorted(p.name for p in tmp_path.glob("user_reg_result*.csv"))
    assert len(kept) == 2  # the first run's result file (its keys) is kept under a timestamped name
    skipped = run_script("add_user.py", "--skip-existing", proxy=proxy, cwd=tmp_path)
    assert skipped.code == 0
    assert [row["status"] for row in skipped.rows("user_reg_result.csv")] == ["skipped", "skipped"]
    assert proxy.users() == before


def test_dry_run_changes_nothing(proxy: Proxy, tmp_path: Path) -> None:
    team = f"dry-{proxy.tag}"
    write_csv(tmp_path / "user_addlist.csv", f"email,team_name,key_name\n{proxy.email('x')},{team},x-{proxy.tag}\n")
    run = run_script("add_user.py", "--dry-run", "--create-teams", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert f"+ team {team}" in run.stdout
    assert f"+ {proxy.email('x')} (Role: proxy_admin, Teams: {team}, Key: x-{proxy.tag})" in run.stdout
    assert proxy.users() == {}
    assert proxy.teams_by_alias() == {}
    assert list(tmp_path.glob("*_result.csv")) == []
    if proxy.standin:
        assert proxy.standin.writes() == 0


def test_create_teams_and_invitations(proxy: Proxy, tmp_path: Path) -> None:
    team = f"new-{proxy.tag}"
    write_csv(
        tmp_path / "user_addlist.csv", f"email,team_name\n{proxy.email('n1')},{team}\n{proxy.email('n2')},{team}\n"
    )
    run = run_script("add_user.py", "--create-teams", "--invite", "--no-key", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    users = proxy.users()
    assert sorted(proxy.teams_by_alias()[team]) == sorted(["default_user_id", *(u.user_id for u in users.values())])
    rows = run.rows("user_reg_result.csv")
    assert all(row["invitation_url"].startswith(f"{proxy.url}/ui/onboarding?id=") for row in rows)
    assert all(row["api_keys"] == "" for row in rows)
    assert all(u.key_count == 0 for u in users.values())


def test_strict_stops_before_any_change(proxy: Proxy, tmp_path: Path) -> None:
    write_csv(tmp_path / "users.csv", f"email,role\n{proxy.email('ok')},internal_user\n{proxy.email('bad')},chief\n")
    run = run_script("add_user.py", "--csv-file", "users.csv", "--strict", proxy=proxy, cwd=tmp_path)

    assert run.code == 2
    assert "users.csv line 3: role 'chief' is not one of" in run.stderr
    assert proxy.users() == {}


def test_parallel_rows_into_one_team_lose_no_member(proxy: Proxy, tmp_path: Path) -> None:
    """Older releases rewrite a roster without a lock: writes to one team must not overlap."""
    team = f"big-{proxy.tag}"
    team_id = proxy.create_team(team)
    count = 200 if proxy.real else 60
    lines = "".join(f"{proxy.email(f'p{n:03d}')},internal_user,{team},p{n}-{proxy.tag}\n" for n in range(count))
    write_csv(tmp_path / "user_addlist.csv", "email,role,team_name,key_name\n" + lines)

    run = run_script("add_user.py", "--workers", "8", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    users = proxy.users()
    assert len(users) == count
    roster = set(proxy.teams_by_alias()[team])
    assert {u.user_id for u in users.values()} <= roster
    assert all(u.teams == (team_id,) for u in users.values())


def test_requests_made_are_no_listing_then_one_per_500_users(standin: Proxy, tmp_path: Path) -> None:
    for n in range(250):
        standin.standin.seed_user(f"existing{n}@example.org")
    team = standin.standin.seed_team("eng")
    lines = "".join(f"new{n}@example.com,internal_user,eng,k{n}\n" for n in range(300))
    write_csv(tmp_path / "user_addlist.csv", "email,role,team_name,key_name\n" + lines)

    run = run_script("add_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert standin.standin.counts() == {
        "/health/readiness/details": 1,  # the release, once
        "/team/new": 1,  # the run's lease, taken...
        "/v2/team/list": 2,  # ...no other run's lease found; the teams
        "/key/aliases": 1,  # the key names, by the text they share ("k"): none taken
        "/management/v1/users/bulk": 1,  # 300 users, their teams and keys in one request; it refuses a taken email
        "/team/update": 1,  # the lease holds the proxy
        "/team/delete": 1,  # the lease, given back
    }
    assert len(standin.standin.roster(team)) == 301


@pytest.mark.parametrize("fault", ["drop_after", "delay_after"])
def test_a_lost_answer_is_checked_not_sent_again(paths: Proxy, tmp_path: Path, fault: str) -> None:
    standin = paths
    create = endpoint(standin, "create")
    standin.standin.fail(create, fault, skip=0 if bulk(standin) else 1, seconds=3)
    team = standin.standin.seed_team("lost")  # the recovery joins the team the create held: no deadlock
    write_csv(
        tmp_path / "user_addlist.csv",
        "email,key_name,team_name,models,tpm_limit\n"
        "a@example.com,ka,lost,gpt-4o,10\nb@example.com,kb,lost,gpt-4o,10\nc@example.com,kc,lost,gpt-4o,10\n",
    )

    run = run_script("add_user.py", "--timeout", "1", "--workers", "1", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert standin.standin.count(create) == (1 if bulk(standin) else 3)
    rows = {row["email"]: row for row in run.rows("user_reg_result.csv")}
    assert sorted(rows) == ["a@example.com", "b@example.com", "c@example.com"]
    assert all(standin.key_works(row["api_keys"]) for row in rows.values())
    assert [len(standin.standin.user_by_email(e)) for e in rows] == [1, 1, 1]
    assert sorted(standin.standin.roster(team)) == sorted(["default_user_id", *(r["user_id"] for r in rows.values())])
    with standin.client() as client:
        assert {u.key_count for u in client.users() if u.email} == {1}  # the unseen key was replaced
        keys = [k for r in rows.values() for k in client.user_keys(r["user_id"])]
        assert client.key_aliases() == {"ka", "kb", "kc"}
    # a replaced key is what /user/new would have made: the user's models and limits, in the user's team
    made = [standin.standin.keys[key.token] for key in keys]
    assert {(key["team_id"], tuple(key["models"]), key["tpm_limit"]) for key in made} == {(team, ("gpt-4o",), 10)}


@pytest.mark.parametrize(
    ("public", "reported", "expected", "why"),
    [
        ("https://ai.example.com", "https://proxy.example.com", "https://ai.example.com", "LITELLM_PUBLIC_URL"),
        ("", "https://proxy.example.com", "https://proxy.example.com", "the proxy's PROXY_BASE_URL"),
        ("", None, "", "set LITELLM_PUBLIC_URL if users reach it elsewhere"),
    ],
)
def test_invitation_links_use_the_public_url(
    tmp_path: Path, public: str, reported: str | None, expected: str, why: str
) -> None:
    with StandIn(proxy_base_url=reported) as proxy:
        proxy.seed_team("seeded")  # invitations need the proxy's default user
        standin = Proxy("standin", proxy.url, proxy.master_key, proxy)
        write_csv(tmp_path / "user_addlist.csv", "email\ninv@example.com\n")

        run = run_script(
            "add_user.py", "--invite", "--no-key", proxy=standin, cwd=tmp_path,
            env={"LITELLM_PUBLIC_URL": public} if public else None,
        )  # fmt: skip

    assert run.code == 0, run.output
    (row,) = run.rows("user_reg_result.csv")
    assert row["invitation_url"].startswith(f"{expected or proxy.url}/ui/onboarding?id=")
    assert why in run.stdout


def test_without_keys_the_result_file_is_not_called_a_key_file(standin: Proxy, tmp_path: Path) -> None:
    write_csv(tmp_path / "user_addlist.csv", "email\nnokey@example.com\n")

    run = run_script("add_user.py", "--no-key", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "holds API keys" not in run.stdout
    assert oct((tmp_path / "user_reg_result.csv").stat().st_mode & 0o777) == "0o644"


def test_a_long_run_prints_its_progress_on_stderr_only(tmp_path: Path) -> None:
    with StandIn(release="1.80.7", latency=0.05) as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        write_csv(tmp_path / "user_addlist.csv", "email\n" + "".join(f"p{n:03d}@example.com\n" for n in range(120)))

        run = run_script("add_user.py", "--workers", "2", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert re.search(r"^\[\d+/120\] users created, \d+/s, about \d+ (s|min) left$", run.stderr, re.M), run.stderr
    assert "[" not in run.stdout


def test_before_1_100_one_teams_users_are_created_in_parallel_and_the_members_its_roster_lost_rejoin(
    tmp_path: Path,
) -> None:
    """1.80.7 rewrites a roster whole, so parallel creates into one team drop members (the
    stand-in's race window makes sure some are dropped): they are put back, 100 a request."""
    with StandIn(release="1.80.7") as server:
        proxy = Proxy("standin-1.80.7", server.url, server.master_key, server)
        team = server.seed_team("eng")
        emails = [f"hire{n:03d}@example.com" for n in range(120)]
        write_csv(tmp_path / "user_addlist.csv", "email,team_name\n" + "".join(f"{e},eng\n" for e in emails))

        run = run_script("add_user.py", "--workers", "8", proxy=proxy, cwd=tmp_path)

        assert run.code == 0, run.output
        assert server.count("/user/new") == len(emails)  # in parallel, one each
        assert server.count("/team/member_add") >= 1  # the roster lost some, and they came back
        assert server.count("/team/info") == 1
        created = {row["user_id"] for row in run.rows("user_reg_result.csv")}
        assert len(created) == len(emails)
        assert created <= set(server.roster(team))
