"""One writing run per proxy: the lease kept on the proxy, between runs that start together, from
another machine, after a run died, and when a run loses it.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.lease import LEASE_ALIAS, LEASE_PREFIX, Lease
from common.runner import Runner, Stopped
from tests.conftest import Proxy, Run, run_script, spawn, write_csv
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
    """Put another run's lease on the proxy, as it would leave it (holding the proxy)."""
    team_id = LEASE_PREFIX + "other"
    standin.seed_team(LEASE_ALIAS, team_id)
    standin.teams[team_id]["metadata"] = {
        "litellm_user_tools_lease": 1,
        "script": "sync_user.py",
        "owner": "cron@elsewhere",
        "host": "elsewhere/boot/pid:[1]",
        "pid": 1,
        "started_at": "2026-12-01T00:00:00+00:00",
        "ttl_seconds": 300,
        "state": "holding",
        "renewals": 3,
        **holder,
    }
    return team_id


def _now(delta: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta)).isoformat(timespec="seconds")


def test_two_runs_started_at_the_same_moment_end_with_one_applying_the_file(standin: Proxy, tmp_path: Path) -> None:
    """Both make their lease, then both look for others at once (the stand-in holds each look
    until the other arrives): each sees the other claiming, gives its lease back and tries again
    after a random pause; one then holds the proxy and applies the file, the other stops."""
    assert standin.standin is not None
    emails = [f"twin{n:02d}@example.com" for n in range(30)]
    both_looking = threading.Barrier(2, timeout=30)
    looked = standin.standin.fail("/v2/team/list", "call", times=2, call=both_looking.wait)
    standin.standin.fail("/management/v1/users/bulk", "delay_before", seconds=2)  # the winner holds it a while
    folders = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        write_csv(folder / "user_addlist.csv", "email,role\n" + "".join(f"{e},internal_user\n" for e in emails))
        folders.append(folder)
    spellings = [standin, Proxy("standin", standin.url.replace("127.0.0.1", "localhost") + "/", standin.master_key)]

    runs = [spawn("add_user.py", proxy=proxy, cwd=folder) for proxy, folder in zip(spellings, folders, strict=True)]
    outcomes = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]

    assert looked.seen >= 2
    assert sorted(code for code, _ in outcomes) == [0, 4], outcomes
    assert all("another run is applying changes" in err for code, err in outcomes if code == 4)
    assert any("another run is starting at the same moment" in err for _, err in outcomes)
    assert [len(standin.standin.user_by_email(e)) for e in emails] == [1] * len(emails)
    assert not [t for t in standin.standin.teams if t.startswith(LEASE_PREFIX)]


