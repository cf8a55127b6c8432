"""Ctrl-C, SIGTERM and kill -9 in the middle of a run: rows in flight are recorded (or, after
kill -9, finished by the next run from the in-flight journal), no new one starts, no key is lost.
"""

from __future__ import annotations

import csv
import random
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import (
    Held,
    Proxy,
    Run,
    accounted_once,
    addlist,
    bulk,
    csv_rows,
    endpoint,
    interrupt,
    no_duplicates,
    run_script,
    spawn,
    write_csv,
)
from tests.support.standin import StandIn


def _wait_for_rows(path: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) > count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} rows")


def _keys_recorded(folder: Path, prefix: str) -> dict[str, str]:
    """email -> API key, from every result file a series of runs left (older ones are kept under
    timestamped names)."""
    keys: dict[str, str] = {}
    for path in sorted(folder.glob(f"{prefix}_result*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            keys |= {row["email"]: row["api_keys"] for row in csv.DictReader(handle) if row.get("api_keys")}
    return keys


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_loses_no_key_the_proxy_issued_a_rerun_finishes_them(paths: Proxy, tmp_path: Path, seed: int) -> None:
    """A killed run leaves users whose keys were issued and never written down (the rows in
    flight: a whole batch on the bulk path). Its journal names them; the rerun issues their keys
    again, so every user the proxy has ends with a working key in a result file."""
    standin = paths
    emails = addlist(tmp_path / "user_addlist.csv", 1200 if bulk(standin) else 150)
    standin.standin.latency = 0.3 if bulk(standin) else 0.02
    process = spawn("add_user.py", "--workers", "1" if bulk(standin) else "4", proxy=standin, cwd=tmp_path)
    _wait_for_rows(tmp_path / "user_reg_result.csv", 10)
    time.sleep(random.Random(seed).uniform(0, 0.3))

    process.kill()
    process.wait()
    time.sleep(1)  # requests the proxy already received still finish there
    standin.standin.latency = 0.0

    recorded = _keys_recorded(tmp_path, "user_reg")
    on_proxy = [e for e in emails if standin.standin.user_by_email(e)]
    assert set(recorded) <= set(on_proxy)
    assert all(standin.key_works(key) for key in recorded.values())
    assert (tmp_path / "user_reg_inflight.csv").exists()

    rerun = run_script("add_user.py", "--skip-existing", proxy=standin, cwd=tmp_path)

    assert rerun.code == 0, rerun.output
    no_duplicates(standin, emails)
    keys = _keys_recorded(tmp_path, "user_reg")
    assert sorted(keys) == sorted(emails)
    assert all(standin.key_works(key) for key in keys.values())
    assert {u["user_id"]: 1 for u in standin.standin.users.values() if u["user_email"]} == {
        user_id: count for user_id, count in standin.standin.key_counts().items() if user_id != "default_user_id"
    }  # one key each: the unseen ones were replaced, not added to
    assert not (tmp_path / "user_reg_inflight.csv").exists()


def test_kill_9_during_a_sync_and_a_rerun_finishes(paths: Proxy, tmp_path: Path) -> None:
    standin = paths
    for n in range(20):
        standin.standin.seed_user(f"old{n}@example.com")
    emails = [f"new{n:04d}@example.com" for n in range(1200 if bulk(standin) else 120)]
    write_csv(tmp_path / "user_list.csv", "email,role\n" + "".join(f"{e},internal_user\n" for e in emails))
    standin.standin.latency = 0.3 if bulk(standin) else 0.02
    process = spawn(
        "sync_user.py", "--max-delete", "20", "--workers", "1" if bulk(standin) else "4", proxy=standin, cwd=tmp_path
    )
    _wait_for_rows(tmp_path / "user_sync_result.csv", 10)

    process.kill()
    process.wait()
    time.sleep(1)

    recorded = _keys_recorded(tmp_path, "user_sync")
    on_proxy = {e for e in emails if standin.standin.user_by_email(e)}
    assert set(recorded) <= on_proxy
    standin.standin.latency = 0.0
    rerun = run_script("sync_user.py", "--max-delete", "20", proxy=standin, cwd=tmp_path)
    assert rerun.code == 0, rerun.output
    no_duplicates(standin, emails)
    assert standin.standin.user_emails() == emails
    keys = _keys_recorded(tmp_path, "user_sync")
    assert sorted(keys) == emails
    assert all(standin.key_works(key) for key in keys.values())


def test_ctrl_c_finishes_the_rows_in_flight_and_starts_no_new_one(paths: Proxy, tmp_path: Path) -> None:
    """The signal comes while the second request is held in flight (the fifth user on the per-user
    path, with four workers; the second batch of 500 on the bulk path): it finishes, none starts."""
    standin = paths
    emails = addlist(tmp_path / "user_addlist.csv", 2500 if bulk(standin) else 40)
    held = Held(standin.standin, endpoint(standin, "create"), skip=1 if bulk(standin) else 4)
    process = spawn("add_user.py", "--workers", "1" if bulk(standin) else "4", proxy=standin, cwd=tmp_path)

    stderr = interrupt(process, signal.SIGINT, held)

    assert process.returncode == 130, stderr
    run = Run(130, "", stderr, tmp_path)
    results = accounted_once(run, emails)
    assert len(results) < len(emails)
    assert {r["error_reason"] for r in run.rows("user_reg_error.csv")} == {"not started: the run was interrupted"}
    assert standin.standin.user_emails() == sorted(results)
    assert "Interrupted: finishing the rows in flight" in stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_teams_are_created_leaves_every_row_in_a_file(
    standin: Proxy, tmp_path: Path, sig: signal.Signals
) -> None:
    assert standin.standin is not None
    held = Held(standin.standin, "/team/new", skip=1)  # the first is the run's lease; the second, a team
    write_csv(
        tmp_path / "user_addlist.csv",
        "email,team_name\n" + "".join(f"s{n}@example.com,team{n}\n" for n in range(6)),
    )
    process = spawn("add_user.py", "--create-teams", proxy=standin, cwd=tmp_path)

    stderr = interrupt(process, sig, held)

    assert process.returncode == 130, stderr
    errors = {row["email"]: row["error_reason"] for row in csv_rows(tmp_path / "user_reg_error.csv")}
    assert sorted(errors) == [f"s{n}@example.com" for n in range(6)]
    assert set(errors.values()) == {"not started: the run was interrupted"}
    assert standin.standin.user_emails() == []


def test_ctrl_c_while_the_lease_is_given_back_does_not_say_nothing_was_changed(standin: Proxy, tmp_path: Path) -> None:
    """The users were created; the signal comes while the run gives its lease back: the message
    says the run had changed the proxy, and where it wrote what it did."""
    assert standin.standin is not None
    held = Held(standin.standin, "/team/delete")
    emails = addlist(tmp_path / "user_addlist.csv", 3)
    process = spawn("add_user.py", proxy=standin, cwd=tmp_path)

    stderr = interrupt(process, signal.SIGINT, held)

    assert process.returncode == 130, stderr
    assert "nothing was changed" not in stderr
    assert "Interrupted after the run had started its changes. What it did is in user_reg_result.csv" in stderr
    assert standin.standin.user_emails() == emails


def test_after_kill_9_during_a_delete_a_rerun_says_already_deleted(tmp_path: Path) -> None:
    """The deletions in flight are journalled before they are sent: the rerun reports the users the
    killed run deleted as deleted already, not as "User not found", and deletes the rest."""
    with StandIn(release="1.80.7") as proxy:  # one /user/delete per 100 users
        standin = Proxy("standin-1.80.7", proxy.url, proxy.master_key, proxy)
        emails = [f"leaver{n:03d}@example.com" for n in range(150)]
        for email in emails:
            proxy.seed_user(email)
        held = Held(proxy, "/user/delete")
        write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"{email}\n" for email in emails))
        process = spawn("del_user.py", "--workers", "1", proxy=standin, cwd=tmp_path)
        held.wait()

        process.kill()
        process.wait()
        held.let_go()  # the request the proxy received still finishes there
        while len(proxy.user_emails()) > 50:
            time.sleep(0.01)
        assert held.fault.seen == 1

        rerun = run_script("del_user.py", proxy=standin, cwd=tmp_path)

        assert rerun.code == 0, rerun.output
        rows = {row["email"]: row for row in rerun.rows("user_del_result.csv")}
        assert {row["status"] for row in rows.values()} == {"Deleted"}
        already = [email for email, row in rows.items() if row["detail"].startswith("already deleted: a run stopped")]
        assert sorted(already) == emails[:100]
        assert rerun.rows("user_del_error.csv") == []
        assert proxy.user_emails() == []
        assert not (tmp_path / "user_del_inflight.csv").exists()
