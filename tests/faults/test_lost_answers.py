"""Answers the proxy never sent, and others acting meanwhile: a request that may have been
applied is looked for, never sent again blindly; every row is recorded once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Proxy, accounted_once, addlist, endpoint, run_script, write_csv
from tests.support.standin import StandIn


def test_a_lost_answer_to_a_delete_is_checked_not_reported_as_missing(paths: Proxy, tmp_path: Path) -> None:
    assert paths.standin is not None
    for n in range(5):
        paths.standin.seed_user(f"d{n}@example.com", keys=1)
    lost = paths.standin.fail(endpoint(paths, "delete"), "drop_after")
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"d{n}@example.com\n" for n in range(5)))

    run = run_script("del_user.py", proxy=paths, cwd=tmp_path)

    assert lost.fired
    assert run.code == 0, run.output
    assert [row["status"] for row in run.rows("user_del_result.csv")] == ["Deleted"] * 5
    assert run.rows("user_del_error.csv") == []
    assert paths.standin.user_emails() == []
    assert paths.standin.count(endpoint(paths, "delete")) == 1  # looked for afterwards, never sent again


@pytest.mark.parametrize("path", ["/team/new", "/invitation/new"])
def test_lost_answers_to_other_creates(paths: Proxy, tmp_path: Path, path: str) -> None:
    """The run's own lease is a /team/new too: the fault skips it and hits the team the file makes."""
    assert paths.standin is not None
    paths.standin.seed_team("seeded")  # invitations need the proxy's own default user
    emails = addlist(tmp_path / "user_addlist.csv", 3, team="brand-new")
    lost = paths.standin.fail(path, "drop_after", skip=1 if path == "/team/new" else 0)

    run = run_script("add_user.py", "--create-teams", "--invite", proxy=paths, cwd=tmp_path)

    assert lost.fired
    assert run.code == 0, run.output
    results = accounted_once(run, emails)
    assert all(r["invitation_url"] for r in results.values())
    assert [t["team_alias"] for t in paths.standin.teams.values()].count("brand-new") == 1
    assert paths.standin.count("/team/new") == 2  # the lease and the team: the lost one was looked for, not resent


