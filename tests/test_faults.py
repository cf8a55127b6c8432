"""Faults on the stand-in: rate limits, outages, slow and lost answers, crashes, Ctrl-C, two runs at
once. Whatever happens, every row ends in exactly one result or error row, nothing is created or
deleted twice or by mistake, and the exit code says what happened."""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Proxy, Run, bulk, clean_env, endpoint, run_script, write_csv


def _addlist(path: Path, count: int, team: str = "") -> list[str]:
    emails = [f"user{n:03d}@example.com" for n in range(count)]
    write_csv(
        path,
        "email,role,team_name,key_name\n" + "".join(f"{e},internal_user,{team},key{n}\n" for n, e in enumerate(emails)),
    )
    return emails


def _accounted_once(run: Run, emails: list[str]) -> dict[str, dict[str, str]]:
    """Every input row is in exactly one of the result and error files; returns the results."""
    results = run.rows("user_reg_result.csv")
    errors = run.rows("user_reg_error.csv")
    seen = sorted([r["email"] for r in results] + [r["email"] for r in errors])
    assert seen == sorted(emails)
    return {r["email"]: r for r in results}


def _no_duplicates(standin: Proxy, emails: list[str]) -> None:
    assert [len(standin.standin.user_by_email(e)) for e in emails] == [1] * len(emails)


