"""The run report (--report FILE, issue 26): each script writes it for each exit code it can end
with, as the README documents it, and never with a key in it."""

from __future__ import annotations

import getpass
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common import __version__
from common.lease import LEASE_ALIAS, LEASE_PREFIX
from tests.conftest import ROOT, Held, Proxy, clean_env, interrupt, run_script, spawn, write_csv

KEYS = {"script", "version", "exit_code", "dry_run", "started_at", "finished_at", "seconds", "proxy", "counts", "files"}
INPUTS = {
    "add_user.py": ("user_addlist.csv", "email,role\nnew@example.com,internal_user\n"),
    "del_user.py": ("user_dellist.csv", "email\nold@example.com\n"),
    "sync_user.py": ("user_list.csv", "email,role\nold@example.com,internal_user\nnew@example.com,internal_user\n"),
    "list_user.py": ("", ""),
}
WORDS = {
    "add_user.py": {"created", "skipped", "failed"},
    "del_user.py": {"deleted", "blocked", "kept", "failed"},
    "sync_user.py": {"added", "updated", "deleted", "unchanged", "failed"},
    "list_user.py": {"listed", "hidden"},
}


def _prepare(standin: Proxy, tmp_path: Path, script: str) -> None:
    assert standin.standin is not None
    standin.standin.seed_user("old@example.com", keys=1)
    name, text = INPUTS[script]
    if name:
        write_csv(tmp_path / name, text)


def _report(path: Path, code: int, script: str) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    assert "sk-" not in text  # neither an issued key nor the master key
    report = json.loads(text)
    assert set(report) >= KEYS, report
    assert (report["script"], report["version"], report["exit_code"]) == (script, __version__, code)
    assert report["finished_at"] >= report["started_at"]
    assert isinstance(report["seconds"], float)
    assert all(Path(file).is_absolute() and Path(file).exists() for file in report["files"])
    return report


