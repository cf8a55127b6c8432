"""Every failure path of add, del and sync (a bad row, a failed batch, a lost answer, an interrupt,
a bug) with every input shape each script accepts, on the per-user and the bulk path: the
documented exit code, and every row in exactly one result or error row.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, Held, Proxy, clean_env, endpoint, interrupt, no_traceback, run_script, spawn, write_csv
from tests.support.standin import StandIn

PEOPLE = [f"p{n}@example.com" for n in range(6)]


BAD = "not an email"  # refused by every script: spaces make it no single address


@dataclass(frozen=True)
class Outcome:
    code: int
    output: str
    rows: list[dict[str, str]]  # the result and error rows, those of the rows in the input


def _rows(folder: Path, prefix: str) -> list[dict[str, str]]:
    found = []
    for name in (f"{prefix}_result.csv", f"{prefix}_error.csv"):
        path = folder / name
        if path.exists():
            with path.open(newline="", encoding="utf-8") as handle:
                found += list(csv.DictReader(handle))
    return found


def _seed(standin: StandIn) -> dict[str, str]:
    """email -> user_id of PEOPLE, on the proxy (del and sync need users to act on)."""
    team = standin.seed_team("crew")
    return {email: standin.seed_user(email, "internal_user", teams=(team,), keys=1) for email in PEOPLE}


def _add_input(shape: str, folder: Path) -> str:
    rows = [f"{email},internal_user,,{email}-key" for email in PEOPLE] + [f"{BAD},internal_user,,"]
    if shape == "emails":
        write_csv(folder / "in.csv", "email,role,team_name,key_name\n" + "\n".join(rows) + "\n")
    elif shape == "user_ids":
        ids = [f"uid-{n}" for n in range(len(PEOPLE))] + ["uid-bad"]
        write_csv(
            folder / "in.csv",
            "user_id,email,role,team_name,key_name\n" + "\n".join(f"{i},{r}" for i, r in zip(ids, rows, strict=True)),
        )
    else:  # an error file fed back: its extra columns are ignored
        write_csv(
            folder / "in.csv",
            "line,email,role,team_name,key_name,user_id,user_state,error_reason\n"
            + "\n".join(f"{n + 2},{r},,,earlier failure" for n, r in enumerate(rows))
            + "\n",
        )
    return "in.csv"


def _del_input(shape: str, folder: Path, ids: dict[str, str]) -> str:
    if shape == "emails":
        text = "email\n" + "\n".join([*PEOPLE, BAD])
    elif shape == "user_ids":
        text = "user_id,email\n" + "\n".join([*(f"{ids[e]},{e}" for e in PEOPLE), f",{BAD}"])
    else:
        text = "line,email,user_id,error_reason\n" + "\n".join(
            [*(f"{n + 2},{e},{ids[e]},earlier failure" for n, e in enumerate(PEOPLE)), f"8,{BAD},,earlier failure"]
        )
    write_csv(folder / "in.csv", text + "\n")
    return "in.csv"


def _sync_input(shape: str, folder: Path, ids: dict[str, str]) -> str:
    """Roles changed for every listed user (so each one is an update), and a bad row."""
    if shape == "emails":
        text = "email,role\n" + "\n".join([*(f"{e},proxy_admin_viewer" for e in PEOPLE), f"{BAD},internal_user"])
    elif shape == "user_ids":
        text = "email,role,user_id\n" + "\n".join(
            [*(f"{e},proxy_admin_viewer,{ids[e]}" for e in PEOPLE), f"{BAD},internal_user,"]
        )
    else:  # a result file fed back (sync has no error file: its failed rows are results)
        text = "action,email,user_id,role,team_name,api_keys,status,error_reason,line,detail\n" + "\n".join(
            [
                *(
                    f"UPDATED,{e},{ids[e]},proxy_admin_viewer,crew,,FAILED,earlier failure,{n + 2},"
                    for n, e in enumerate(PEOPLE)
                ),
                f"ADDED,{BAD},,internal_user,,,FAILED,earlier failure,8,",
            ]
        )
    write_csv(folder / "in.csv", text + "\n")
    return "in.csv"


SCRIPTS = {
    "add_user.py": ("user_reg", "create"),
    "del_user.py": ("user_del", "delete"),
    "sync_user.py": ("user_sync", "update"),
}


def _input(script: str, shape: str, folder: Path, standin: StandIn) -> str:
    if script == "add_user.py":
        return _add_input(shape, folder)
    ids = _seed(standin)
    return (_del_input if script == "del_user.py" else _sync_input)(shape, folder, ids)


def _run(script: str, shape: str, proxy: Proxy, folder: Path, *args: str) -> Outcome:
    assert proxy.standin is not None
    name = _input(script, shape, folder, proxy.standin)
    run = run_script(script, "--csv-file", name, "--workers", "2", *args, proxy=proxy, cwd=folder)
    return Outcome(run.code, run.output, _rows(folder, SCRIPTS[script][0]))


def _accounted(outcome: Outcome) -> None:
    """Every input row in exactly one result or error row, and nothing the user should not see."""
    named = sorted(row.get("email") or row.get("user_id") or "" for row in outcome.rows)
    assert named == sorted([*PEOPLE, BAD]), outcome.output
    assert "sk-" not in outcome.output.replace("sk-***", "")
    assert "sk-standin-master-key" not in outcome.output


SHAPES = ["emails", "user_ids", "fed-back"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_bad_row_fails_alone(paths: Proxy, tmp_path: Path, script: str, shape: str) -> None:
    outcome = _run(script, shape, paths, tmp_path)

    assert outcome.code == 1
    assert "Traceback" not in outcome.output
    _accounted(outcome)
    bad = [row for row in outcome.rows if row.get("email") == BAD]
    assert bad[0]["error_reason"] == f"invalid email '{BAD}': one address, without a name or spaces"
    good = [row for row in outcome.rows if row.get("email") != BAD]
    assert not [row for row in good if row.get("error_reason")], outcome.output


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_failed_batch_fails_its_rows_and_nothing_else(paths: Proxy, tmp_path: Path, script: str, shape: str) -> None:
    assert paths.standin is not None
    paths.standin.fail(endpoint(paths, SCRIPTS[script][1]), status=500, times=100)

    outcome = _run(script, shape, paths, tmp_path)

    assert outcome.code == 1
    assert "Traceback" not in outcome.output
    _accounted(outcome)
    failed = [row for row in outcome.rows if row.get("email") != BAD]
    assert all("HTTP 500" in row["error_reason"] for row in failed), failed


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_lost_answer_is_checked_and_every_row_recorded(paths: Proxy, tmp_path: Path, script: str, shape: str) -> None:
    assert paths.standin is not None
    paths.standin.fail(endpoint(paths, SCRIPTS[script][1]), "drop_after")

    outcome = _run(script, shape, paths, tmp_path)

    assert outcome.code == 1  # the bad row; the lost answer itself was recovered
    assert "Traceback" not in outcome.output
    _accounted(outcome)
    assert not [row for row in outcome.rows if row.get("email") != BAD and row.get("error_reason")], outcome.output
    emails = paths.standin.user_emails()
    if script == "del_user.py":
        assert emails == []
    else:
        assert emails == sorted(PEOPLE)  # created (or updated) once each, never twice


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_an_interrupt_records_every_row(tmp_path: Path, script: str, shape: str) -> None:
    """Ctrl-C when the first change reaches the proxy: in-flight rows finish, the rest are 'not
    started', exit 130 (per-user path: one row a request, so there is a rest)."""
    with StandIn(release="1.80.7") as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        name = _input(script, shape, tmp_path, standin)
        path = {"add_user.py": "/user/new", "del_user.py": "/user/delete", "sync_user.py": "/user/bulk_update"}[script]
        held = Held(standin, path)
        process = spawn(script, "--csv-file", name, "--workers", "1", proxy=proxy, cwd=tmp_path)

        stderr = interrupt(process, signal.SIGINT, held)

    outcome = Outcome(process.returncode, stderr, _rows(tmp_path, SCRIPTS[script][0]))
    assert outcome.code == 130, stderr
    assert "Traceback" not in stderr
    _accounted(outcome)


