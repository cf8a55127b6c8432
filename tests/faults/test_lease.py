"""One writing run per proxy: the lease kept on the proxy, between runs that start together, from
another machine, after a run died, and when a run loses it.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.lease import LEASE_ALIAS, LEASE_PREFIX, Lease
from common.runner import Runner, Stopped
from tests.conftest import Proxy, run_script, spawn, write_csv
from tests.support.standin import StandIn


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
    first = spawn("sync_user.py", proxy=standin, cwd=tmp_path)
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


def _lease(standin: StandIn, **holder: object) -> str:
    """Put another run's lease on the proxy, as it would leave it."""
    team_id = LEASE_PREFIX + "other"
    standin.seed_team(LEASE_ALIAS, team_id)
    standin.teams[team_id]["metadata"] = {
        "script": "sync_user.py",
        "owner": "cron@elsewhere",
        "host": "elsewhere/boot",
        "pid": 1,
        "started_at": "2026-12-01T00:00:00+00:00",
        "ttl_seconds": 300,
        **holder,
    }
    return team_id


def _now(delta: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta)).isoformat(timespec="seconds")


def test_two_adds_at_once_never_both_create(standin: Proxy, tmp_path: Path) -> None:
    """Two adds of one file from two folders and two spellings of the URL: one stops, nobody twice."""
    assert standin.standin is not None
    emails = [f"twin{n:02d}@example.com" for n in range(30)]
    standin.standin.fail("/management/v1/users/bulk", "delay_before", seconds=2, times=2)  # both would overlap
    folders = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        write_csv(folder / "user_addlist.csv", "email,role\n" + "".join(f"{e},internal_user\n" for e in emails))
        folders.append(folder)
    spellings = [standin, Proxy("standin", standin.url.replace("127.0.0.1", "localhost") + "/", standin.master_key)]

    runs = [spawn("add_user.py", proxy=proxy, cwd=folder) for proxy, folder in zip(spellings, folders, strict=True)]
    outcomes = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]

    codes = sorted(code for code, _ in outcomes)
    assert codes in ([0, 4], [4, 4]), outcomes
    assert all("another run is applying changes" in err for code, err in outcomes if code == 4)
    assert [len(standin.standin.user_by_email(e)) for e in emails] == [1 if codes == [0, 4] else 0] * len(emails)


def test_a_live_lease_from_another_machine_stops_the_run(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    _lease(standin.standin, renewed_at=_now())
    write_csv(tmp_path / "user_addlist.csv", "email\na@example.com\n")

    run = run_script("add_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 4
    assert "another run is applying changes to this proxy (sync_user.py by cron@elsewhere, pid 1" in run.stderr
    assert standin.standin.user_emails() == []
    assert [t for t in standin.standin.teams if t.startswith(LEASE_PREFIX)] == [LEASE_PREFIX + "other"]


@pytest.mark.parametrize(
    "holder",
    [
        {"renewed_at": _now(-3600)},  # not renewed for an hour: its run died elsewhere
        {"host": "here", "pid": 999_999_999},  # on this machine, its process is gone
    ],
    ids=["expired", "dead-process"],
)
def test_a_dead_runs_lease_is_taken_over(standin: Proxy, tmp_path: Path, holder: dict[str, object]) -> None:
    assert standin.standin is not None
    if holder.get("host") == "here":
        from common.lease import _this_host

        holder = {**holder, "host": _this_host(), "renewed_at": _now()}
    _lease(standin.standin, **holder)
    write_csv(tmp_path / "user_addlist.csv", "email\na@example.com\n")

    run = run_script("add_user.py", "--no-key", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "removing the lease of a run that died" in run.stderr
    assert standin.standin.user_emails() == ["a@example.com"]
    assert not [t for t in standin.standin.teams if t.startswith(LEASE_PREFIX)]


def test_a_run_whose_lease_is_taken_away_stops_starting_rows(standin: Proxy) -> None:
    assert standin.standin is not None
    with standin.client() as client:
        lease = Lease(client, "add_user.py")
        lease.take()
        lease.renew()
        assert lease.stop_reason is None
        standin.standin.teams.pop(lease.team_id)  # someone removed it (or took it over)
        lease.renew()
        started: list[int] = []
        with Runner(workers=2, quiet=True, watched=[lease]) as runner, pytest.raises(Stopped) as stopped:
            runner.parallel(range(10), started.append, "rows")

    assert lease.stop_reason == "this run's lease on the proxy was removed by another run"
    assert started == []
    assert stopped.value.not_started == list(range(10))
    assert stopped.value.code == 1
