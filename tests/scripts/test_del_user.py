"""del_user.py, run as a user runs it, against the stand-in (both releases) and the real proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from litellm_client import User
from tests.conftest import Proxy, bulk, endpoint, new_user, run_script, write_csv
from tests.support.standin import StandIn


def _twin(proxy: Proxy, email: str) -> str:
    """A second user with the same email (in another case), as proxies let in: /user/update with
    an unknown user_id creates that user, email and all."""
    user_id = f"twin-{proxy.tag}"
    answer = requests.post(
        f"{proxy.url}/user/update",
        json={"user_id": user_id, "user_email": email.upper(), "user_role": "internal_user"},
        headers={"Authorization": f"Bearer {proxy.master_key}"},
        timeout=30,
    )
    answer.raise_for_status()
    return user_id


def test_listed_users_go_with_their_keys_and_others_stay(proxy: Proxy, tmp_path: Path) -> None:
    team = proxy.create_team(f"del-{proxy.tag}")
    with proxy.client() as client:
        for name in ("alice", "bob", "keep"):
            new = new_user(
                client, proxy.email(name), role="internal_user", team_ids=[team], key_alias=f"{name}-{proxy.tag}"
            )
            client.generate_key(new.user_id, team_id=None, alias=f"{name}-2-{proxy.tag}")
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('ALICE')}\n {proxy.email('bob')} \n")

    run = run_script("del_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert list(proxy.users()) == [proxy.email("keep")]
    assert proxy.users()[proxy.email("keep")].key_count == 2
    results = sorted(run.rows("user_del_result.csv"), key=lambda r: r["email"])
    assert [(r["email"], r["status"], r["keys_deleted"]) for r in results] == [
        (proxy.email("alice"), "Deleted", "2"),
        (proxy.email("bob"), "Deleted", "2"),
    ]
    assert run.rows("user_del_error.csv") == []
    with proxy.client() as client:
        assert {f"alice-{proxy.tag}", f"bob-2-{proxy.tag}"}.isdisjoint(client.key_aliases())
        roster = next(t.member_ids for t in client.teams() if t.team_id == team)
    assert {u.user_id for u in proxy.users().values()} <= roster
    assert len(roster) == 2  # default_user_id and keep
    assert "Deleted 2 users with 4 API keys, failed 0" in run.stdout


def test_unknown_and_ambiguous_emails_are_reported_and_nothing_else_is_lost(proxy: Proxy, tmp_path: Path) -> None:
    proxy.create_user(proxy.email("twin"))
    twin = _twin(proxy, proxy.email("twin"))
    proxy.create_user(proxy.email("gone"))
    write_csv(
        tmp_path / "user_dellist.csv",
        f"email\n{proxy.email('nobody')}\n{proxy.email('twin')}\n{proxy.email('gone')}\nnot-an-email\n{proxy.email('gone')}\n",
    )

    run = run_script("del_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 1
    reasons = {r["line"]: r["error_reason"] for r in run.rows("user_del_error.csv")}
    assert reasons["2"] == "User not found in the system"
    assert reasons["3"].startswith("2 users have this email (")
    assert twin in reasons["3"]
    assert reasons["5"] == "User not found in the system"  # a name like any other: no user has it
    assert reasons["6"] == "listed twice (first on line 4)"
    assert [r["email"] for r in run.rows("user_del_result.csv")] == [proxy.email("gone")]
    assert len([u for u in _all(proxy) if (u.email or "").lower() == proxy.email("twin")]) == 2

    by_id = write_csv(tmp_path / "by_id.csv", f"user_id,email\n{twin},\n")
    run = run_script("del_user.py", "--csv-file", by_id.name, proxy=proxy, cwd=tmp_path)
    assert run.code == 0, run.output
    assert [u.user_id for u in _all(proxy) if (u.email or "").lower() == proxy.email("twin")] != [twin]


def test_all_matches_deletes_every_user_with_the_email(proxy: Proxy, tmp_path: Path) -> None:
    proxy.create_user(proxy.email("twin"))
    _twin(proxy, proxy.email("twin"))
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('twin')}\n")

    run = run_script("del_user.py", "--all-matches", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert len(run.rows("user_del_result.csv")) == 2
    assert not [u for u in _all(proxy) if (u.email or "").lower() == proxy.email("twin")]


def test_dry_run_lists_users_with_key_counts_and_sends_no_write(proxy: Proxy, tmp_path: Path) -> None:
    user_id = proxy.create_user(proxy.email("dry"), key_alias=f"dry-{proxy.tag}")
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('dry')}\n")
    if proxy.standin:
        proxy.standin.reset_log()

    run = run_script("del_user.py", "--dry-run", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert f"- {proxy.email('dry')} (user_id: {user_id}, keys: 1)" in run.stdout
    assert "Users to delete: 1 (with 1 API key)" in run.stdout
    assert list(proxy.users()) == [proxy.email("dry")]
    if proxy.standin:
        assert proxy.standin.writes() == 0


def test_a_user_deleted_by_someone_else_mid_run_does_not_stop_the_batch(paths: Proxy, tmp_path: Path) -> None:
    standin = paths
    ids = [standin.standin.seed_user(f"u{n}@example.com", keys=1) for n in range(5)]
    standin.standin.fail(endpoint(standin, "delete"), "call", call=lambda: standin.standin.delete_user(ids[2]))
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"u{n}@example.com\n" for n in range(5)))

    run = run_script("del_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 1
    assert sorted(r["email"] for r in run.rows("user_del_result.csv")) == [f"u{n}@example.com" for n in (0, 1, 3, 4)]
    (error,) = run.rows("user_del_error.csv")
    assert (error["line"], error["user_id"]) == ("4", ids[2])
    assert error["error_reason"] == "User not found in the system (deleted by someone else during this run)"
    assert standin.standin.user_emails() == []
    # /user/delete fails the whole batch for one unknown user (sent again without it); the bulk delete answers per user
    assert standin.standin.count(endpoint(standin, "delete")) == (1 if bulk(standin) else 2)


def test_a_thousand_users_go_in_the_fewest_delete_requests(standin: Proxy, tmp_path: Path) -> None:
    for n in range(1000):
        standin.standin.seed_user(f"u{n}@example.com", keys=1)
    standin.standin.seed_user("stays@example.com")
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"u{n}@example.com\n" for n in range(1000)))

    run = run_script("del_user.py", "--quiet", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert standin.standin.counts() == {
        "/health/readiness/details": 1,
        "/team/new": 1,
        "/v2/team/list": 2,  # no other run's lease; the teams, for the undo file
        "/user/list": 11,
        "/key/list": 10,  # every key once, for the undo file (fewer requests than one per user)
        "/management/v1/users/bulk_delete": 2,  # 500 a request (100 a request before 1.108)
        "/team/update": 1,  # the lease holds the proxy
        "/team/delete": 1,
    }
    assert standin.standin.user_emails() == ["stays@example.com"]


def test_the_undo_file_names_every_key_of_a_few_deleted_users_looked_up_one_by_one(
    standin: Proxy, tmp_path: Path
) -> None:
    """Team keys and a user's own keys alike; for two users among many keys, one request each
    rather than a listing of every key."""
    proxy = standin.standin
    team = proxy.seed_team("eng")
    in_team = proxy.seed_user("in-team@example.com", teams=(team,))
    mixed = proxy.seed_user("mixed@example.com", teams=(team,))
    with proxy.lock:
        proxy._insert_key(in_team, team, "in-team-key")
        proxy._insert_key(mixed, team, "mixed-team-key")
        proxy._insert_key(mixed, None, "mixed-own-key")
    for n in range(300):  # enough keys elsewhere that a user's keys are looked up, not all keys listed
        proxy.seed_user(f"other{n}@example.com", keys=1)
    write_csv(tmp_path / "user_dellist.csv", "email\nin-team@example.com\nmixed@example.com\n")

    run = run_script("del_user.py", "--quiet", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    lost = {row["email"]: sorted(row["keys_lost"].split(";")) for row in run.rows("user_del_undo.csv")}
    assert lost == {"in-team@example.com": ["in-team-key"], "mixed@example.com": ["mixed-own-key", "mixed-team-key"]}
    assert proxy.count("/key/list") == 2
    assert len(proxy.user_emails()) == 300


def test_a_file_of_many_users_has_every_key_listed_beside_the_users_for_its_undo_file(
    standin: Proxy, tmp_path: Path
) -> None:
    proxy = standin.standin
    team = proxy.seed_team("eng")
    for n in range(120):
        user_id = proxy.seed_user(f"u{n}@example.com", teams=(team,))
        with proxy.lock:
            proxy._insert_key(user_id, team, f"team-key-{n}")
            if n == 0:
                proxy._insert_key(user_id, None, "own-key-0")
    proxy.seed_user("stays@example.com", keys=1)
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"u{n}@example.com\n" for n in range(120)))
    proxy.fail("/user/list", "delay_before", seconds=0.5, times=2)  # both pages of users: slow

    run = run_script("del_user.py", "--quiet", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    lost = {row["email"]: sorted(row["keys_lost"].split(";")) for row in run.rows("user_del_undo.csv")}
    assert lost == {
        f"u{n}@example.com": ["own-key-0", "team-key-0"] if n == 0 else [f"team-key-{n}"] for n in range(120)
    }
    assert proxy.count("/key/list") == 2  # 122 keys, 100 a page...
    answered = [path for _, path, _ in proxy.log]
    last_page_of_users = len(answered) - 1 - answered[::-1].index("/user/list")
    assert "/key/list" not in answered[last_page_of_users:]  # ...read beside the users, not after them
    assert proxy.user_emails() == ["stays@example.com"]


def test_where_every_key_takes_more_requests_than_the_file_has_rows_each_users_keys_are_looked_up(
    standin: Proxy, tmp_path: Path
) -> None:
    proxy = standin.standin
    for n in range(100):
        proxy.seed_user(f"u{n}@example.com", keys=1)
    for n in range(10_100):
        proxy.seed_user(f"other{n}@example.com", keys=1)
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"u{n}@example.com\n" for n in range(100)))

    run = run_script("del_user.py", "--quiet", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert all(row["keys_lost"] for row in run.rows("user_del_undo.csv"))
    assert proxy.count("/key/list") == 1 + 100  # the first page says 102 pages: one request per user instead
    assert len(proxy.user_emails()) == 10_100


def _all(proxy: Proxy) -> list[User]:
    with proxy.client() as client:
        return list(client.users(email_contains=proxy.tag))


# -- before 1.90 the listing leaves max_parallel_requests out: the undo file reads it -------------------


def _limited_proxy(server: StandIn, crowd: int) -> Proxy:
    """crowd users, and limited@example.com with max_parallel_requests 7 (the listing hides it)."""
    for n in range(crowd):
        server.seed_user(f"crowd{n:04d}@example.org")
    user_id = server.seed_user("limited@example.com")
    with server.lock:
        server.users[user_id]["max_parallel_requests"] = 7
    return Proxy("standin-1.80.7", server.url, server.master_key, server)


@pytest.mark.parametrize("column", ["email", "user_id"])
@pytest.mark.parametrize(
    ("crowd", "table", "fault"),
    [
        (5, True, None),  # the users deleted outnumber the listing's pages: the whole table, one request
        (300, False, None),  # a few users on a larger proxy: each user's /user/info
        (5, False, 404),  # a proxy without /spend/users: each user's /user/info
    ],
)
def test_the_undo_file_holds_max_parallel_requests_read_the_cheapest_way(
    tmp_path: Path, column: str, crowd: int, table: bool, fault: int | None
) -> None:
    with StandIn(release="1.80.7") as server:
        proxy = _limited_proxy(server, crowd)
        cell = "limited@example.com" if column == "email" else server.user_by_email("limited@example.com")[0]["user_id"]
        write_csv(tmp_path / "user_dellist.csv", f"{column}\n{cell}\n")
        if fault:
            server.fail("/spend/users", status=fault)

        run = run_script("del_user.py", proxy=proxy, cwd=tmp_path)

        assert run.code == 0, run.output
        assert [row["max_parallel_requests"] for row in run.rows("user_del_undo.csv")] == ["7"]
        assert (server.count("/spend/users"), server.count("/user/info")) == (
            (1, 0) if table else (int(bool(fault)), 1)
        )
        assert server.user_by_email("limited@example.com") == []


@pytest.mark.parametrize("column", ["email", "user_id"])
def test_a_failed_read_of_the_user_table_stops_the_run_before_any_change(tmp_path: Path, column: str) -> None:
    with StandIn(release="1.80.7") as server:
        proxy = _limited_proxy(server, 5)
        cell = "limited@example.com" if column == "email" else server.user_by_email("limited@example.com")[0]["user_id"]
        write_csv(tmp_path / "user_dellist.csv", f"{column}\n{cell}\n")
        server.fail("/spend/users", status=500, times=10)

        run = run_script("del_user.py", proxy=proxy, cwd=tmp_path)

        assert run.code == 3, run.output  # the proxy could not be used
        assert "Nothing was changed." in run.stderr
        assert server.user_by_email("limited@example.com") != []
        assert server.count("/user/delete") == 0