def test_a_join_for_a_user_deleted_meanwhile_leaves_no_ghost(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    proxy = standin.standin
    team = proxy.seed_team("joiners")
    leaver = proxy.seed_user("leaver@example.com", "internal_user")
    proxy.seed_user("stayer@example.com", "internal_user")
    proxy.fail("/team/member_add", "call", call=lambda: proxy.delete_user(leaver))
    write_csv(
        tmp_path / "user_list.csv",
        "email,role,team_name\nleaver@example.com,internal_user,joiners\nstayer@example.com,internal_user,joiners\n",
    )

    run = run_script("sync_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 1
    rows = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    assert rows["leaver@example.com"]["status"] == "FAILED"
    assert (
        "User not found in the system (deleted by someone else during this run)"
        in rows["leaver@example.com"]["error_reason"]
    )
    assert rows["stayer@example.com"]["status"] == "SUCCESS"
    assert leaver not in proxy.users
    assert leaver not in proxy.roster(team)


def test_a_create_cut_off_by_a_dying_proxy_says_so_and_a_fed_back_error_file_finishes_it(tmp_path: Path) -> None:
    with StandIn(release="1.80.7") as proxy:
        standin = Proxy("standin-1.80.7", proxy.url, proxy.master_key, proxy)
        proxy.fail("/user/new", "call", skip=1, call=proxy.crash)  # the second create is made, then the proxy dies
        write_csv(
            tmp_path / "user_addlist.csv", "email,key_name\nm0@example.com,k0\nm1@example.com,k1\nm2@example.com,k2\n"
        )

        run = run_script("add_user.py", "--workers", "1", "--timeout", "2", proxy=standin, cwd=tmp_path)
        proxy.start()

        assert run.code == 1
        errors = {row["email"]: row for row in run.rows("user_reg_error.csv")}
        maybe = errors["m1@example.com"]
        assert "the user may have been created: check" in maybe["error_reason"]
        assert "feed this error file back to add_user.py" in maybe["error_reason"]
        assert maybe["user_id"] == proxy.user_by_email("m1@example.com")[0]["user_id"]
        assert errors["m2@example.com"]["error_reason"].startswith(("not started:", "cannot reach the proxy"))
        assert proxy.user_by_email("m2@example.com") == []  # never sent, or refused before it was read

        again = run_script("add_user.py", "--csv-file", "user_reg_error.csv", proxy=standin, cwd=tmp_path)

        assert again.code == 0, again.output
        rows = {row["email"]: row for row in again.rows("user_reg_result.csv")}
        assert sorted(rows) == ["m1@example.com", "m2@example.com"]
        assert all(standin.key_works(row["api_keys"]) for row in rows.values())
        assert [len(proxy.user_by_email(e)) for e in ("m0@example.com", "m1@example.com", "m2@example.com")] == [
            1,
            1,
            1,
        ]
        assert sorted(k["key_alias"] for k in proxy.keys.values()) == ["k0", "k1", "k2"]


def test_a_user_id_with_a_comma_and_a_lost_delete_answer(tmp_path: Path) -> None:
    with StandIn(release="1.80.7") as proxy:
        standin = Proxy("standin-1.80.7", proxy.url, proxy.master_key, proxy)
        proxy.seed_user("comma@example.com", user_id="a,b")
        proxy.fail("/user/delete", "drop_before")  # lost before the proxy acted: the user is still there
        write_csv(tmp_path / "user_dellist.csv", 'user_id,email\n"a,b",comma@example.com\n')

        run = run_script("del_user.py", proxy=standin, cwd=tmp_path)

        assert run.code == 0, run.output
        assert proxy.user_emails() == []
        assert [row["status"] for row in run.rows("user_del_result.csv")] == ["Deleted"]


def test_a_lost_delete_answer_does_not_claim_the_deletion(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    for n in range(3):
        standin.standin.seed_user(f"g{n}@example.com", keys=1)
    path = "/management/v1/users/bulk_delete"
    standin.standin.fail(path, "drop_after")
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"g{n}@example.com\n" for n in range(3)))

    run = run_script("del_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    rows = run.rows("user_del_result.csv")
    assert [row["status"] for row in rows] == ["Deleted"] * 3
    assert all("the proxy's answer was lost and the user was gone afterwards" in row["detail"] for row in rows)


def test_a_sync_whose_create_answer_was_lost_is_finished_with_a_key_by_the_next_sync(tmp_path: Path) -> None:
    """The create is made, its answer lost, and the proxy cannot be asked whether it was made: the
    first sync says so; the user stays in the journal until a run hands out its key."""
    with StandIn(release="1.80.7") as proxy:
        standin = Proxy("standin-1.80.7", proxy.url, proxy.master_key, proxy)
        proxy.seed_user("stays@example.com")
        lost = proxy.fail("/user/new", "drop_after")
        unasked = proxy.fail("/user/list", status=500, skip=1, times=40)  # the look for it fails; the plan's did not
        write_csv(
            tmp_path / "user_list.csv", "email,role\nstays@example.com,internal_user\nnew@example.com,internal_user\n"
        )

        first = run_script("sync_user.py", "--timeout", "2", proxy=standin, cwd=tmp_path)

        assert (lost.seen, unasked.seen > 1) == (1, True)
        assert first.code == 1, first.output
        (row,) = [r for r in first.rows("user_sync_result.csv") if r["email"] == "new@example.com"]
        assert "the user may have been created: check" in row["error_reason"]
        assert (tmp_path / "user_sync_inflight.csv").exists()
        (created,) = proxy.user_by_email("new@example.com")
        proxy.faults.clear()

        second = run_script("sync_user.py", proxy=standin, cwd=tmp_path)

        assert second.code == 0, second.output
        assert f"  + new@example.com (finish user_id {created['user_id']}" in second.stdout
        (done,) = [r for r in second.rows("user_sync_result.csv") if r["email"] == "new@example.com"]
        assert (done["action"], done["status"]) == ("ADDED", "SUCCESS")
        assert standin.key_works(done["api_keys"])
        assert len(proxy.user_by_email("new@example.com")) == 1
        assert not (tmp_path / "user_sync_inflight.csv").exists()
        third = run_script("sync_user.py", "--check", proxy=standin, cwd=tmp_path)
        assert third.code == 0, third.output
