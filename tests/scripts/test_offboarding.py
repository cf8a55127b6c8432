"""Offboarding (issue 16): block before delete, reinstate, purge, undo files and the drift check,
run as a user runs the scripts, on the stand-in and (the `proxy` fixture) end to end on the real
proxy.

sync plans against every user on the proxy, so on a real proxy the tests that sync first delete
the managed users earlier tests left (`clean`). Each command a test runs is printed with its
output (`pytest -rP` shows them), so a run against the real proxy doubles as a transcript.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from litellm_client import NewUser, error_message
from tests.conftest import ROOT, Proxy, Run, clean_env, endpoint, new_user, run_script, write_csv

MARK = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # offboarded_at, as the tools write it
LONG_AGO = "2020-01-01T00:00:00Z"
UNDO_COLUMNS = [
    "email",
    "role",
    "team_name",
    "admin_of",
    "user_id",
    "state",
    "user_alias",
    "max_budget",
    "budget_duration",
    "models",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "metadata",
    "keys_lost",
]
# every request that changes a user, a key or a roster (the lease's /team/new is not one)
CHANGE_PATHS = (
    "/user/new",
    "/management/v1/users/bulk",
    "/user/update",
    "/user/bulk_update",
    "/user/delete",
    "/management/v1/users/bulk_delete",
    "/key/block",
    "/key/unblock",
    "/key/delete",
    "/key/generate",
    "/team/member_add",
    "/team/member_delete",
)


@pytest.fixture
def clean(proxy: Proxy) -> Proxy:
    if proxy.real:
        proxy.clear_managed_users()
    return proxy


# -- helpers ------------------------------------------------------------------------------------


def _run(script: str, *args: str, proxy: Proxy, cwd: Path) -> Run:
    """run_script, printing the command and what it said (a transcript with pytest -rP)."""
    run = run_script(script, *args, proxy=proxy, cwd=cwd)
    print(f"$ python {script} {' '.join(args)}\n{run.stdout}{run.stderr}[exit {run.code}]\n")
    return run


def _show(path: Path) -> None:
    """Print a file a run wrote (for the transcript; never one that holds API keys)."""
    print(f"$ cat {path.name}\n{path.read_text(encoding='utf-8')}")


def _use(proxy: Proxy, key: str) -> tuple[int, str]:
    """Make a request with a user's key, as its owner would: the status and the proxy's message."""
    answer = requests.get(f"{proxy.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return answer.status_code, "" if answer.status_code == 200 else error_message(answer.json())


def _refused_as_blocked(proxy: Proxy, key: str) -> bool:
    status, message = _use(proxy, key)
    return status == 401 and message.startswith("Authentication Error, Key is blocked.")


def _at(mark: str) -> datetime:
    return datetime.fromisoformat(mark.replace("Z", "+00:00"))


def _lines(run: Run, prefix: str) -> list[str]:
    return sorted(line for line in run.stdout.splitlines() if line.startswith(prefix))


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@dataclass
class Staff:
    """Ten users of one team, each with a key, a budget and a cost centre set at creation."""

    team: str  # alias
    team_id: str
    users: dict[str, NewUser]  # email -> the user as created, in order

    @property
    def emails(self) -> list[str]:
        return list(self.users)

    def write(self, path: Path, emails: list[str], active: list[str] = ()) -> None:  # type: ignore[assignment]
        """A sync file listing these users as they are; those in `active` with the state active
        (a blocked one is reinstated), the others with an empty state (left as it is)."""
        write_csv(
            path,
            "email,role,team_name,state\n"
            + "".join(f"{e},internal_user,{self.team},{'active' if e in active else ''}\n" for e in emails),
        )


def _staff(proxy: Proxy, count: int = 10) -> Staff:
    team = f"staff-{proxy.tag}"
    team_id = proxy.create_team(team)
    users = {}
    with proxy.client() as client:
        for n in range(count):
            email = proxy.email(f"staff{n}")
            users[email] = new_user(
                client,
                email,
                role="internal_user",
                team_ids=[team_id],
                key_alias=f"staff{n}-{proxy.tag}",
                max_budget=10 + n,
                metadata={"cost_center": f"cc-{n}"},
            )
    return Staff(team, team_id, users)


def _block_five(proxy: Proxy, staff: Staff, cwd: Path) -> Run:
    """sync --remove block with a file that lists the first five: the other five are blocked."""
    staff.write(cwd / "user_list.csv", staff.emails[:5])
    run = _run("sync_user.py", "--remove", "block", proxy=proxy, cwd=cwd)
    assert run.code == 0, run.output
    return run


def _reinstate_two(proxy: Proxy, staff: Staff, cwd: Path) -> Run:
    """The file lists two of the blocked users again, with the state active: they are reinstated."""
    staff.write(cwd / "user_list.csv", staff.emails[:7], active=staff.emails[5:7])
    run = _run("sync_user.py", "--remove", "block", proxy=proxy, cwd=cwd)
    assert run.code == 0, run.output
    return run


def _offboard(proxy: Proxy, user_id: str, mark: str, **metadata: str) -> None:
    """Someone blocked this user at `mark`, as the tools do: every key blocked, written down, then the mark."""
    with proxy.client() as client:
        keys = client.user_keys(user_id)
        for key in keys:
            client.block_key(key.token)
        recorded = [key.token for key in keys]
        client.update_user(user_id, {"metadata": {**metadata, "offboarded_at": mark, "offboarded_keys": recorded}})


def _with_keys(proxy: Proxy, email: str, aliases: list[str], **fields: object) -> NewUser:
    """A user with one key per alias (the first made with the user)."""
    with proxy.client() as client:
        user = new_user(client, email, key_alias=aliases[0], **fields)
        for alias in aliases[1:]:
            client.generate_key(user.user_id, team_id=None, alias=alias)
    return user


# -- 1-3: block, reinstate, purge with sync_user.py (stand-in and real) ---------------------------


def test_sync_remove_block_blocks_every_key_of_the_users_the_file_leaves_out(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    staff = _staff(proxy)
    kept, leaving = staff.emails[:5], staff.emails[5:]
    staff.write(tmp_path / "user_list.csv", kept)
    started = datetime.now(timezone.utc).replace(microsecond=0)

    dry = _run("sync_user.py", "--remove", "block", "--dry-run", proxy=proxy, cwd=tmp_path)
    assert dry.code == 0, dry.output
    over = _run("sync_user.py", "--remove", "block", "--max-delete", "4", proxy=proxy, cwd=tmp_path)
    assert over.code == 4, over.output  # blocks count against --max-delete
    assert "STOPPED: the plan deletes or blocks 5 users, more than the limit of 4 (--max-delete 4)." in over.stderr
    assert all(_use(proxy, user.key) == (200, "") for user in staff.users.values())  # neither blocked anything
    run = _block_five(proxy, staff, tmp_path)

    plan = [
        "Synchronization Plan:",
        "  Users to add: 0",
        "  Users to delete: 0",
        "  Users to update: 0",
        "  Users unchanged: 5",
        "  Users to block: 5",
    ]
    for shown in (dry, run):
        assert shown.stdout.splitlines()[:6] == plan
        assert _lines(shown, "  - ") == sorted(f"  - {email} (block: 1 key)" for email in leaving)
        assert not _lines(shown, "  + ") + _lines(shown, "  ~ ") + _lines(shown, "  ^ ")
    assert "Sync done: added 0, updated 0, blocked 5 (5 keys blocked), deleted 0, unchanged 5; failed 0; " in run.stdout
    _show(tmp_path / "user_sync_result.csv")
    _show(tmp_path / "user_sync_undo.csv")
    results = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    assert {email: (row["action"], row["status"]) for email, row in results.items()} == {
        **dict.fromkeys(kept, ("UNCHANGED", "SUCCESS")),
        **dict.fromkeys(leaving, ("BLOCKED", "SUCCESS")),
    }
    users = proxy.users()
    roster = set(proxy.teams_by_alias()[staff.team])
    with proxy.client() as client:
        for n, email in enumerate(staff.emails):
            user, created = users[email], staff.users[email]
            # role, team, budget and the other metadata stay, blocked or not
            assert (user.role, user.max_budget, user.metadata["cost_center"]) == ("internal_user", 10 + n, f"cc-{n}")
            assert user.user_id in roster
            keys = client.user_keys(user.user_id)
            print(f"GET /v1/models with the key of {email}: {_use(proxy, created.key)}; metadata {dict(user.metadata)}")
            if email in kept:
                assert "offboarded_at" not in user.metadata
                assert [key.blocked for key in keys] == [False]
                assert _use(proxy, created.key) == (200, "")
                continue
            mark = user.metadata["offboarded_at"]
            assert MARK.match(mark), mark
            assert started <= _at(mark) <= datetime.now(timezone.utc)
            assert results[email]["detail"] == f"blocked 1 key; offboarded_at {mark}"
            assert [key.blocked for key in keys] == [True]
            assert _refused_as_blocked(proxy, created.key), _use(proxy, created.key)
            assert not proxy.key_works(created.key)


def test_a_blocked_user_is_reinstated_only_when_its_state_says_active(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    staff = _staff(proxy)
    _block_five(proxy, staff, tmp_path)
    marks = {email: user.metadata.get("offboarded_at") for email, user in proxy.users().items()}
    back, still = staff.emails[5:7], staff.emails[7:]
    staff.write(tmp_path / "user_list.csv", staff.emails[:7])  # listed again, the state left empty

    listed = _run("sync_user.py", "--remove", "block", proxy=proxy, cwd=tmp_path)

    assert listed.code == 0, listed.output
    assert "No changes: the proxy already matches the file." in listed.stdout.splitlines()
    assert all(_refused_as_blocked(proxy, staff.users[email].key) for email in back)

    run = _reinstate_two(proxy, staff, tmp_path)

    assert run.stdout.splitlines()[:6] == [
        "Synchronization Plan:",
        "  Users to add: 0",
        "  Users to delete: 0",
        "  Users to update: 0",
        "  Users unchanged: 8",  # the five listed, and the three blocked before (not purged)
        "  Users to reinstate: 2",
    ]
    assert _lines(run, "  ^ ") == sorted(f"  ^ {email} (unblock: 1 key)" for email in back)
    assert not _lines(run, "  - ") + _lines(run, "  + ") + _lines(run, "  ~ ")
    assert (
        "Sync done: added 0, updated 0, reinstated 2 (2 keys unblocked), deleted 0, unchanged 8; failed 0; "
        in run.stdout
    )
    _show(tmp_path / "user_sync_result.csv")
    results = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    assert {email: (row["action"], row["status"], row["detail"]) for email, row in results.items()} == {
        **dict.fromkeys(staff.emails[:5], ("UNCHANGED", "SUCCESS", "")),
        **dict.fromkeys(back, ("REINSTATED", "SUCCESS", "unblocked 1 key")),
        **{email: ("UNCHANGED", "SUCCESS", f"blocked on {marks[email]}") for email in still},
    }
    users = proxy.users()
    with proxy.client() as client:
        for email in staff.emails[5:]:
            user = users[email]
            used = _use(proxy, staff.users[email].key)
            print(f"GET /v1/models with the key of {email}: {used}; metadata {dict(user.metadata)}")
        for email in back:
            n = staff.emails.index(email)
            user = users[email]
            assert "offboarded_at" not in user.metadata
            assert (user.role, user.max_budget, dict(user.metadata)) == (
                "internal_user",
                10 + n,
                {"cost_center": f"cc-{n}"},
            )
            assert [key.blocked for key in client.user_keys(user.user_id)] == [False]
            assert _use(proxy, staff.users[email].key) == (200, "")
        for email in still:
            assert users[email].metadata["offboarded_at"] == marks[email]
            assert _refused_as_blocked(proxy, staff.users[email].key)


def test_reinstating_on_a_release_whose_unblock_cannot_find_hashed_keys(standin: Proxy, tmp_path: Path) -> None:
    """1.74.15 hashes the token /key/unblock is given once more and answers 401 "not found in
    db"; the keys are unblocked through /key/update, and work again."""
    staff = _staff(standin)
    _block_five(standin, staff, tmp_path)
    standin.standin.unblock_hashes_again = True
    back = staff.emails[5:7]

    run = _reinstate_two(standin, staff, tmp_path)

    assert "reinstated 2 (2 keys unblocked)" in run.stdout
    assert all(standin.key_works(staff.users[email].key) for email in back)
    assert not any(standin.key_works(staff.users[email].key) for email in staff.emails[7:])
    assert standin.standin.count("/key/update") == 2


