"""Replicated proxies (issue 22, items 15-17): the real proxy run as two LiteLLM processes over one
database, the second with its clock 600 s ahead, behind a round-robin forwarder, as large proxies
run. The lease and the round trips hold through it; a run that changed users says when the other
process may not see it yet. Needs LITELLM_TEST_LP_ROOT (the real proxy's LP_ROOT); CI runs it on
1.110.2.
"""

from __future__ import annotations

import email.utils
import itertools
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from common.lease import LEASE_ALIAS, LEASE_PREFIX
from litellm_client import LiteLLMClient
from tests.conftest import REAL_KEY, Proxy, Run, run_script, spawn, write_csv
from tests.scripts.test_round_trips import EXPORTED, odd_proxy
from tests.support.replicas import Replicas

pytestmark = pytest.mark.integration


@pytest.fixture
def through(replicated: Replicas) -> Proxy:
    """The replicated proxy, as the scripts reach it: through the forwarder."""
    proxy = Proxy("replicated", replicated.url, REAL_KEY)
    proxy.clear_managed_users()
    return proxy


def test_requests_alternate_between_two_clocks_600_s_apart(replicated: Replicas) -> None:
    dates = []
    for _ in range(4):
        answer = requests.get(f"{replicated.url}/health/liveliness", timeout=30)
        dates.append(email.utils.parsedate_to_datetime(answer.headers["date"]).timestamp())
    steps = [later - earlier for earlier, later in itertools.pairwise(dates)]
    assert all(abs(abs(step) - 600) < 5 for step in steps), dates


def test_two_adds_started_together_through_replicas_end_with_one_applying_the_file(
    through: Proxy, tmp_path: Path
) -> None:
    emails = [through.email(f"twin{n:02d}") for n in range(40)]
    folders = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        write_csv(folder / "user_addlist.csv", "email,role\n" + "".join(f"{e},internal_user\n" for e in emails))
        folders.append(folder)

    runs = [spawn("add_user.py", "--no-key", proxy=through, cwd=folder) for folder in folders]
    outcomes = [(run.wait(timeout=300), run.communicate()[1]) for run in runs]

    assert sorted(code for code, _ in outcomes) in ([0, 1], [0, 4]), outcomes
    assert all("the lease of a run that died" not in err for _, err in outcomes)
    users = through.users()
    assert sorted(email for email in users if email in emails) == sorted(emails)


def test_a_run_alive_on_this_machine_keeps_its_lease_whatever_each_replica_says_the_time_is(
    through: Proxy, tmp_path: Path
) -> None:
    """The case that wrote beside a live run: a second run starts while the first applies."""
    first_folder, second_folder = tmp_path / "first", tmp_path / "second"
    first_folder.mkdir()
    second_folder.mkdir()
    write_csv(
        first_folder / "user_addlist.csv",
        "email,role,key_name\n"
        + "".join(f"{through.email(f'long{n:04d}')},internal_user,k{n}-{through.tag}\n" for n in range(1500)),
    )
    write_csv(second_folder / "user_addlist.csv", f"email\n{through.email('second')}\n")
    first = spawn("add_user.py", "--workers", "1", proxy=through, cwd=first_folder)
    deadline = time.monotonic() + 120
    while not _holding(through):  # the first run holds the proxy
        assert time.monotonic() < deadline, "the first run never took its lease"
        assert first.poll() is None, "the first run ended before it held the lease"
        time.sleep(0.1)

    second = run_script("add_user.py", proxy=through, cwd=second_folder)
    _, first_err = first.communicate(timeout=600)

    assert first.returncode == 0, first_err
    assert second.code == 4, second.output
    assert "the lease of a run that died" not in second.stderr + first_err
    assert through.email("second") not in through.users()


def _holding(proxy: Proxy) -> bool:
    with proxy.client() as client:
        return any(team.metadata.get("state") == "holding" for team in client.teams(alias=LEASE_ALIAS))


def test_a_lease_from_another_machine_that_looks_stale_by_one_replicas_clock_is_watched_not_removed(
    through: Proxy, tmp_path: Path
) -> None:
    """Its holder renews it every second, stamping the time one replica tells; the other replica's
    clock makes it look 600 s old. The run watches its renewal count move, and stops."""
    team_id = LEASE_PREFIX + uuid.uuid4().hex
    holder = {
        "litellm_user_tools_lease": 1, "script": "sync_user.py", "owner": "cron@elsewhere",
        "host": "elsewhere/boot/pid:[1]", "pid": 1, "started_at": "2026-12-01T00:00:00+00:00",
        "ttl_seconds": 20, "state": "holding", "renewals": 0,
    }  # fmt: skip
    stop = threading.Event()
    with LiteLLMClient(through.url, REAL_KEY) as client:
        client.create_team(LEASE_ALIAS, team_id=team_id, metadata=holder)

        def renew() -> None:
            while not stop.wait(1):
                holder["renewals"] += 1
                now = client.proxy_time()
                stamp = now.isoformat(timespec="seconds") if now else None
                client.update_team_metadata(team_id, {**holder, "renewed_at": stamp})

        renewer = threading.Thread(target=renew, daemon=True)
        renewer.start()
        try:
            write_csv(tmp_path / "user_addlist.csv", f"email\n{through.email('beside')}\n")
            run = run_script("add_user.py", proxy=through, cwd=tmp_path)
        finally:
            stop.set()
            renewer.join()
            client.delete_team(team_id)

    assert run.code == 4, run.output
    assert "the lease of a run that died" not in run.stderr
    assert through.email("beside") not in through.users()


def test_an_unedited_export_through_replicas_syncs_back_as_no_change(through: Proxy, tmp_path: Path) -> None:
    keys = odd_proxy(through, tmp_path)
    export = run_script(
        "list_user.py", "--format", "csv", "--columns", EXPORTED, "--output", "user_list.csv", proxy=through,
        cwd=tmp_path,
    )  # fmt: skip
    assert export.code == 0, export.output

    for mode in (["--check"], ["--no-delete"], ["--remove", "block"]):
        run = run_script("sync_user.py", *mode, proxy=through, cwd=tmp_path)
        assert run.code == 0, (mode, run.output)
        assert "No changes: the proxy already matches the file." in run.stdout, (mode, run.output)
    assert not through.key_works(keys[through.email("leaver")])


def test_a_run_says_when_the_other_process_may_not_see_its_changes_yet(through: Proxy, tmp_path: Path) -> None:
    through.create_user(through.email("leaver"))
    write_csv(tmp_path / "user_dellist.csv", f"email\n{through.email('leaver')}\n")

    with through.client() as client:  # before 1.108 the proxy does not say (no /health/readiness/details)
        says = client.release.at_least(1, 108)

    run = run_script("del_user.py", "--block", proxy=through, cwd=tmp_path)

    assert run.code == 0, run.output
    assert ("NOTE: this proxy runs several processes without a shared cache (Redis)" in run.stdout) == says
    assert Run(0, "", "", tmp_path).rows("user_del_result.csv")[0]["status"] == "Blocked"