@pytest.mark.parametrize(("status", "retry_after"), [(429, 1.0), (429, None), (503, 1.0), (503, None)])
def test_bursts_of_429_and_503_are_waited_out(
    paths: Proxy, tmp_path: Path, status: int, retry_after: float | None
) -> None:
    standin = paths
    emails = _addlist(tmp_path / "user_addlist.csv", 12)
    create = endpoint(standin, "create")
    standin.standin.fail("/user/list", status=status, retry_after=retry_after, times=2)
    standin.standin.fail(create, status=status, retry_after=retry_after, skip=0 if bulk(standin) else 3, times=3)

    started = time.monotonic()
    run = run_script("add_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert set(_accounted_once(run, emails)) == set(emails)
    _no_duplicates(standin, emails)
    assert standin.standin.count(create) == (1 if bulk(standin) else 12) + 3
    if retry_after:
        assert time.monotonic() - started >= 2 * retry_after  # Retry-After was honoured


def test_a_list_call_retries_503s_then_succeeds(standin: Proxy) -> None:
    standin.standin.seed_user("a@example.com")
    standin.standin.fail("/user/list", status=503, times=3)
    with standin.client() as client:
        users = list(client.users())
    assert [u.email for u in users] == ["a@example.com"]
    assert standin.standin.count("/user/list") == 4


def test_a_slow_listing_past_the_timeout_is_asked_again(standin: Proxy, tmp_path: Path) -> None:
    standin.standin.seed_user("a@example.com")
    standin.standin.fail("/user/list", "delay_before", seconds=2)

    run = run_script("list_user.py", "--timeout", "1", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "a@example.com" in run.stdout


def test_a_lost_answer_to_a_delete_is_checked_not_reported_as_missing(standin: Proxy, tmp_path: Path) -> None:
    for n in range(5):
        standin.standin.seed_user(f"d{n}@example.com", keys=1)
    standin.standin.fail("/user/delete", "drop_after")
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "".join(f"d{n}@example.com\n" for n in range(5)))

    run = run_script("del_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert len(run.rows("user_del_result.csv")) == 5
    assert run.rows("user_del_error.csv") == []
    assert standin.standin.user_emails() == []


@pytest.mark.parametrize("path", ["/team/new", "/invitation/new"])
def test_lost_answers_to_other_creates(standin: Proxy, tmp_path: Path, path: str) -> None:
    standin.standin.seed_team("seeded")  # invitations need the proxy's own default user
    emails = _addlist(tmp_path / "user_addlist.csv", 3, team="brand-new")
    standin.standin.fail(path, "drop_after")

    run = run_script("add_user.py", "--create-teams", "--invite", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    results = _accounted_once(run, emails)
    assert all(r["invitation_url"] for r in results.values())
    assert [t["team_alias"] for t in standin.standin.teams.values()].count("brand-new") == 1


def test_a_crash_mid_run_that_recovers_loses_nothing(standin: Proxy, tmp_path: Path) -> None:
    emails = _addlist(tmp_path / "user_addlist.csv", 40)
    standin.standin.latency = 0.02

    def outage() -> None:
        standin.standin.crash()
        time.sleep(2)
        standin.standin.start()

    standin.standin.fail("/user/new", "call", skip=10, call=lambda: threading.Thread(target=outage).start())
    run = run_script("add_user.py", proxy=standin, cwd=tmp_path)

    results = _accounted_once(run, emails)
    _no_duplicates(standin, list(results))
    assert run.code in (0, 1), run.output
    assert len(results) >= 36  # at most the rows in flight when it died lost their answers


def test_a_proxy_that_stays_down_stops_the_run_early_and_a_rerun_finishes_it(paths: Proxy, tmp_path: Path) -> None:
    standin = paths
    emails = _addlist(tmp_path / "user_addlist.csv", 1500 if bulk(standin) else 60)
    standin.standin.latency = 0.02
    standin.standin.fail(
        endpoint(standin, "create"),
        "call",
        skip=1 if bulk(standin) else 10,
        call=lambda: threading.Thread(target=standin.standin.crash).start(),
    )

    started = time.monotonic()
    run = run_script("add_user.py", "--workers", "1" if bulk(standin) else "4", proxy=standin, cwd=tmp_path)

    assert run.code == 1
    assert time.monotonic() - started < 90  # it did not grind through every row against a dead proxy
    results = _accounted_once(run, emails)
    reasons = {r["error_reason"] for r in run.rows("user_reg_error.csv")}
    if not bulk(standin):  # one batch of 500 at a time gives the dead proxy too few requests to matter
        assert any(reason.startswith("not started: the proxy stopped answering") for reason in reasons)

    standin.standin.start()
    assert all(standin.key_works(r["api_keys"]) for r in results.values())
    rerun = run_script("add_user.py", "--skip-existing", proxy=standin, cwd=tmp_path)
    assert rerun.code == 0, rerun.output
    _no_duplicates(standin, emails)


def _spawn(script: str, *args: str, proxy: Proxy, cwd: Path) -> subprocess.Popen[str]:
    """A script running in the background; its stdout (a plan can be long) goes to a file, so
    that a full pipe never stops it."""
    env = clean_env(LITELLM_BASE_URL=proxy.url, LITELLM_MASTER_KEY=proxy.master_key)
    with (cwd / f"{script}.stdout").open("w") as stdout:
        return subprocess.Popen(
            [sys.executable, str(ROOT / script), *args],
            cwd=cwd,
            env=env,
            text=True,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )


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
    emails = _addlist(tmp_path / "user_addlist.csv", 1200 if bulk(standin) else 150)
    standin.standin.latency = 0.3 if bulk(standin) else 0.02
    process = _spawn("add_user.py", "--workers", "1" if bulk(standin) else "4", proxy=standin, cwd=tmp_path)
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
    _no_duplicates(standin, emails)
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
    process = _spawn(
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
    _no_duplicates(standin, emails)
    assert standin.standin.user_emails() == emails
    keys = _keys_recorded(tmp_path, "user_sync")
    assert sorted(keys) == emails
    assert all(standin.key_works(key) for key in keys.values())


def test_ctrl_c_finishes_the_rows_in_flight_and_starts_no_new_one(paths: Proxy, tmp_path: Path) -> None:
    standin = paths
    emails = _addlist(tmp_path / "user_addlist.csv", 2500 if bulk(standin) else 40)
    standin.standin.latency = 0.2
    process = _spawn("add_user.py", "--workers", "1" if bulk(standin) else "4", proxy=standin, cwd=tmp_path)
    _wait_for_rows(tmp_path / "user_reg_result.csv", 4)

    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    run = Run(130, "", stderr, tmp_path)
    results = _accounted_once(run, emails)
    assert len(results) < len(emails)
    assert {r["error_reason"] for r in run.rows("user_reg_error.csv")} == {"not started: the run was interrupted"}
    assert standin.standin.user_emails() == sorted(results)
    assert "Interrupted: finishing the rows in flight" in stderr


def test_two_syncs_at_once_do_not_both_apply(standin: Proxy, tmp_path: Path) -> None:
    """The lease is on the proxy: a second run from another folder, through another spelling of
    the proxy's URL, sees it."""
    for n in range(3):
        standin.standin.seed_user(f"u{n}@example.com")
    write_csv(tmp_path / "user_list.csv", "email,role\nu0@example.com,proxy_admin\nu1@example.com,internal_user\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_csv(elsewhere / "user_list.csv", "email,role\nu2@example.com,internal_user\n")
    applying = threading.Event()
    standin.standin.fail("/user/bulk_update", "call", call=lambda: (applying.set(), time.sleep(3)))
    first = _spawn("sync_user.py", proxy=standin, cwd=tmp_path)
    assert applying.wait(30)

    other_spelling = Proxy("standin", standin.url.replace("127.0.0.1", "localhost") + "/", standin.master_key)
    second = run_script("sync_user.py", "--max-delete", "5", proxy=other_spelling, cwd=elsewhere)
    dry = run_script("sync_user.py", "--dry-run", proxy=standin, cwd=tmp_path)
    first.communicate(timeout=60)

    assert first.returncode == 0
    assert second.code == 4, second.output
    assert "another run is applying changes to this proxy (sync_user.py by" in second.stderr
    assert "Nothing was changed" in second.stderr
    assert not (elsewhere / "user_sync_result.csv").exists()
    assert dry.code == 0  # a dry run changes nothing, so it does not wait for the lease
    assert standin.standin.count("/user/bulk_update") == 1
    assert standin.standin.count("/management/v1/users/bulk_delete") == 1
    assert standin.standin.user_emails() == ["u0@example.com", "u1@example.com"]


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_tls_is_verified_unless_switched_off_explicitly(tmp_path: Path) -> None:
    from tests.standin import StandIn

    cert, key = _self_signed(tmp_path)
    with StandIn(tls=(cert, key)) as server:
        server.seed_user("a@example.com")
        proxy = Proxy("tls", server.url, server.master_key, server)
        refused = run_script("list_user.py", proxy=proxy, cwd=tmp_path)
        insecure = run_script("list_user.py", "--insecure", proxy=proxy, cwd=tmp_path)
        bundle = run_script("list_user.py", "--ca-bundle", cert, proxy=proxy, cwd=tmp_path)

    assert refused.code == 3
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "certificate verify failed" in refused.stderr
    assert insecure.code == 0
    assert "WARNING: TLS certificate verification is off (--insecure)." in insecure.stderr
    assert "a@example.com" in insecure.stdout
    assert bundle.code == 0
    assert "WARNING" not in bundle.stderr


LEASE_CHECK_INPUTS = {
    "add_user.py": ("user_addlist.csv", "email,role\nnew@example.com,internal_user\n"),
    "del_user.py": ("user_dellist.csv", "email,user_id\nu0@example.com,\n"),
    "sync_user.py": ("user_list.csv", "email,role\nu0@example.com,proxy_admin\n"),
}


@pytest.mark.parametrize("script", list(LEASE_CHECK_INPUTS))
def test_a_failed_look_for_other_leases_gives_this_runs_lease_back(standin: Proxy, tmp_path: Path, script: str) -> None:
    """The lease is made first, then other leases are looked for: when that look fails, the
    lease just made is deleted again, or it would stop every other run for its time to live."""
    standin.standin.seed_user("u0@example.com")
    name, text = LEASE_CHECK_INPUTS[script]
    write_csv(tmp_path / name, text)
    standin.standin.fail("/v2/team/list", status=500, times=20)

    run = run_script(script, proxy=standin, cwd=tmp_path)

    assert run.code == 3, run.output
    assert "Nothing was changed" in run.stderr
    assert standin.standin.count("/team/new") == 1
    assert standin.standin.teams == {}  # the lease is gone
    assert standin.standin.user_emails() == ["u0@example.com"]


@pytest.mark.parametrize("header", ["email", "email,user_id", "user_id"])
def test_a_failed_listing_of_every_key_stops_a_large_delete_before_any_change(
    standin: Proxy, tmp_path: Path, header: str
) -> None:
    """A file of 100 users or more has every key listed beside the users, for its undo file:
    when that listing fails, nothing is deleted, whatever columns the file has."""
    ids = [standin.standin.seed_user(f"u{n}@example.com", keys=1) for n in range(120)]
    cells = {"email": [f"u{n}@example.com" for n in range(120)], "user_id": ids}
    lines = [",".join(cells[column][n] for column in header.split(",")) for n in range(120)]
    write_csv(tmp_path / "user_dellist.csv", header + "\n" + "\n".join(lines) + "\n")
    standin.standin.fail("/key/list", status=500, times=20)

    run = run_script("del_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 3, run.output
    assert "Nothing was changed" in run.stderr
    assert len(standin.standin.user_emails()) == 120
    assert not (tmp_path / "user_del_undo.csv").exists()
    assert standin.standin.teams == {}  # the lease was given back
    assert standin.master_key not in run.output