BUG = """
import sys
sys.path.insert(0, {root!r})
sys.argv = [{script!r}, *sys.argv[1:]]
import {module} as main_module
from common import additions, results, script, snapshot
def broken(*args, **kwargs):
    raise ZeroDivisionError("a bug, with sk-leakedkey1234 in its message")
getattr(snapshot.Snapshot, "team_cell")  # the code under test exists
{patch}
sys.exit(script.run_main(main_module.main))
"""


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_bug_exits_70_whatever_the_input(standin: Proxy, tmp_path: Path, script: str, shape: str) -> None:
    assert standin.standin is not None
    name = _input(script, shape, tmp_path, standin.standin)
    code = BUG.format(
        root=str(ROOT), script=script, module=script.removesuffix(".py"), patch="results.Report.done = broken"
    )

    done = subprocess.run(
        [sys.executable, "-c", code, "--csv-file", name],
        cwd=tmp_path,
        env=clean_env(LITELLM_BASE_URL=standin.url, LITELLM_MASTER_KEY=standin.master_key),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == 70, done.stderr
    assert "\nINTERNAL ERROR (exit 70): a bug in these tools stopped the run. Partial results: " in done.stderr
    assert "ZeroDivisionError: a bug" in done.stderr
    assert standin.master_key not in done.stderr


@pytest.mark.parametrize("columns", ["email", "user_id,email", "user_id"])
def test_a_failed_delete_records_every_row_whatever_the_columns(paths: Proxy, tmp_path: Path, columns: str) -> None:
    standin = paths.standin
    assert standin is not None
    users = {f"d{n}@example.com": standin.seed_user(f"d{n}@example.com", keys=1) for n in range(3)}
    export = run_script(
        "list_user.py", "--format", "csv", "--columns", columns, "--output", "ids.csv", proxy=paths, cwd=tmp_path
    )
    assert export.code == 0, export.output
    standin.fail(endpoint(paths, "delete"), status=500, times=10)

    run = run_script("del_user.py", "--csv-file", "ids.csv", proxy=paths, cwd=tmp_path)

    assert run.code == 1, run.output
    no_traceback(run.output)
    errors = run.rows("user_del_error.csv")
    assert sorted(row["user_id"] for row in errors) == sorted(users.values())
    assert all(row["error_reason"] == "HTTP 500: Service unavailable" for row in errors)
    assert run.rows("user_del_result.csv") == []
    assert standin.user_emails() == sorted(users)


def test_a_row_that_fails_does_not_create_its_new_team(paths: Proxy, tmp_path: Path) -> None:
    write_csv(
        tmp_path / "user_addlist.csv",
        "email,team_name,key_name\nok@example.com,shared,k1\nbad@example.com,lonely,k1\nworse@example.com,alone,\n"
        "worse@example.com,other,\n",
    )

    dry = run_script("add_user.py", "--create-teams", "--dry-run", proxy=paths, cwd=tmp_path)
    run = run_script("add_user.py", "--create-teams", proxy=paths, cwd=tmp_path)

    assert [line for line in dry.stdout.splitlines() if line.startswith("  + team")] == [
        "  + team shared",
        "  + team alone",
    ]
    assert run.code == 1
    assert paths.standin is not None
    assert sorted(t["team_alias"] for t in paths.standin.teams.values() if not t["team_id"].startswith("litellm")) == [
        "alone",
        "shared",
    ]


@pytest.mark.parametrize(
    ("patch", "partial"),
    [
        ("snapshot.Snapshot.load = broken", False),  # before any change
        ("additions._result = broken", True),  # mid-run, after result files were opened
    ],
)
def test_a_bug_exits_70_and_says_where_the_partial_results_are(
    standin: Proxy, tmp_path: Path, patch: str, partial: bool
) -> None:
    write_csv(tmp_path / "user_addlist.csv", "email\nbug@example.com\n")
    done = subprocess.run(
        [sys.executable, "-c", BUG.format(root=str(ROOT), script="add_user.py", module="add_user", patch=patch)],
        cwd=tmp_path,
        env=clean_env(LITELLM_BASE_URL=standin.url, LITELLM_MASTER_KEY=standin.master_key),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == 70, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("INTERNAL ERROR (exit 70): a bug in these tools stopped the run.")
    assert ("Partial results: user_reg_result.csv" in first) == partial
    assert "Traceback" in done.stderr
    assert "ZeroDivisionError" in done.stderr
    assert "sk-leakedkey1234" not in done.stderr
    assert standin.master_key not in done.stderr + done.stdout


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


def test_a_roster_left_behind_on_1_65_fails_only_its_own_user(tmp_path: Path) -> None:
    """1.65 keeps a deleted user on its teams' rosters, which the tools then clear: when that fails
    for one user, the others of the batch are reported deleted, and so is that one, with what
    was left undone (never "User not found" when its row is fed back)."""
    with StandIn(release="1.65.8") as proxy:
        standin = Proxy("standin-1.65.8", proxy.url, proxy.master_key, proxy)
        team = proxy.seed_team("eng")
        for name in ("a", "b", "c"):
            proxy.seed_user(f"{name}@example.com", teams=(team,))
        cleanup = proxy.fail("/team/member_delete", status=500, skip=1, times=1)  # b's clean-up fails
        write_csv(tmp_path / "user_dellist.csv", "email\na@example.com\nb@example.com\nc@example.com\n")

        run = run_script("del_user.py", proxy=standin, cwd=tmp_path)

        assert cleanup.seen >= 2
        assert run.code == 1, run.output
        rows = {row["email"]: row for row in run.rows("user_del_result.csv")}
        assert {email: row["status"] for email, row in rows.items()} == dict.fromkeys(
            ["a@example.com", "b@example.com", "c@example.com"], "Deleted"
        )
        assert rows["b@example.com"]["error_reason"].startswith(f"still on the roster of team {team} (HTTP 500")
        assert [rows[e]["error_reason"] for e in ("a@example.com", "c@example.com")] == ["", ""]
        assert run.rows("user_del_error.csv") == []
        assert proxy.user_emails() == []
        assert "Deleted 3 users with 0 API keys, failed 1; " in run.stdout