@pytest.mark.parametrize("zone", [True, False], ids=["aware", "naive"])
def test_a_live_lease_from_another_machine_stops_the_run(proxy: Proxy, tmp_path: Path, zone: bool) -> None:
    """On every release: a lease another run holds (renewed just now) stops this run at once, also
    with stamps that name no zone (read as UTC: no TypeError between naive and aware times)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stamp = now if zone else now.removesuffix("+00:00")
    other = LEASE_PREFIX + uuid.uuid4().hex
    with proxy.client() as client:
        client.create_team(LEASE_ALIAS, team_id=other, metadata={**_holder(started_at=stamp), "renewed_at": stamp})
        try:
            write_csv(tmp_path / "user_addlist.csv", f"email\n{proxy.email('blocked-by-lease')}\n")
            run = run_script("add_user.py", proxy=proxy, cwd=tmp_path)
        finally:
            client.delete_team(other)

    assert run.code == 4, run.output
    assert "another run is applying changes to this proxy (sync_user.py by cron@elsewhere, pid 1" in run.stderr
    assert "Traceback" not in run.output
    assert proxy.email("blocked-by-lease") not in proxy.users()


def _holder(**changes: object) -> dict[str, object]:
    return {
        "litellm_user_tools_lease": 1,
        "script": "sync_user.py",
        "owner": "cron@elsewhere",
        "host": "elsewhere/boot/pid:[1]",
        "pid": 1,
        "started_at": "2026-12-01T00:00:00+00:00",
        "ttl_seconds": 300,
        "state": "holding",
        "renewals": 3,
        **changes,
    }


def test_a_dead_runs_lease_is_taken_over_once_it_stays_unrenewed_for_its_time_to_live(
    proxy: Proxy, tmp_path: Path
) -> None:
    """On every release: a lease that looks stale is watched for its time to live (2 s here) on
    this run's own clock, and removed once its renewal count never moved."""
    other = LEASE_PREFIX + uuid.uuid4().hex
    with proxy.client() as client:
        client.create_team(LEASE_ALIAS, team_id=other, metadata=_holder(ttl_seconds=2, renewed_at=_now(-3600)))
    write_csv(tmp_path / "user_addlist.csv", f"email\n{proxy.email('after-dead')}\n")

    run = run_script("add_user.py", "--no-key", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "looks stale; watching it for up to 2 s" in run.stderr
    assert "removed the lease of a run that died" in run.stderr
    assert proxy.email("after-dead") in proxy.users()
    with proxy.client() as client:
        assert [t.team_id for t in client.teams(alias=LEASE_ALIAS) if t.team_id == other] == []


def test_a_lease_given_back_while_this_run_watches_it_is_no_more_in_the_way(standin: Proxy, tmp_path: Path) -> None:
    """A stale-looking lease that disappears while this run watches it was given back: go ahead
    (it is neither a live run's, to stop for, nor a dead one's, to remove)."""
    assert standin.standin is not None
    other = _lease(standin.standin, ttl_seconds=30, renewed_at=_now(-3600))
    looks = standin.standin.watch("/v2/team/list", lambda: None)
    gone = threading.Timer(1.0, lambda: standin.standin and standin.standin.teams.pop(other, None))
    write_csv(tmp_path / "user_addlist.csv", "email\na@example.com\n")

    gone.start()
    run = run_script("add_user.py", "--no-key", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "looks stale; watching it for up to 30 s" in run.stderr
    assert "the lease of a run that died" not in run.stderr
    assert standin.standin.user_emails() == ["a@example.com"]
    assert looks.seen >= 3  # the first look, then the watch until the lease was gone


@pytest.mark.parametrize("given_back", [False, True], ids=["left", "given-back-meanwhile"])
def test_a_lease_on_this_machine_whose_process_is_gone_is_taken_over_at_once(
    standin: Proxy, tmp_path: Path, given_back: bool
) -> None:
    """given back meanwhile: the run ended well and its lease was gone before this run's delete
    (a replica still listed it, seen on two 1.65.8 processes): nothing to announce."""
    server = standin.standin
    assert server is not None
    from common.lease import _this_host

    dead = _lease(server, host=_this_host(), pid=999_999_999, renewed_at=_now())
    if given_back:
        server.watch("/team/delete", lambda: server.teams.pop(dead, None))
    write_csv(tmp_path / "user_addlist.csv", "email\na@example.com\n")

    run = run_script("add_user.py", "--no-key", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert ("the lease of a run that died" in run.stderr) != given_back
    assert dead not in server.teams
    assert "watching" not in run.stderr
    assert standin.standin.user_emails() == ["a@example.com"]


def test_a_live_lease_from_a_container_sharing_the_host_name_is_not_judged_by_its_pid(
    standin: Proxy, tmp_path: Path
) -> None:
    """Host networking shares the host's name (and the kernel's boot id), not its processes: a pid
    from another pid namespace means nothing here."""
    assert standin.standin is not None
    from common.lease import _this_host

    name, boot, _ = _this_host().split("/", 2)
    _lease(standin.standin, host=f"{name}/{boot}/pid:[4026532999]", pid=999_999_999, renewed_at=_now())
    write_csv(tmp_path / "user_addlist.csv", "email\na@example.com\n")

    run = run_script("add_user.py", "--no-key", proxy=standin, cwd=tmp_path)

    assert run.code == 4, run.output
    assert standin.standin.user_emails() == []


def test_a_live_lease_stamped_by_a_replica_whose_clock_is_off_is_not_taken_over(standin: Proxy, tmp_path: Path) -> None:
    """Its renewed_at says an hour ago (a replica's clock 600 s or more away), but its holder keeps
    renewing it: the watch sees the count move, and the run stops instead of writing beside it."""
    assert standin.standin is not None
    team_id = _lease(standin.standin, ttl_seconds=3, renewed_at=_now(-3600))
    holding = threading.Event()

    def keep_renewing() -> None:
        while not holding.wait(0.2):
            with standin.standin.lock:
                standin.standin.teams[team_id]["metadata"]["renewals"] += 1

    renewer = threading.Thread(target=keep_renewing, daemon=True)
    renewer.start()
    write_csv(tmp_path / "user_addlist.csv", "email\na@example.com\n")
    try:
        run = run_script("add_user.py", "--no-key", proxy=standin, cwd=tmp_path)
    finally:
        holding.set()

    assert run.code == 4, run.output
    assert "looks stale; watching it" in run.stderr
    assert "the lease of a run that died" not in run.stderr
    assert team_id in standin.standin.teams
    assert standin.standin.user_emails() == []


def test_a_team_that_only_shares_the_lease_prefix_is_a_team(standin: Proxy, tmp_path: Path) -> None:
    """A real team whose id starts like a lease's (alias prod) is listed, named and not made twice."""
    assert standin.standin is not None
    standin.standin.seed_team("prod", LEASE_PREFIX + "prod")
    write_csv(tmp_path / "user_addlist.csv", "email,team_name\na@example.com,prod\n")

    run = run_script("add_user.py", "--no-key", "--create-teams", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert [t["team_alias"] for t in standin.standin.teams.values()] == ["prod"]
    (user,) = standin.standin.user_by_email("a@example.com")
    assert user["user_id"] in standin.standin.roster(LEASE_PREFIX + "prod")


def test_the_renewals_keep_the_lease_and_one_that_hangs_stops_the_run_before_the_lease_expires(
    standin: Proxy,
) -> None:
    """The renewal thread, with a time to live of 1.2 s: it renews every 0.12 s; once renewals hang
    (longer than the time to live), the run stops starting rows before another run could take the
    lease over, and a renewal thread that fails loses the lease."""
    assert standin.standin is not None
    with standin.client() as client:
        lease = Lease(client, "add_user.py", ttl=1.2)
        lease.take()
        try:
            time.sleep(0.6)
            renewals = standin.standin.teams[lease.team_id]["metadata"]["renewals"]
            assert renewals >= 3, renewals
            assert lease.stop_reason is None
            hang = standin.standin.fail("/team/update", "delay_before", seconds=3, times=100)
            deadline = time.monotonic() + 1.2
            while lease.stop_reason is None:
                assert time.monotonic() < deadline, "the run kept its lease past its time to live"
                time.sleep(0.02)
            assert lease.stop_reason.startswith("this run's lease on the proxy has not been renewed for")
            assert hang.seen >= 1
        finally:
            lease.give_back()


def test_any_failure_of_the_renewal_thread_loses_the_lease(standin: Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    with standin.client() as client:
        lease = Lease(client, "add_user.py", ttl=1.0)
        lease.take()

        def broken(*_: object, **__: object) -> None:
            raise RuntimeError("a bug in a renewal")

        monkeypatch.setattr(client, "update_team_metadata", broken)
        try:
            deadline = time.monotonic() + 2
            while lease.stop_reason is None:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            monkeypatch.undo()
            lease.give_back()
    assert lease.stop_reason == "this run's lease on the proxy could not be renewed (a bug in a renewal)"


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
        lease.give_back()

    assert lease.stop_reason == "this run's lease on the proxy was removed by another run"
    assert started == []
    assert stopped.value.not_started == list(range(10))
    assert stopped.value.code == 1


def test_two_adds_started_together_on_every_release_end_with_one_applying_the_file(
    proxy: Proxy, tmp_path: Path
) -> None:
    emails = [proxy.email(f"twin{n:02d}") for n in range(40)]
    folders = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        write_csv(folder / "user_addlist.csv", "email,role\n" + "".join(f"{e},internal_user\n" for e in emails))
        folders.append(folder)

    runs = [spawn("add_user.py", "--no-key", proxy=proxy, cwd=folder) for folder in folders]
    outcomes = [(run.wait(timeout=300), run.communicate()[1]) for run in runs]

    # one applies the file; the other stops (4), or, when it got the lease only once the first had
    # given it back, finds every user there already (1: each row "User already exists in the system")
    assert sorted(code for code, _ in outcomes) in ([0, 1], [0, 4]), outcomes
    for (code, _), folder in zip(outcomes, folders, strict=True):
        if code == 1:
            errors = Run(1, "", "", folder).rows("user_reg_error.csv")
            assert {row["error_reason"] for row in errors} == {"User already exists in the system"}
    users = proxy.users()
    assert all(email in users for email in emails)
    with proxy.client() as client:
        assert [len([u for u in client.users(email_contains=email) if u.email == email]) for email in emails] == [
            1
        ] * 40