def test_purge_after_deletes_the_users_blocked_long_enough_within_the_deletion_limit(
    clean: Proxy, tmp_path: Path
) -> None:
    proxy = clean
    staff = _staff(proxy)
    _block_five(proxy, staff, tmp_path)
    _reinstate_two(proxy, staff, tmp_path)
    rest = staff.emails[7:]
    marks = {email: proxy.users()[email].metadata["offboarded_at"] for email in rest}
    while datetime.now(timezone.utc) < max(map(_at, marks.values())) + timedelta(seconds=1.2):
        time.sleep(0.1)  # the marks are a second old or more: --purge-after 1s takes them
    purge_lines = sorted(f"  - {email} (purge: blocked {marks[email]}, 1 key)" for email in rest)
    if proxy.standin:
        proxy.standin.reset_log()

    over = _run(
        "sync_user.py", "--remove", "block", "--purge-after", "1s", "--max-delete", "2", proxy=proxy, cwd=tmp_path
    )

    assert over.code == 4, over.output
    assert "  Users to delete: 3" in over.stdout.splitlines()
    assert _lines(over, "  - ") == purge_lines
    assert (
        "STOPPED: the plan deletes or blocks 3 users, more than the limit of 2 (--max-delete 2). Nothing was "
        "changed." in over.stderr
    )
    assert "rerun with --max-delete 3" in over.stderr
    assert set(proxy.users()) == set(staff.emails)  # nothing deleted
    if proxy.standin:
        assert sum(proxy.standin.count(path) for path in CHANGE_PATHS) == 0

    run = _run("sync_user.py", "--remove", "block", "--purge-after", "1s", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert _lines(run, "  - ") == purge_lines
    assert "Sync done: added 0, updated 0, deleted 3 (3 purged, 3 keys), unchanged 7; failed 0; " in run.stdout
    _show(tmp_path / "user_sync_result.csv")
    results = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    assert {email: (row["action"], row["status"]) for email, row in results.items()} == {
        **dict.fromkeys(staff.emails[:7], ("UNCHANGED", "SUCCESS")),
        **dict.fromkeys(rest, ("DELETED", "SUCCESS")),
    }
    for email in rest:
        assert results[email]["detail"] == f"purged (blocked on {marks[email]}), deleted with 1 key"
        print(f"GET /v1/models with the key of purged {email}: {_use(proxy, staff.users[email].key)}")
        assert not proxy.key_works(staff.users[email].key)
    assert set(proxy.users()) == set(staff.emails[:7])
    assert all(_use(proxy, staff.users[email].key) == (200, "") for email in staff.emails[:7])


def test_purge_after_0s_purges_every_blocked_user(standin: Proxy, tmp_path: Path) -> None:
    for name in ("listed", "sync-gone", "del-gone"):
        _with_keys(standin, standin.email(name), [f"{name}-{standin.tag}"], role="internal_user")
    _offboard(standin, standin.users()[standin.email("sync-gone")].user_id, LONG_AGO)
    write_csv(tmp_path / "user_list.csv", f"email\n{standin.email('listed')}\n{standin.email('del-gone')}\n")
    write_csv(tmp_path / "user_dellist.csv", f"email\n{standin.email('del-gone')}\n")

    sync = _run("sync_user.py", "--remove", "block", "--purge-after", "0s", proxy=standin, cwd=tmp_path)
    block = _run("del_user.py", "--block", proxy=standin, cwd=tmp_path)  # blocked just now...
    purge = _run("del_user.py", "--purge-after", "0s", proxy=standin, cwd=tmp_path)  # ...and purged at once

    assert (sync.code, block.code, purge.code) == (0, 0, 0), sync.output + block.output + purge.output
    assert set(standin.users()) == {standin.email("listed")}


# -- 4: delete, then restore from the undo file (stand-in and real) -------------------------------


def test_del_user_undo_file_restores_every_user_as_it_was(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    eng, ops = f"eng-{proxy.tag}", f"ops-{proxy.tag}"
    eng_id, ops_id = proxy.create_team(eng), proxy.create_team(ops)
    roles = ("internal_user", "internal_user_viewer", "proxy_admin_viewer")
    aliases: dict[str, list[str]] = {}
    for n in range(10):
        email = proxy.email(f"leaver{n}")
        aliases[email] = [f"leaver{n}-{proxy.tag}", f"leaver{n}-laptop-{proxy.tag}"]
        _with_keys(
            proxy,
            email,
            aliases[email],
            role=roles[n % 3],
            team_ids=[eng_id, ops_id] if n % 2 else [eng_id],
            max_budget=5 + n * 2.5,
            models=["gpt-4o", "claude-3-5-sonnet"] if n % 2 else ["gpt-4o"],
            metadata={"cost_center": f"cc-{n}", "site": "berlin"},
        )
    columns = "user_id,email,role,team_name,max_budget,models,metadata.cost_center"
    listing = ("list_user.py", "--format", "csv", "--columns", columns, "--email-like", proxy.tag)
    before = _run(*listing, proxy=proxy, cwd=tmp_path)
    assert before.code == 0, before.output
    assert len(before.stdout.splitlines()) == 11
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"{email}\n" for email in aliases))

    deleted = _run("del_user.py", proxy=proxy, cwd=tmp_path)

    assert deleted.code == 0, deleted.output
    assert "Deleted 10 users with 20 API keys, failed 0; " in deleted.stdout
    assert (
        "Undo file: user_del_undo.csv (to restore: python sync_user.py --csv-file user_del_undo.csv --no-delete)"
        in deleted.stdout
    )
    assert proxy.users() == {}
    undo = tmp_path / "user_del_undo.csv"
    print(f"$ stat -c %a {undo.name}\n{_mode(undo):o}")
    _show(undo)
    assert _mode(undo) == 0o600
    rows = {row["email"]: row for row in _csv(undo)}
    assert set(rows) == set(aliases)
    assert {email: sorted(row["keys_lost"].split(";")) for email, row in rows.items()} == {
        email: sorted(names) for email, names in aliases.items()
    }
    assert {json.loads(row["metadata"])["site"] for row in rows.values()} == {"berlin"}
    assert {row["team_name"] for row in rows.values()} == {eng_id, ";".join(sorted([eng_id, ops_id]))}  # by id

    restored = _run("sync_user.py", "--csv-file", "user_del_undo.csv", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert restored.code == 0, restored.output
    assert "  Users to add: 10" in restored.stdout.splitlines()
    assert all(f"  + {email} (restore user_id {row['user_id']}, " in restored.stdout for email, row in rows.items())
    results = {row["email"]: row for row in restored.rows("user_sync_result.csv")}
    assert {email: (row["action"], row["status"], row["detail"]) for email, row in results.items()} == {
        email: ("ADDED", "SUCCESS", f"restored under user_id {row['user_id']}") for email, row in rows.items()
    }
    after = _run(*listing, proxy=proxy, cwd=tmp_path)
    assert after.code == 0, after.output
    assert sorted(after.stdout.splitlines()) == sorted(before.stdout.splitlines())
    if proxy.name != "standin-1.65.8":  # 1.65 cannot sort its listing: the same rows, in the order restored
        assert after.stdout == before.stdout
    assert {email: user.metadata.get("site") for email, user in proxy.users().items()} == dict.fromkeys(
        aliases, "berlin"
    )


# -- 5: the drift check (stand-in and real) -------------------------------------------------------


def test_check_exits_0_when_the_proxy_matches_5_when_it_drifted_and_1_for_a_bad_row(
    clean: Proxy, tmp_path: Path
) -> None:
    proxy = clean
    staff = _staff(proxy, 3)
    staff.write(tmp_path / "user_list.csv", staff.emails)
    drifted = staff.emails[0]

    def check() -> Run:
        files = sorted(os.listdir(tmp_path))
        if proxy.standin:
            proxy.standin.reset_log()
        run = _run("sync_user.py", "--check", proxy=proxy, cwd=tmp_path)
        assert sorted(os.listdir(tmp_path)) == files  # no result file, no undo file
        if proxy.standin:  # no lease (its /team/new), no change at all
            assert proxy.standin.count("/team/new") == 0
            assert proxy.standin.writes() == 0
        return run

    matches = check()
    assert matches.code == 0, matches.output
    assert "No changes: the proxy already matches the file." in matches.stdout
    changed = requests.post(
        f"{proxy.url}/user/update",
        json={"user_id": staff.users[drifted].user_id, "user_role": "proxy_admin"},
        headers={"Authorization": f"Bearer {proxy.master_key}"},
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    print(
        f"$ POST /user/update user_id={staff.users[drifted].user_id} user_role=proxy_admin\n[{changed.status_code}]\n"
    )

    drift = check()

    assert drift.code == 5, drift.output
    assert "  Users to update: 1" in drift.stdout.splitlines()
    assert f"  ~ {drifted} (Role: proxy_admin -> internal_user)" in drift.stdout.splitlines()
    assert proxy.users()[drifted].role == "proxy_admin"
    synced = _run("sync_user.py", proxy=proxy, cwd=tmp_path)
    assert synced.code == 0, synced.output
    assert check().code == 0
    with (tmp_path / "user_list.csv").open("a", encoding="utf-8") as handle:
        handle.write(f"not-an-email,internal_user,{staff.team}\n")

    bad = check()

    assert bad.code == 1, bad.output
    assert (
        "  ! line 5 not-an-email: invalid email 'not-an-email': not an address a mail system accepts, nor a user's "
        "on the proxy" in bad.stdout.splitlines()
    )


def test_check_keeps_the_safety_stop(standin: Proxy, tmp_path: Path) -> None:
    """Usage, proxy and safety errors keep their codes under --check: a plan over the deletion
    limit is 4, not 5."""
    for n in range(7):
        standin.create_user(standin.email(f"old{n}"))
    write_csv(tmp_path / "user_list.csv", f"email,role\n{standin.email('old0')},internal_user\n")

    run = _run("sync_user.py", "--check", proxy=standin, cwd=tmp_path)

    assert run.code == 4, run.output
    assert "the plan deletes or blocks 6 users, more than the limit of 5" in run.stderr


# -- 6: del_user.py --block and --purge-after, list_user.py --offboarded (stand-in) ---------------


def test_del_user_blocks_keeps_and_purges_and_list_user_shows_the_offboarded(paths: Proxy, tmp_path: Path) -> None:
    proxy = paths
    names = ("ann", "bob", "cat", "dan")
    users = {
        name: _with_keys(proxy, proxy.email(name), [f"{name}-{proxy.tag}", f"{name}2-{proxy.tag}"]) for name in names
    }
    email = {name: proxy.email(name) for name in names}
    uid = {name: user.user_id for name, user in users.items()}
    _offboard(proxy, uid["cat"], LONG_AGO, cost_center="cc-cat")

    def offboarded() -> dict[str, str]:
        run = _run(
            "list_user.py", "--offboarded", "--format", "csv", "--columns", "email,offboarded_at", proxy=proxy,
            cwd=tmp_path,
        )  # fmt: skip
        assert run.code == 0, run.output
        return {row["email"]: row["offboarded_at"] for row in csv.DictReader(run.stdout.splitlines())}

    # --block: ann is blocked; cat, blocked already, is kept as it is
    write_csv(tmp_path / "user_dellist.csv", f"email\n{email['ann']}\n{email['cat']}\n")
    dry = _run("del_user.py", "--block", "--dry-run", proxy=proxy, cwd=tmp_path)
    assert dry.code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "Plan for user_dellist.csv:",
        f"  - {email['ann']} (user_id: {uid['ann']}, block: 2 keys)",
        f"  = {email['cat']} (kept: already blocked on {LONG_AGO})",
        "Users to delete: 0 (with 0 API keys), to block: 1 (with 2 API keys), kept: 1, rows with errors: 0.",
    ]
    block = _run("del_user.py", "--block", proxy=proxy, cwd=tmp_path)
    assert block.code == 0, block.output
    assert block.stdout.startswith("Deleted 0 users with 0 API keys, blocked 1 user (2 keys), kept 1, failed 0; ")
    ann_mark = proxy.users()[email["ann"]].metadata["offboarded_at"]
    assert MARK.match(ann_mark)
    results = {row["email"]: row for row in block.rows("user_del_result.csv")}
    assert {e: (row["status"], row["keys_blocked"], row["detail"]) for e, row in results.items()} == {
        email["ann"]: ("Blocked", "2", f"blocked 2 keys; offboarded_at {ann_mark}"),
        email["cat"]: ("Kept", "", f"already blocked on {LONG_AGO}"),
    }
    assert _refused_as_blocked(proxy, users["ann"].key)
    with proxy.client() as client:
        assert [key.blocked for key in client.user_keys(uid["ann"])] == [True, True]
    assert {
        name: value for name, value in proxy.users()[email["cat"]].metadata.items() if name != "offboarded_keys"
    } == {
        "cost_center": "cc-cat",
        "offboarded_at": LONG_AGO,
    }
    assert offboarded() == {email["ann"]: ann_mark, email["cat"]: LONG_AGO}

    # --purge-after 30d: cat (blocked in 2020) is deleted; ann (blocked just now) and bob (not blocked) are kept
    write_csv(tmp_path / "user_dellist.csv", f"email\n{email['ann']}\n{email['bob']}\n{email['cat']}\n")
    dry = _run("del_user.py", "--purge-after", "30d", "--dry-run", proxy=proxy, cwd=tmp_path)
    assert dry.code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "Plan for user_dellist.csv:",
        f"  - {email['cat']} (user_id: {uid['cat']}, purge: blocked {LONG_AGO}, 2 keys)",
        f"  = {email['ann']} (kept: blocked on {ann_mark}, less than --purge-after 30d ago)",
        f"  = {email['bob']} (kept: not blocked: --purge-after deletes only blocked users)",
        "Users to delete: 1 (with 2 API keys), to block: 0 (with 0 API keys), kept: 2, rows with errors: 0.",
    ]
    purge = _run("del_user.py", "--purge-after", "30d", proxy=proxy, cwd=tmp_path)
    assert purge.code == 0, purge.output
    assert purge.stdout.startswith("Deleted 1 user (1 purged) with 2 API keys, kept 2, failed 0; ")
    results = {row["email"]: row for row in purge.rows("user_del_result.csv")}
    assert {e: (row["status"], row["keys_deleted"], row["detail"]) for e, row in results.items()} == {
        email["cat"]: ("Deleted", "2", f"purged (blocked on {LONG_AGO}), deleted with 2 keys"),
        email["ann"]: ("Kept", "", f"blocked on {ann_mark}, less than --purge-after 30d ago"),
        email["bob"]: ("Kept", "", "not blocked: --purge-after deletes only blocked users"),
    }
    assert set(proxy.users()) == {email["ann"], email["bob"], email["dan"]}
    assert offboarded() == {email["ann"]: ann_mark}

    # --block --purge-after 30d: bob, not blocked, is blocked; ann, blocked recently, is kept
    write_csv(tmp_path / "user_dellist.csv", f"email\n{email['ann']}\n{email['bob']}\n")
    both = _run("del_user.py", "--block", "--purge-after", "30d", proxy=proxy, cwd=tmp_path)
    assert both.code == 0, both.output
    assert [(row["email"], row["status"]) for row in both.rows("user_del_result.csv")] == [
        (email["ann"], "Kept"),
        (email["bob"], "Blocked"),
    ]
    bob_mark = proxy.users()[email["bob"]].metadata["offboarded_at"]
    assert offboarded() == {email["ann"]: ann_mark, email["bob"]: bob_mark}  # never dan, who was never blocked
    assert _use(proxy, users["dan"].key) == (200, "")


