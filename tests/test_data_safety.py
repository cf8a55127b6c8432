"""The ways a run could delete, duplicate or misplace users (issue 14), each tried as an
administrator would meet it, on the stand-in."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.lease import LEASE_ALIAS, LEASE_PREFIX, Lease
from common.runner import Runner, Stopped
from tests.conftest import ROOT, Proxy, clean_env, run_script, write_csv
from tests.standin import StandIn


def _spawn(script: str, *args: str, proxy: Proxy, cwd: Path) -> subprocess.Popen[str]:
    env = clean_env(LITELLM_BASE_URL=proxy.url, LITELLM_MASTER_KEY=proxy.master_key)
    return subprocess.Popen(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


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


# -- 1 and 7: one writing run per proxy -----------------------------------------------------------


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

    runs = [_spawn("add_user.py", proxy=proxy, cwd=folder) for proxy, folder in zip(spellings, folders, strict=True)]
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


# -- 2: a listing that fails leaves the old file ---------------------------------------------------


def test_a_listing_that_fails_half_way_keeps_the_old_output_file(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    for n in range(1086):
        standin.standin.seed_user(f"u{n:04d}@example.com")
    first = run_script("list_user.py", "--format", "csv", "--output", "user_list.csv", proxy=standin, cwd=tmp_path)
    assert first.code == 0, first.output
    before = (tmp_path / "user_list.csv").read_text()
    standin.standin.fail("/user/list", status=500, skip=10, times=100)

    run = run_script("list_user.py", "--format", "csv", "--output", "user_list.csv", proxy=standin, cwd=tmp_path)

    assert run.code == 3
    assert (tmp_path / "user_list.csv").read_text() == before
    assert len(before.splitlines()) == 1087
    assert [p.name for p in tmp_path.iterdir()] == ["user_list.csv"]


# -- 3: invisible and decorated emails -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("kn30@example.com\u200b", "email 'kn30@example.com' contains invisible characters (U+200B)"),
        ("Kn 30 <kn30@example.com>", "invalid email 'Kn 30 <kn30@example.com>'"),
        ("kn30@exa\u00admple.com", "email 'kn30@example.com' contains invisible characters (U+00AD)"),
    ],
)
def test_a_look_alike_email_is_refused_and_protects_the_real_user(
    standin: Proxy, tmp_path: Path, cell: str, reason: str
) -> None:
    assert standin.standin is not None
    standin.standin.seed_user("kn30@example.com", keys=1)
    standin.standin.seed_user("other@example.com")
    write_csv(tmp_path / "user_list.csv", f'email,role\n"{cell}",internal_user\nother@example.com,internal_user\n')

    run = run_script("sync_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 1
    (failed,) = [row for row in run.rows("user_sync_result.csv") if row["status"] == "FAILED"]
    assert failed["error_reason"] == reason
    assert standin.standin.user_emails() == ["kn30@example.com", "other@example.com"]
    assert "Users to delete: 0" in run.stdout


def test_an_email_in_another_unicode_form_is_the_same_user(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    standin.standin.seed_user("jos\u00e9@example.com", "internal_user")  # é as one character (NFC)
    write_csv(tmp_path / "user_list.csv", "email,role\njose\u0301@example.com,internal_user\n")  # e + accent (NFD)

    run = run_script("sync_user.py", "--dry-run", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "No changes: the proxy already matches the file." in run.stdout


# -- 4: team names round-trip ---------------------------------------------------------------------


def test_odd_team_aliases_round_trip_through_export_and_sync(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    proxy = standin.standin
    semi = proxy.seed_team("rt-eng;rt-ops")
    eng, ops = proxy.seed_team("rt-eng"), proxy.seed_team("rt-ops")
    nameless = proxy.seed_team(None)
    spaced = proxy.seed_team("  lead")
    lead = proxy.seed_team("lead")
    twins = [proxy.seed_team("twin"), proxy.seed_team("twin")]
    proxy.seed_user("semi@example.com", teams=(semi,))
    proxy.seed_user("both@example.com", teams=(eng, ops))
    proxy.seed_user("nameless@example.com", teams=(nameless,))
    proxy.seed_user("spaced@example.com", teams=(spaced,))
    proxy.seed_user("lead@example.com", teams=(lead,))
    proxy.seed_user("twin@example.com", teams=(twins[0],))
    export = run_script(
        "list_user.py", "--format", "csv", "--columns", "email,role,team_name", "--output", "user_list.csv",
        proxy=standin, cwd=tmp_path,
    )  # fmt: skip
    assert export.code == 0, export.output

    run = run_script("sync_user.py", "--dry-run", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "No changes: the proxy already matches the file." in run.stdout
    cells = {row["email"]: row["team_name"] for row in export.rows("user_list.csv")}
    assert cells["semi@example.com"] == semi  # ';' inside: written by its id
    assert cells["both@example.com"] == "rt-eng;rt-ops"
    assert cells["nameless@example.com"] == nameless
    assert cells["spaced@example.com"] == spaced
    assert cells["lead@example.com"] == "lead"
    assert cells["twin@example.com"] == twins[0]


def test_a_plan_line_never_looks_unchanged_when_it_is_not(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    proxy = standin.standin
    semi = proxy.seed_team("rt-eng;rt-ops")
    proxy.seed_team("rt-eng")
    proxy.seed_team("rt-ops")
    proxy.seed_user("semi@example.com", teams=(semi,))
    write_csv(tmp_path / "user_list.csv", "email,team_name\nsemi@example.com,rt-eng;rt-ops\n")

    run = run_script("sync_user.py", "--dry-run", proxy=standin, cwd=tmp_path)

    assert f"~ semi@example.com (Teams: {semi} -> rt-eng;rt-ops)" in run.stdout


# -- 5: a row with more fields than the header -------------------------------------------------------


@pytest.mark.parametrize("script", ["add_user.py", "sync_user.py", "del_user.py"])
def test_a_row_with_more_fields_than_the_header_is_an_error(standin: Proxy, tmp_path: Path, script: str) -> None:
    assert standin.standin is not None
    team = standin.standin.seed_team("rt-ops")
    standin.standin.seed_user("x@example.com", "internal_user", teams=(team,))
    standin.standin.seed_team("rt-eng")
    write_csv(tmp_path / "users.csv", "email,role,team_name\nx@example.com,internal_user,rt-eng,rt-ops\n")

    run = run_script(script, "--csv-file", "users.csv", proxy=standin, cwd=tmp_path)

    assert run.code == 1, run.output
    assert "FAILED line 2: x@example.com: the row has 4 fields but the header has 3" in run.stderr
    assert standin.standin.user_by_email("x@example.com")[0]["teams"] == [team]


# -- 6: a join never brings back a user deleted meanwhile ---------------------------------------------


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


# -- 8: a proxy that disappears mid-create -----------------------------------------------------------


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


# -- 9: Ctrl-C or SIGTERM while teams are created -------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_teams_are_created_leaves_every_row_in_a_file(
    standin: Proxy, tmp_path: Path, sig: signal.Signals
) -> None:
    assert standin.standin is not None
    creating = threading.Event()
    standin.standin.fail("/team/new", "call", skip=1, times=1, call=lambda: (creating.set(), time.sleep(1)))
    write_csv(
        tmp_path / "user_addlist.csv",
        "email,team_name\n" + "".join(f"s{n}@example.com,team{n}\n" for n in range(6)),
    )
    process = _spawn("add_user.py", "--create-teams", proxy=standin, cwd=tmp_path)
    assert creating.wait(30)

    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    errors = {row["email"]: row["error_reason"] for row in _rows(tmp_path / "user_reg_error.csv")}
    assert sorted(errors) == [f"s{n}@example.com" for n in range(6)]
    assert set(errors.values()) == {"not started: the run was interrupted"}
    assert standin.standin.user_emails() == []


def _rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# -- 10, 11: lost delete answers -----------------------------------------------------------------------


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


# -- 12: invitation links -------------------------------------------------------------------------------


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


# -- 13: summaries say what happened ---------------------------------------------------------------------


def test_without_keys_the_result_file_is_not_called_a_key_file(standin: Proxy, tmp_path: Path) -> None:
    write_csv(tmp_path / "user_addlist.csv", "email\nnokey@example.com\n")

    run = run_script("add_user.py", "--no-key", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "holds API keys" not in run.stdout
    assert oct((tmp_path / "user_reg_result.csv").stat().st_mode & 0o777) == "0o644"


def test_one_user_listed_is_one_user(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    standin.standin.seed_user("only@example.com")

    run = run_script("list_user.py", proxy=standin, cwd=tmp_path)

    assert "1 user listed;" in run.stderr


def test_leaving_a_team_takes_its_keys_on_a_release_that_keeps_them(tmp_path: Path) -> None:
    """1.65 keeps a user's team keys when the user leaves the team: they would still spend as
    the team's. The tools delete them, as later releases do, and report what happened."""
    with StandIn(release="1.65.8") as proxy:
        standin = Proxy("standin-1.65.8", proxy.url, proxy.master_key, proxy)
        old, new = proxy.seed_team("old"), proxy.seed_team("new")
        mover = proxy.seed_user("mover@example.com", "internal_user", teams=(old,))
        team_key, _ = proxy._insert_key(mover, old, "mover-old")
        own_key, _ = proxy._insert_key(mover, None, "mover-own")
        write_csv(tmp_path / "user_list.csv", "email,role,team_name\nmover@example.com,internal_user,new\n")

        run = run_script("sync_user.py", proxy=standin, cwd=tmp_path)

        assert run.code == 0, run.output
        (row,) = run.rows("user_sync_result.csv")
        assert "left old, 1 team key deleted" in row["detail"]
        assert not standin.key_works(team_key)
        assert standin.key_works(own_key)
        assert mover in proxy.roster(new)
