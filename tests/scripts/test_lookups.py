"""Small runs on large proxies look up the users their file names (issue 24): what the listing gave
still holds. The stand-in holds enough users (1,300: 14 pages) that a file of a few rows is looked
up; the proxy's email filter is a substring match in any case, so the tools compare exactly."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from tests.conftest import Proxy, run_script, write_csv
from tests.support.standin import StandIn

CROWD = 1_300


@pytest.fixture(params=["1.108.7", "1.80.7"])
def crowded(request: pytest.FixtureRequest) -> Proxy:
    """A stand-in with enough users that a few rows are looked up rather than listed."""
    with StandIn(release=request.param) as proxy:
        for n in range(CROWD):
            proxy.seed_user(f"crowd{n:04d}@example.org")
        yield Proxy(f"standin-{request.param}", proxy.url, proxy.master_key, proxy)


def _looked_up(proxy: Proxy) -> bool:
    """The run read the users' first page only, then asked for emails: no listing of every user."""
    assert proxy.standin is not None
    return proxy.standin.count("/user/list") < CROWD // 100


def test_a_deletion_by_email_deletes_exactly_that_address_never_one_that_holds_it(
    crowded: Proxy, tmp_path: Path
) -> None:
    assert crowded.standin is not None
    for email in ("t0@example.com", "jt0@example.com", "t0@example.com.au", "T0@EXAMPLE.COM.uk"):
        crowded.standin.seed_user(email, keys=1)
    write_csv(tmp_path / "user_dellist.csv", "email\nT0@Example.com\n")

    run = run_script("del_user.py", proxy=crowded, cwd=tmp_path)

    assert run.code == 0, run.output
    assert _looked_up(crowded)
    assert [row["email"] for row in run.rows("user_del_result.csv")] == ["t0@example.com"]
    assert crowded.standin.user_by_email("t0@example.com") == []
    assert all(crowded.standin.user_by_email(e) for e in ("jt0@example.com", "t0@example.com.au"))


def test_an_address_in_another_unicode_form_or_case_is_the_same_user(crowded: Proxy, tmp_path: Path) -> None:
    assert crowded.standin is not None
    crowded.standin.seed_user(unicodedata.normalize("NFD", "Zoé@Example.com"))  # stored decomposed
    write_csv(tmp_path / "user_addlist.csv", f"email\n{unicodedata.normalize('NFC', 'zoé@example.com')}\n")

    run = run_script("add_user.py", proxy=crowded, cwd=tmp_path)

    assert run.code == 1, run.output
    assert _looked_up(crowded)
    assert [row["error_reason"] for row in run.rows("user_reg_error.csv")] == ["User already exists in the system"]


def test_a_sync_without_deletions_plans_and_records_as_with_the_listing(crowded: Proxy, tmp_path: Path) -> None:
    assert crowded.standin is not None
    team = crowded.standin.seed_team("eng")
    crowded.standin.seed_user("stay@example.com", teams=(team,))
    crowded.standin.seed_user("promote@example.com", teams=(team,))
    write_csv(
        tmp_path / "user_list.csv",
        "email,role,team_name\nstay@example.com,internal_user,eng\nPROMOTE@example.com,proxy_admin,eng\n"
        "new@example.com,internal_user,eng\n",
    )

    run = run_script("sync_user.py", "--no-delete", proxy=crowded, cwd=tmp_path)

    assert run.code == 0, run.output
    assert _looked_up(crowded)
    assert run.stdout.splitlines()[:7] == [
        "Synchronization Plan:",
        "  Users to add: 1",
        "  Users to delete: 0",
        "  Users to update: 1",
        "  Users unchanged: 1",
        "  + new@example.com (Role: internal_user, Team: eng)",
        "  ~ promote@example.com (Role: internal_user -> proxy_admin)",
    ]
    actions = {row["email"]: row["action"] for row in run.rows("user_sync_result.csv")}
    assert actions == {"stay@example.com": "UNCHANGED", "promote@example.com": "UPDATED", "new@example.com": "ADDED"}
    assert len(crowded.standin.user_by_email("new@example.com")) == 1


def test_the_undo_file_of_looked_up_users_is_as_complete_as_with_the_listing(crowded: Proxy, tmp_path: Path) -> None:
    assert crowded.standin is not None
    team = crowded.standin.seed_team("eng")
    gone = crowded.standin.seed_user("gone@example.com", teams=(team,), keys=2)
    write_csv(tmp_path / "user_dellist.csv", f"user_id\n{gone}\n")

    run = run_script("del_user.py", proxy=crowded, cwd=tmp_path)

    assert run.code == 0, run.output
    assert _looked_up(crowded)
    (row,) = run.rows("user_del_undo.csv")
    assert (row["email"], row["team_name"], len(row["keys_lost"].split(";"))) == ("gone@example.com", team, 2)


def test_a_large_file_leaves_taken_plain_addresses_to_the_proxys_own_refusal(crowded: Proxy, tmp_path: Path) -> None:
    """From 1.80 LiteLLM's create refuses an email a user has, in any case: for more than a few
    plain ASCII addresses that check is the cheapest there is (no request). An address in another
    Unicode form is still looked up, as LiteLLM compares those as different texts."""
    assert crowded.standin is not None
    crowded.standin.seed_user("taken@example.com", keys=1)
    crowded.standin.seed_user(unicodedata.normalize("NFD", "chloé@x.com"))
    new = [f"hire{n}@example.com" for n in range(30)]
    write_csv(
        tmp_path / "user_addlist.csv",
        "email\n"
        + "".join(f"{e}\n" for e in new)
        + "TAKEN@Example.com\n"
        + unicodedata.normalize("NFC", "chloé@x.com\n"),
    )

    run = run_script("add_user.py", proxy=crowded, cwd=tmp_path)

    assert run.code == 1, run.output
    assert crowded.standin.count("/user/list") == 3  # the size, then the one non-ASCII address in both forms
    assert sorted(row["email"] for row in run.rows("user_reg_result.csv")) == sorted(new)
    assert {row["email"]: row["error_reason"] for row in run.rows("user_reg_error.csv")} == {
        "TAKEN@Example.com": "User already exists in the system",
        "chloé@x.com": "User already exists in the system",
    }
    assert len(crowded.standin.user_by_email("taken@example.com")) == 1
    assert crowded.standin.count("/user/new") + crowded.standin.count("/management/v1/users/bulk") >= 1


def test_a_dry_run_reads_every_user_its_file_names(crowded: Proxy, tmp_path: Path) -> None:
    assert crowded.standin is not None
    crowded.standin.seed_user("taken@example.com")
    new = [f"hire{n}@example.com" for n in range(30)]
    write_csv(tmp_path / "user_addlist.csv", "email\n" + "".join(f"{e}\n" for e in new) + "Taken@example.com\n")

    run = run_script("add_user.py", "--dry-run", proxy=crowded, cwd=tmp_path)

    assert run.code == 1, run.output
    assert "  ! line 32 Taken@example.com: User already exists in the system" in run.stdout