# -- 7: plans, dry runs and summaries name blocks, unblocks, purges and restores (stand-in) --------


def _mixed(proxy: Proxy, tmp_path: Path) -> dict[str, str]:
    """keep (listed), block (left out, 2 keys), back (blocked, listed again, 3 keys), old (blocked in
    2020, left out, 4 keys), and a row restoring a user under a user_id the proxy does not have."""
    email = {name: proxy.email(name) for name in ("keep", "block", "back", "old", "restore")}
    _with_keys(proxy, email["keep"], [f"keep-{proxy.tag}"], role="internal_user")
    _with_keys(proxy, email["block"], [f"block{n}-{proxy.tag}" for n in range(2)], role="internal_user")
    back = _with_keys(proxy, email["back"], [f"back{n}-{proxy.tag}" for n in range(3)], role="internal_user")
    old = _with_keys(proxy, email["old"], [f"old{n}-{proxy.tag}" for n in range(4)], role="internal_user")
    _offboard(proxy, back.user_id, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    _offboard(proxy, old.user_id, LONG_AGO)
    write_csv(
        tmp_path / "user_list.csv",
        f"""
email,role,team_name,user_id,state
{email["keep"]},internal_user,,,
{email["back"]},internal_user,,,active
{email["restore"]},internal_user,,restored-{proxy.tag},
""",
    )
    return email


def test_every_plan_and_dry_run_says_what_it_blocks_unblocks_purges_and_restores(
    standin: Proxy, tmp_path: Path
) -> None:
    proxy = standin
    email = _mixed(proxy, tmp_path)
    plan = [
        "Synchronization Plan:",
        "  Users to add: 1",
        "  Users to delete: 1",
        "  Users to update: 0",
        "  Users unchanged: 1",
        "  Users to block: 1",
        "  Users to reinstate: 1",
        f"  + {email['restore']} (restore user_id restored-{proxy.tag}, Role: internal_user, Team: -)",
        f"  - {email['old']} (purge: blocked {LONG_AGO}, 4 keys)",
        f"  - {email['block']} (block: 2 keys)",
        f"  ^ {email['back']} (unblock: 3 keys)",
    ]
    flags = ("--remove", "block", "--purge-after", "30d")

    dry = _run("sync_user.py", *flags, "--dry-run", proxy=proxy, cwd=tmp_path)
    check = _run("sync_user.py", *flags, "--check", proxy=proxy, cwd=tmp_path)
    run = _run("sync_user.py", *flags, proxy=proxy, cwd=tmp_path)

    assert (dry.code, check.code, run.code) == (0, 5, 0), dry.output + check.output + run.output
    assert dry.stdout.splitlines() == plan
    assert check.stdout.splitlines() == plan
    assert run.stdout.splitlines()[: len(plan)] == plan
    assert run.stdout.splitlines()[len(plan)].startswith(
        "Sync done: added 1 (1 restored), updated 0, reinstated 1 (3 keys unblocked), blocked 1 (2 keys blocked), "
        "deleted 1 (1 purged, 4 keys), unchanged 1; failed 0; "
    )
    results = {row["email"]: (row["action"], row["detail"]) for row in run.rows("user_sync_result.csv")}
    mark = proxy.users()[email["block"]].metadata["offboarded_at"]
    assert results == {
        email["keep"]: ("UNCHANGED", ""),
        email["restore"]: ("ADDED", f"restored under user_id restored-{proxy.tag}"),
        email["old"]: ("DELETED", f"purged (blocked on {LONG_AGO}), deleted with 4 keys"),
        email["block"]: ("BLOCKED", f"blocked 2 keys; offboarded_at {mark}"),
        email["back"]: ("REINSTATED", "unblocked 3 keys"),
    }

    # del_user.py: the same words, with the user_id
    user = {name: proxy.users()[email[name]] for name in ("keep", "back")}
    _offboard(proxy, user["back"].user_id, LONG_AGO)
    write_csv(tmp_path / "user_dellist.csv", f"email\n{email['keep']}\n{email['back']}\n")
    dry = _run("del_user.py", "--block", "--purge-after", "30d", "--dry-run", proxy=proxy, cwd=tmp_path)
    assert dry.code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "Plan for user_dellist.csv:",
        f"  - {email['keep']} (user_id: {user['keep'].user_id}, block: 1 key)",
        f"  - {email['back']} (user_id: {user['back'].user_id}, purge: blocked {LONG_AGO}, 3 keys)",
        "Users to delete: 1 (with 3 API keys), to block: 1 (with 1 API key), kept: 0, rows with errors: 0.",
    ]
    run = _run("del_user.py", "--block", "--purge-after", "30d", proxy=proxy, cwd=tmp_path)
    assert run.code == 0, run.output
    assert run.stdout.startswith("Deleted 1 user (1 purged) with 3 API keys, blocked 1 user (1 key), failed 0; ")