@pytest.mark.parametrize("script", list(INPUTS))
def test_a_run_that_applies_its_file_reports_what_it_did(standin: Proxy, tmp_path: Path, script: str) -> None:
    _prepare(standin, tmp_path, script)

    run = run_script(script, "--report", "run.json", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    report = _report(tmp_path / "run.json", 0, script)
    assert report["dry_run"] is False
    assert report["proxy"] == {"url": standin.url, "release": "1.108.7" if script != "list_user.py" else None}
    assert WORDS[script] <= set(report["counts"])
    assert report["counts"]["failed" if script != "list_user.py" else "hidden"] == 0
    assert "error" not in report
    expected = {
        "add_user.py": {"created": 1},
        "del_user.py": {"deleted": 1, "keys_deleted": 1},
        "sync_user.py": {"added": 1, "unchanged": 1},
        "list_user.py": {"listed": 1},
    }[script]
    assert {word: report["counts"][word] for word in expected} == expected


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_a_dry_run_reports_what_the_plan_would_do(standin: Proxy, tmp_path: Path, script: str) -> None:
    _prepare(standin, tmp_path, script)

    run = run_script(script, "--dry-run", "--report", "run.json", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    report = _report(tmp_path / "run.json", 0, script)
    assert report["dry_run"] is True
    assert {"add_user.py": "created", "del_user.py": "deleted", "sync_user.py": "added"}[script] in report["counts"]
    assert report["files"] == []


def test_check_reports_drift_with_exit_5_and_the_plans_counts(standin: Proxy, tmp_path: Path) -> None:
    _prepare(standin, tmp_path, "sync_user.py")

    run = run_script("sync_user.py", "--check", "--report", "run.json", proxy=standin, cwd=tmp_path)

    assert run.code == 5, run.output
    report = _report(tmp_path / "run.json", 5, "sync_user.py")
    assert report["dry_run"] is True
    assert (report["counts"]["added"], report["counts"]["unchanged"]) == (1, 1)


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_a_bad_row_reports_exit_1_and_its_failure(standin: Proxy, tmp_path: Path, script: str) -> None:
    _prepare(standin, tmp_path, script)
    name, text = INPUTS[script]
    write_csv(tmp_path / name, text + "not an email,internal_user\n")

    run = run_script(script, "--report", "run.json", proxy=standin, cwd=tmp_path)

    assert run.code == 1, run.output
    assert _report(tmp_path / "run.json", 1, script)["counts"]["failed"] == 1


@pytest.mark.parametrize("script", list(INPUTS))
def test_usage_errors_report_exit_2_with_the_error(standin: Proxy, tmp_path: Path, script: str) -> None:
    bad_option = run_script(script, "--workers", "0", "--report", "bad.json", proxy=standin, cwd=tmp_path)
    no_key = run_script(script, "--report", "nokey.json", proxy=None, cwd=tmp_path)

    assert (bad_option.code, no_key.code) == (2, 2)
    assert "--workers: must be 1 or more" in _report(tmp_path / "bad.json", 2, script)["error"]
    assert (
        _report(tmp_path / "nokey.json", 2, script)["error"]
        == "ERROR: --master-key or env LITELLM_MASTER_KEY is required."
    )


@pytest.mark.parametrize("script", list(INPUTS))
def test_an_unreachable_proxy_reports_exit_3_without_the_credentials_of_its_url(tmp_path: Path, script: str) -> None:
    _, text = INPUTS[script]
    if text:
        write_csv(tmp_path / INPUTS[script][0], text)
    env = {"LITELLM_BASE_URL": "http://admin:secret@127.0.0.1:9", "LITELLM_MASTER_KEY": "sk-master-of-a-closed-port"}

    run = run_script(script, "--report", "run.json", proxy=None, cwd=tmp_path, env=env)

    assert run.code == 3, run.output
    report = _report(tmp_path / "run.json", 3, script)
    assert report["proxy"]["url"] == "http://127.0.0.1:9"
    assert "cannot reach the proxy" in report["error"]
    assert "secret" not in (tmp_path / "run.json").read_text()
    assert "secret" not in run.output  # nor in any message: a URL's credentials are hidden like keys


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_another_runs_lease_reports_exit_4(standin: Proxy, tmp_path: Path, script: str) -> None:
    assert standin.standin is not None
    _prepare(standin, tmp_path, script)
    team = standin.standin.seed_team(LEASE_ALIAS, LEASE_PREFIX + "other")
    standin.standin.teams[team]["metadata"] = {
        "script": "sync_user.py", "owner": "cron@elsewhere", "host": "elsewhere", "pid": 1, "ttl_seconds": 300,
        "state": "holding", "renewals": 1, "renewed_at": "2999-01-01T00:00:00+00:00",
    }  # fmt: skip

    run = run_script(script, "--report", "run.json", proxy=standin, cwd=tmp_path)

    assert run.code == 4, run.output
    assert _report(tmp_path / "run.json", 4, script)["error"].startswith("ERROR: another run is applying changes")


BUG = """
import sys
sys.path.insert(0, {root!r})
sys.argv = [{script!r}, *sys.argv[1:]]
import {module} as main_module
from common import results
def broken(*args, **kwargs):
    raise ZeroDivisionError("a bug")
results.Report.done = broken
sys.exit(main_module.run())
"""


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_a_bug_reports_exit_70_as_far_as_it_can(standin: Proxy, tmp_path: Path, script: str) -> None:
    _prepare(standin, tmp_path, script)
    code = BUG.format(root=str(ROOT), script=script, module=script.removesuffix(".py"))

    done = subprocess.run(
        [sys.executable, "-c", code, "--report", "run.json"],
        cwd=tmp_path, env=clean_env(LITELLM_BASE_URL=standin.url, LITELLM_MASTER_KEY=standin.master_key),
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip

    assert done.returncode == 70, done.stderr
    report = _report(tmp_path / "run.json", 70, script)
    assert report["error"] == "internal error: ZeroDivisionError: a bug"


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_an_interrupted_run_reports_exit_130(standin: Proxy, tmp_path: Path, script: str) -> None:
    assert standin.standin is not None
    _prepare(standin, tmp_path, script)
    path = {
        "add_user.py": "/management/v1/users/bulk",
        "del_user.py": "/management/v1/users/bulk_delete",
        "sync_user.py": "/management/v1/users/bulk",
    }[script]
    held = Held(standin.standin, path)
    process = spawn(script, "--report", "run.json", proxy=standin, cwd=tmp_path)

    stderr = interrupt(process, signal.SIGINT, held)

    assert process.returncode == 130, stderr
    report = _report(tmp_path / "run.json", 130, script)
    assert report["error"] == "stopped: the run was interrupted"


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_every_write_names_the_script_the_user_and_the_host_for_the_audit_log(
    standin: Proxy, tmp_path: Path, script: str
) -> None:
    assert standin.standin is not None
    _prepare(standin, tmp_path, script)

    run = run_script(script, proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    writes = standin.standin.changed_by
    assert len(writes) >= 3  # the lease, the change, the lease given back
    assert {author for _, author in writes} == {f"{script} by {getpass.getuser()}@{socket.gethostname()}"}