def test_the_sync_summary_says_what_it_blocked_unblocked_purged_and_restored_with_key_counts(
    standin: Proxy, tmp_path: Path
) -> None:
    _mixed(standin, tmp_path)

    run = _run("sync_user.py", "--remove", "block", "--purge-after", "30d", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    (summary,) = [line for line in run.stdout.splitlines() if line.startswith("Sync done:")]
    assert summary.startswith(
        "Sync done: added 1 (1 restored), updated 0, reinstated 1 (3 keys unblocked), blocked 1 (2 keys blocked), "
        "deleted 1 (1 purged, 4 keys), unchanged 1; failed 0;"
    ), summary


def test_the_del_user_summary_says_what_it_purged(standin: Proxy, tmp_path: Path) -> None:
    user = _with_keys(standin, standin.email("old"), [f"old{n}-{standin.tag}" for n in range(3)])
    _offboard(standin, user.user_id, LONG_AGO)
    write_csv(tmp_path / "user_dellist.csv", f"email\n{standin.email('old')}\n")

    run = _run("del_user.py", "--purge-after", "30d", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert run.stdout.startswith("Deleted 1 user (1 purged) with 3 API keys, failed 0;"), run.stdout


# -- 8: sync's undo file (stand-in, per-user and bulk) ---------------------------------------------


def _touched(proxy: Proxy, tmp_path: Path) -> tuple[str, dict[str, str], dict[str, NewUser]]:
    """A sync with --remove block --purge-after 30d that updates upd (role), leaves same alone,
    blocks blk and purges old (blocked in 2020); the team's alias, the emails, the users."""
    team = f"eng-{proxy.tag}"
    team_id = proxy.create_team(team)
    email = {name: proxy.email(name) for name in ("upd", "same", "blk", "old")}
    fields: dict[str, Any] = {"role": "internal_user", "team_ids": [team_id]}
    user = {
        "upd": _with_keys(
            proxy, email["upd"], [f"upd-{proxy.tag}"], max_budget=5, metadata={"cost_center": "cc-u"}, **fields
        ),
        "same": _with_keys(proxy, email["same"], [f"same-{proxy.tag}"], **fields),
        "blk": _with_keys(
            proxy, email["blk"], [f"blk{n}-{proxy.tag}" for n in range(2)], models=["gpt-4o"],
            metadata={"cost_center": "cc-b"}, **fields,
        ),
        "old": _with_keys(proxy, email["old"], [f"old{n}-{proxy.tag}" for n in range(2)], max_budget=2.5, **fields),
    }  # fmt: skip
    _offboard(proxy, user["old"].user_id, LONG_AGO, cost_center="cc-o")
    write_csv(
        tmp_path / "user_list.csv",
        f"email,role,team_name\n{email['upd']},proxy_admin,{team}\n{email['same']},internal_user,{team}\n",
    )
    return team, email, user


def test_sync_undo_file_is_written_before_the_first_change_and_never_overwritten(paths: Proxy, tmp_path: Path) -> None:
    proxy = paths
    assert proxy.standin is not None
    team, email, user = _touched(proxy, tmp_path)
    upd, same, blk, old = (user[name] for name in ("upd", "same", "blk", "old"))
    old_keys = list(proxy.users()[email["old"]].metadata["offboarded_keys"])
    undo = tmp_path / "user_sync_undo.csv"
    seen: list[tuple[str, str | None]] = []  # (path, the undo file as it was) at each change request
    for path in CHANGE_PATHS:
        proxy.standin.watch(path, lambda path=path: seen.append((path, undo.read_text() if undo.exists() else None)))
    flags = ("--remove", "block", "--purge-after", "30d")

    run = _run("sync_user.py", *flags, proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert {row["email"]: row["action"] for row in run.rows("user_sync_result.csv")} == {
        email["upd"]: "UPDATED",
        email["same"]: "UNCHANGED",
        email["blk"]: "BLOCKED",
        email["old"]: "DELETED",
    }
    first = undo.read_text()
    assert seen, "no change request reached the stand-in"
    assert seen[0][0] == endpoint(proxy, "update")  # the update comes first, then the blocks and the purge
    assert {path for path, _ in seen} >= {endpoint(proxy, "update"), "/key/block", endpoint(proxy, "delete")}
    assert [(path, text) for path, text in seen if text != first] == []  # complete before the first change
    assert _mode(undo) == 0o600
    rows = _csv(undo)
    assert list(rows[0]) == list(UNDO_COLUMNS)
    nothing = dict.fromkeys(("user_alias", "budget_duration", "tpm_limit", "rpm_limit"), "none") | {"admin_of": ""}
    with proxy.client() as client:  # before 1.108 only /user/info shows max_parallel_requests: read for the deleted
        listed = client.release.at_least(1, 90)
    kept = {"max_parallel_requests": "none" if listed else ""}  # not read for users that stay: empty, kept
    team_id = proxy.team_id(team)  # undo files name teams by id: an alias may pass to another team
    expected = {
        email["upd"]: {
            **nothing, **kept, "email": email["upd"], "role": "internal_user", "team_name": team_id,
            "user_id": upd.user_id, "state": "active",
            "max_budget": "5", "models": "none", "metadata": {"cost_center": "cc-u"}, "keys_lost": "",
        },
        email["blk"]: {
            **nothing, **kept, "email": email["blk"], "role": "internal_user", "team_name": team_id,
            "user_id": blk.user_id, "state": "active",
            "max_budget": "none", "models": "gpt-4o", "metadata": {"cost_center": "cc-b"}, "keys_lost": "",
        },
        email["old"]: {
            **nothing, "max_parallel_requests": "none", "email": email["old"], "role": "internal_user",
            "team_name": team_id, "user_id": old.user_id, "state": "offboarded",
            "max_budget": "2.5", "models": "none",
            "metadata": {"cost_center": "cc-o", "offboarded_at": LONG_AGO, "offboarded_keys": old_keys},
            "keys_lost": ";".join(sorted(f"old{n}-{proxy.tag}" for n in range(2))),
        },
    }  # fmt: skip
    by_email = {row["email"]: {**row, "metadata": json.loads(row["metadata"])} for row in rows}
    by_email[email["old"]]["keys_lost"] = ";".join(sorted(by_email[email["old"]]["keys_lost"].split(";")))
    assert by_email == expected  # the users it touched, as they were; never `same`, which it left alone

    # a second run that changes something keeps the first undo file under a timestamped name
    with proxy.client() as client:
        client.update_user(same.user_id, {"user_role": "proxy_admin"})
    again = _run("sync_user.py", *flags, proxy=proxy, cwd=tmp_path)
    assert again.code == 0, again.output
    (kept,) = sorted(tmp_path.glob("user_sync_undo.*.csv"))
    assert re.fullmatch(r"user_sync_undo\.\d{8}-\d{6}(-\d+)?\.csv", kept.name)
    assert kept.read_text() == first
    assert [row["email"] for row in _csv(undo)] == [email["same"]]
    assert _csv(undo)[0]["role"] == "proxy_admin"
    assert (_mode(kept), _mode(undo)) == (0o600, 0o600)


def test_a_sync_undo_file_fed_back_puts_back_the_users_the_sync_changed(clean: Proxy, tmp_path: Path) -> None:
    """Before 1.108 the listing does not show max_parallel_requests: the undo file leaves it empty
    (kept) for the users that stay, so their rows apply when fed back."""
    proxy = clean
    team, email, user = _touched(proxy, tmp_path)
    before = {name: proxy.users()[email[name]] for name in ("upd", "blk", "old")}
    synced = _run("sync_user.py", "--remove", "block", "--purge-after", "30d", proxy=proxy, cwd=tmp_path)
    assert synced.code == 0, synced.output
    assert proxy.users()[email["upd"]].role == "proxy_admin"
    assert _refused_as_blocked(proxy, user["blk"].key)
    assert email["old"] not in proxy.users()

    restore = _run("sync_user.py", "--csv-file", "user_sync_undo.csv", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert restore.code == 0, restore.output
    assert _lines(restore, "  ~ ") == [f"  ~ {email['upd']} (Role: proxy_admin -> internal_user)"]
    assert _lines(restore, "  ^ ") == [f"  ^ {email['blk']} (unblock: 2 keys)"]
    assert _lines(restore, "  + ") == [
        f"  + {email['old']} (restore user_id {user['old'].user_id}, offboarded since {LONG_AGO}, no key, "
        f'Role: internal_user, Team: {team}, max_budget: 2.5, metadata: {{"cost_center":"cc-o"}})'
    ]
    results = {row["email"]: (row["action"], row["status"]) for row in restore.rows("user_sync_result.csv")}
    assert results == {
        email["upd"]: ("UPDATED", "SUCCESS"),
        email["blk"]: ("REINSTATED", "SUCCESS"),
        email["old"]: ("ADDED", "SUCCESS"),
    }  # email["same"] is not in the undo file: --no-delete leaves it alone, unread and unlisted
    after = proxy.users()
    for name in ("upd", "blk"):
        was, now = before[name], after[email[name]]
        assert (now.user_id, now.role, now.max_budget, now.models, dict(now.metadata)) == (
            was.user_id, was.role, was.max_budget, was.models, dict(was.metadata),
        )  # fmt: skip
    assert _use(proxy, user["blk"].key) == (200, "")
    old = after[email["old"]]  # purged while offboarded: back offboarded, since then, with no key to use
    assert (old.user_id, old.role, old.max_budget, dict(old.metadata), old.key_count) == (
        user["old"].user_id, "internal_user", 2.5,
        {"cost_center": "cc-o", "offboarded_at": LONG_AGO, "offboarded_keys": []}, 0,
    )  # fmt: skip
    assert set(proxy.teams_by_alias()[team]) >= {user[name].user_id for name in ("upd", "same", "blk", "old")}


def test_an_undo_file_restores_max_parallel_requests(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    with proxy.client() as client:
        created = new_user(client, proxy.email("limited"), max_parallel_requests=3, tpm_limit=100)
    info = {"user_id": created.user_id}
    auth = {"Authorization": f"Bearer {proxy.master_key}"}

    def parallel() -> object:
        answer = requests.get(f"{proxy.url}/user/info", params=info, headers=auth, timeout=30)
        return answer.json()["user_info"]["max_parallel_requests"]

    assert parallel() == 3
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('limited')}\n")
    deleted = _run("del_user.py", proxy=proxy, cwd=tmp_path)
    assert deleted.code == 0, deleted.output

    restore = _run("sync_user.py", "--csv-file", "user_del_undo.csv", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert restore.code == 0, restore.output
    assert proxy.users()[proxy.email("limited")].tpm_limit == 100
    assert parallel() == 3


# -- 9: kill -9 in the middle of a block run (stand-in) --------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_while_blocking_leaves_at_most_the_users_in_flight_partly_blocked(
    standin: Proxy, tmp_path: Path, seed: int
) -> None:
    assert standin.standin is not None
    count, keys, workers = 80, 3, 4
    for n in range(count):
        standin.standin.seed_user(f"leaver{n:03d}@example.com", keys=keys)
    write_csv(tmp_path / "user_list.csv", "email,role\nstays@example.com,internal_user\n")
    standin.standin.seed_user("stays@example.com")
    command = ("--remove", "block", "--max-delete", str(count), "--workers", str(workers))
    standin.standin.latency = 0.02
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "sync_user.py"), *command],
        cwd=tmp_path,
        env=clean_env(LITELLM_BASE_URL=standin.url, LITELLM_MASTER_KEY=standin.master_key),
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = tmp_path / "user_sync_result.csv"
    deadline = time.monotonic() + 60
    while not (results.exists() and len(results.read_text().splitlines()) > 1 + 1 + 8):  # header, stays, 8 blocked
        assert time.monotonic() < deadline, "the run never blocked 8 users"
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0, 0.3))
    assert process.poll() is None, "the run finished before it could be killed"

    process.kill()
    process.wait()
    time.sleep(0.5)  # requests the stand-in already received still finish there

    def states() -> dict[str, tuple[int, bool]]:
        """email -> (blocked keys, marked offboarded)"""
        with standin.standin.lock:
            blocked = dict.fromkeys(standin.standin.users, 0)
            for key in standin.standin.keys.values():
                blocked[key["user_id"]] += bool(key["blocked"])
            return {
                user["user_email"]: (blocked[user_id], "offboarded_at" in user["metadata"])
                for user_id, user in standin.standin.users.items()
                if user["user_email"] and user["user_email"] != "stays@example.com"
            }

    after_kill = states()
    recorded = {
        row["email"] for row in Run(0, "", "", tmp_path).rows("user_sync_result.csv") if row["action"] == "BLOCKED"
    }
    done = {email for email, state in after_kill.items() if state == (keys, True)}
    partly = {email for email, (blocked, marked) in after_kill.items() if blocked and not marked}
    print(f"after kill -9: {len(done)} blocked, {len(partly)} partly, {count - len(done) - len(partly)} untouched")
    assert all(blocked == keys for blocked, marked in after_kill.values() if marked)  # marked only once all are
    assert recorded <= done
    assert len(partly) <= workers  # at most the users in flight
    assert len(done) < count  # it was killed in the middle

    rerun = run_script("sync_user.py", *command, proxy=standin, cwd=tmp_path)

    assert rerun.code == 0, rerun.output
    assert f"  Users to block: {count - len(done)}" in rerun.stdout.splitlines()
    assert states() == {f"leaver{n:03d}@example.com": (keys, True) for n in range(count)}
    assert {row["action"] for row in rerun.rows("user_sync_result.csv") if row["email"] in done} == {"UNCHANGED"}


# -- 10: a key blocked by hand stays blocked (issue 22, item 2) -------------------------------------


def _hand_block(proxy: Proxy, user_id: str, alias: str) -> None:
    """An administrator blocks one key (it leaked), outside the tools."""
    with proxy.client() as client:
        (leaked,) = [key for key in client.user_keys(user_id) if key.alias == alias]
        client.block_key(leaked.token)


def _blocked(proxy: Proxy, user_id: str) -> dict[str | None, bool]:
    with proxy.client() as client:
        return {key.alias: key.blocked for key in client.user_keys(user_id)}


def test_reinstating_unblocks_only_the_keys_the_offboarding_blocked(clean: Proxy, tmp_path: Path) -> None:
    """The offboarding writes down, on the proxy, which keys it blocked: a run from another folder
    (another machine) reinstates the user with only those, and the plan's counts are the run's."""
    proxy = clean
    tag = proxy.tag
    user = _with_keys(proxy, proxy.email("leak"), [f"work-{tag}", f"leaked-{tag}"], role="internal_user")
    _with_keys(proxy, proxy.email("other"), [f"other-{tag}"], role="internal_user")
    _hand_block(proxy, user.user_id, f"leaked-{tag}")
    write_csv(tmp_path / "user_list.csv", f"email,role\n{proxy.email('other')},internal_user\n")

    offboard = _run("sync_user.py", "--remove", "block", proxy=proxy, cwd=tmp_path)

    assert offboard.code == 0, offboard.output
    assert f"  - {proxy.email('leak')} (block: 1 key)" in offboard.stdout.splitlines()
    assert "blocked 1 (1 key blocked)" in offboard.stdout
    assert _blocked(proxy, user.user_id) == {f"work-{tag}": True, f"leaked-{tag}": True}

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_csv(
        elsewhere / "user_list.csv",
        f"email,role,state\n{proxy.email('other')},internal_user,\n{proxy.email('leak')},internal_user,active\n",
    )
    back = _run("sync_user.py", "--remove", "block", proxy=proxy, cwd=elsewhere)

    assert back.code == 0, back.output
    assert (
        f"  ^ {proxy.email('leak')} (unblock: 1 key, 1 key left blocked (blocked before this offboarding, or by hand))"
        in back.stdout.splitlines()
    )
    assert "reinstated 1 (1 key unblocked)" in back.stdout
    assert _blocked(proxy, user.user_id) == {f"work-{tag}": False, f"leaked-{tag}": True}
    assert proxy.key_works(user.key)
    metadata = proxy.users()[proxy.email("leak")].metadata  # LiteLLM keeps a last key removed as null
    assert (metadata.get("offboarded_at"), metadata.get("offboarded_keys")) == (None, None)


def test_del_user_block_and_its_undo_file_leave_a_key_blocked_by_hand_blocked(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    tag = proxy.tag
    user = _with_keys(proxy, proxy.email("leak"), [f"work-{tag}", f"leaked-{tag}"], role="internal_user")
    _hand_block(proxy, user.user_id, f"leaked-{tag}")
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('leak')}\n")

    dry = _run("del_user.py", "--block", "--dry-run", proxy=proxy, cwd=tmp_path)
    block = _run("del_user.py", "--block", proxy=proxy, cwd=tmp_path)

    assert (dry.code, block.code) == (0, 0), dry.output + block.output
    assert f"  - {proxy.email('leak')} (user_id: {user.user_id}, block: 1 key)" in dry.stdout.splitlines()
    assert "blocked 1 user (1 key)" in block.stdout

    undo = _run("sync_user.py", "--csv-file", "user_del_undo.csv", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert undo.code == 0, undo.output
    assert "reinstated 1 (1 key unblocked)" in undo.stdout
    assert _blocked(proxy, user.user_id) == {f"work-{tag}": False, f"leaked-{tag}": True}


def test_an_offboarding_before_the_keys_were_written_down_unblocks_none(standin: Proxy, tmp_path: Path) -> None:
    """A user offboarded by an older version of the tools (a mark, no list of keys): reinstating it
    takes the mark off and unblocks nothing, and says which keys to look at."""
    user = _with_keys(standin, standin.email("legacy"), [f"a-{standin.tag}", f"b-{standin.tag}"], role="internal_user")
    with standin.client() as client:
        for key in client.user_keys(user.user_id):
            client.block_key(key.token)
        client.update_user(user.user_id, {"metadata": {"offboarded_at": LONG_AGO}})
    write_csv(tmp_path / "user_list.csv", f"email,state\n{standin.email('legacy')},active\n")

    run = _run("sync_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert (
        f"  ^ {standin.email('legacy')} (unblock: 0 keys, 2 keys left blocked (offboarded before the tools wrote down "
        "which keys they blocked: unblock by hand those that should work))" in run.stdout.splitlines()
    )
    assert set(_blocked(standin, user.user_id).values()) == {True}
    assert standin.users()[standin.email("legacy")].metadata.get("offboarded_at") is None


# -- 11: replicas that cache apart (issue 22, item 16) ----------------------------------------------


@pytest.mark.parametrize("apart", [True, False])
def test_a_run_on_a_proxy_whose_processes_cache_apart_says_when_its_changes_reach_them(
    standin: Proxy, tmp_path: Path, apart: bool
) -> None:
    assert standin.standin is not None
    standin.standin.replicas_without_redis = apart
    user = _with_keys(standin, standin.email("leaver"), [f"leaver-{standin.tag}"], role="internal_user")
    write_csv(tmp_path / "user_dellist.csv", f"email\n{standin.email('leaver')}\n")

    run = _run("del_user.py", "--block", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    note = "NOTE: this proxy runs several processes without a shared cache (Redis): until their caches expire (60 s"
    assert (note in run.stdout) == apart
    assert not standin.key_works(user.key)
