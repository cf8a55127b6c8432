"""The recipes in docs/examples work as shipped: the cron scripts run for real against the stand-in (with a
mail(1) that records what it is given); the systemd units pass systemd-analyze verify where it is installed and
say what they must; the Kubernetes CronJob is checked key by key; the manual's "From cron" section shows the cron
files exactly as they are; and the cron scripts, the systemd units and the CronJob give the tools the same flags."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from litellm_client import User
from tests.conftest import ROOT, Proxy, clean_env, csv_rows
from tests.support.standin import StandIn

EXAMPLES = ROOT / "docs" / "examples"
CRON, SYSTEMD, KUBERNETES = EXAMPLES / "cron", EXAMPLES / "systemd", EXAMPLES / "kubernetes"
MANUAL = ROOT / "docs" / "sync_user_manual.md"
INSTALLED = "/opt/litellm-user-tools/bin/litellm-sync-user"  # where the systemd units expect the command
MAIL = '''#!{python}
"""mail(1) for the tests: each mail (mail -s SUBJECT ADDRESS < BODY) as a line of JSON in the mailbox."""
import json
import sys

mail = {{"subject": sys.argv[sys.argv.index("-s") + 1], "to": sys.argv[-1], "body": sys.stdin.read()}}
with open({mailbox!r}, "a", encoding="utf-8") as mailbox:
    mailbox.write(json.dumps(mail) + "\\n")
'''
STAFF = {  # the proxy before the first night: email -> role, team
    "alice@example.com": ("proxy_admin", "engineering"),
    "carol@example.com": ("proxy_admin_viewer", "research"),
    "dave@example.com": ("internal_user", "support"),
    "erin@example.com": ("internal_user", "research"),
    "gus@example.com": ("internal_user", "support"),
    "hal@example.com": ("internal_user", "support"),
    "ida@example.com": ("internal_user", "engineering"),
    "jon@example.com": ("internal_user", "engineering"),
}
# the source of truth: dave has left (the nightly sync blocks him), frank has joined
LISTED = {email: row for email, row in STAFF.items() if email != "dave@example.com"} | {
    "frank@example.com": ("internal_user", "support")
}


@dataclass
class Host:
    """The machine cron runs the scripts on: a working directory holding the tools (as a clone does), the two cron
    scripts and user_list.csv; `python` and a recording `mail` first on PATH; the proxy in the environment."""

    work: Path
    env: dict[str, str]
    mailbox: Path
    proxy: Proxy

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run a cron script as its cron line does: ./script in the working directory."""
        return subprocess.run(
            [f"./{script}"], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=300, check=False
        )

    def mails(self) -> list[dict[str, str]]:
        """The mails sent since the last look."""
        if not self.mailbox.exists():
            return []
        sent = [json.loads(line) for line in self.mailbox.read_text(encoding="utf-8").splitlines()]
        self.mailbox.unlink()
        return sent

    def user(self, email: str) -> User:
        with self.proxy.client() as client:
            (user,) = [u for u in client.users(email_contains=email) if u.email == email]
            return user

    def change(self, email: str, fields: dict[str, Any]) -> None:
        """Someone changes a user on the proxy (in the admin UI, say)."""
        with self.proxy.client() as client:
            client.update_user(self.user(email).user_id, fields)

    def write_list(self, users: dict[str, tuple[str, str]]) -> None:
        lines = [f"{email},{role},{team}\n" for email, (role, team) in users.items()]
        (self.work / "user_list.csv").write_text("email,role,team_name\n" + "".join(lines), encoding="utf-8")


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    work, bin_dir = tmp_path / "work", tmp_path / "bin"
    shutil.copytree(ROOT / "common", work / "common", ignore=shutil.ignore_patterns("__pycache__"))
    for script in [*ROOT.glob("*.py"), *CRON.glob("*.sh")]:
        shutil.copy(script, work)  # with its mode: cron runs ./sync-users.sh
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    mailbox = tmp_path / "mailbox.jsonl"
    (bin_dir / "mail").write_text(MAIL.format(python=sys.executable, mailbox=str(mailbox)), encoding="utf-8")
    (bin_dir / "mail").chmod(0o755)
    with StandIn() as standin:
        teams = {alias: standin.seed_team(alias) for alias in ("engineering", "research", "support")}
        for email, (role, team) in STAFF.items():
            standin.seed_user(email, role, teams=(teams[team],), keys=1)
        env = clean_env(
            LITELLM_BASE_URL=standin.url,
            LITELLM_MASTER_KEY=standin.master_key,
            PATH=f"{bin_dir}:{os.environ['PATH']}",
        )
        machine = Host(work, env, mailbox, Proxy("standin", standin.url, standin.master_key, standin))
        machine.write_list(LISTED)
        yield machine


def _results(host: Host) -> dict[str, str]:
    """email -> action, from the nightly sync's latest result file."""
    return {row["email"]: row["action"] for row in csv_rows(host.work / "results" / "user_sync_result.csv")}


def test_the_nightly_sync_applies_the_file_and_the_drift_check_mails_a_change_made_on_the_proxy(host: Host) -> None:
    synced = host.run("sync-users.sh")

    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert host.mails() == []
    assert "Synchronization Plan:" in (host.work / "plan.txt").read_text(encoding="utf-8")
    actions = _results(host)
    assert (actions["frank@example.com"], actions["dave@example.com"]) == ("ADDED", "BLOCKED")
    assert host.user("dave@example.com").metadata["offboarded_at"]

    checked = host.run("check-drift.sh")
    assert checked.returncode == 0, (host.work / "drift.txt").read_text(encoding="utf-8")
    assert host.mails() == []

    host.change("carol@example.com", {"user_role": "internal_user"})
    drifted = host.run("check-drift.sh")

    assert drifted.returncode == 5
    (mail,) = host.mails()
    assert mail["subject"] == "LiteLLM: the proxy differs from user_list.csv"
    assert "~ carol@example.com (Role: internal_user -> proxy_admin_viewer)" in mail["body"]
    assert mail["body"].count("@example.com") == 1  # carol alone: dave, blocked, is no drift

    assert host.run("sync-users.sh").returncode == 0  # the next night puts carol's role back
    assert _results(host)["carol@example.com"] == "UPDATED"
    assert host.run("check-drift.sh").returncode == 0
    assert host.mails() == []


def test_users_blocked_by_the_nightly_sync_are_no_drift_even_when_their_purge_is_due(host: Host) -> None:
    assert host.run("sync-users.sh").returncode == 0
    assert host.run("check-drift.sh").returncode == 0
    dave = host.user("dave@example.com")
    host.change("dave@example.com", {"metadata": {**dave.metadata, "offboarded_at": "2020-01-01T00:00:00Z"}})

    checked = host.run("check-drift.sh")  # dave's 30 days are up: purging him is the nightly sync's work, not drift

    assert checked.returncode == 0, (host.work / "drift.txt").read_text(encoding="utf-8")
    assert host.mails() == []
    assert host.run("sync-users.sh").returncode == 0
    assert _results(host)["dave@example.com"] == "DELETED"
    assert host.proxy.standin is not None
    assert host.proxy.standin.user_by_email("dave@example.com") == []
    assert host.run("check-drift.sh").returncode == 0
    assert host.mails() == []


def test_the_nightly_sync_mails_the_plan_and_changes_nothing_when_it_would_remove_too_many(host: Host) -> None:
    host.write_list({"alice@example.com": STAFF["alice@example.com"]})  # a broken export: seven users missing

    stopped = host.run("sync-users.sh")

    assert stopped.returncode == 4
    (mail,) = host.mails()
    assert mail["subject"] == "LiteLLM sync: too many removals; not applied"
    assert "STOPPED: the plan deletes or blocks 7 users" in mail["body"]
    assert host.proxy.standin is not None
    assert host.proxy.standin.writes() == 0
    assert not (host.work / "results").exists()


# -- the files, as the manual shows them ---------------------------------------------------------------------------


def _from_cron() -> str:
    text = MANUAL.read_text(encoding="utf-8")
    start = text.index("\n## From cron\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_manual_shows_the_cron_files_as_they_are() -> None:
    section = _from_cron()
    blocks = re.findall(r"^```(sh|text)\n(.*?)^```", section, re.M | re.S)
    files = [CRON / "litellm-users", CRON / "sync-users.sh", CRON / "check-drift.sh"]

    # the shell blocks are scripts, run by the tests above: tests/scripts/test_docs.py must not run them line by line
    assert all(block.startswith("# docs-test: skip") for kind, block in blocks if kind == "sh")
    shown = [re.sub(r"\A# docs-test: skip.*\n", "", block) for _, block in blocks]
    assert shown == [path.read_text(encoding="utf-8") for path in files]
    assert all(f"(examples/cron/{path.name})" in section for path in files)


def test_the_cron_file_runs_both_scripts_from_the_working_directory() -> None:
    lines = (CRON / "litellm-users").read_text(encoding="utf-8")
    assert lines.endswith("\n")  # cron ignores a last line without one
    entries = [line.split(maxsplit=6) for line in lines.splitlines() if line and not re.match(r"#|\w+=", line)]

    assert [entry[5] for entry in entries] == ["litellm", "litellm"]
    assert [entry[6].split(" && ")[1].split()[0] for entry in entries] == ["./sync-users.sh", "./check-drift.sh"]
    for script in ("sync-users.sh", "check-drift.sh"):
        assert (CRON / script).stat().st_mode & stat.S_IXUSR, f"{script} is not executable: cron runs ./{script}"


# -- the same flags everywhere -------------------------------------------------------------------------------------


def _cron_flags(script: str) -> list[list[str]]:
    """The flags of each sync_user.py run in a cron script."""
    runs = re.findall(r"^python sync_user\.py (.*?)(?: >.*)?$", (CRON / script).read_text(encoding="utf-8"), re.M)
    return [shlex.split(flags) for flags in runs]


def nightly_flags() -> list[str]:
    """The flags the nightly sync applies the file with, as sync-users.sh gives them."""
    dry_run, applying = _cron_flags("sync-users.sh")
    output = ["--output-dir", "results"]
    assert dry_run == [flag for flag in applying if flag not in output] + ["--dry-run"]  # it plans what the run applies
    return applying


def drift_flags() -> list[str]:
    (flags,) = _cron_flags("check-drift.sh")
    return flags


def test_the_drift_check_removes_as_the_nightly_sync_does() -> None:
    """--remove block, as the nightly sync: without it, every user the sync blocked is drift. No --purge-after: a
    purge falling due is no drift (test_users_blocked_by_the_nightly_sync_are_no_drift_even_when_their_purge_is_due)."""
    assert nightly_flags()[:2] == ["--remove", "block"]
    assert drift_flags() == ["--check", "--remove", "block", "--quiet"]


# -- systemd -------------------------------------------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd's keys are case-sensitive
    unit.read_string((SYSTEMD / name).read_text(encoding="utf-8"), source=name)
    return unit


@pytest.mark.parametrize(("name", "flags"), [("litellm-sync", nightly_flags), ("litellm-drift", drift_flags)])
def test_the_systemd_units_run_the_command_as_cron_runs_the_script(name: str, flags: Callable[[], list[str]]) -> None:
    service, timer = _unit(f"{name}.service"), _unit(f"{name}.timer")

    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["WorkingDirectory"].startswith("/")
    assert service["Service"]["EnvironmentFile"].startswith("/")  # the master key, out of the command line
    assert shlex.split(service["Service"]["ExecStart"]) == [INSTALLED, *flags()]
    assert timer["Timer"]["OnCalendar"]
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_nightly_timer_catches_up_a_night_the_machine_was_off() -> None:
    assert _unit("litellm-sync.timer")["Timer"]["Persistent"] == "true"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """verify checks that ExecStart's program exists: the units are verified with a stand-in program there."""
    program = tmp_path / "bin" / "litellm-sync-user"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)
    for unit in SYSTEMD.iterdir():
        text = unit.read_text(encoding="utf-8")
        assert unit.suffix == ".timer" or INSTALLED in text
        (tmp_path / unit.name).write_text(text.replace(INSTALLED, str(program)), encoding="utf-8")
    units = sorted(tmp_path.glob("litellm-*"))

    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, timeout=120, check=False
    )

    said = [line for line in (done.stdout + done.stderr).splitlines() if any(u.name in line for u in units)]
    assert done.returncode == 0, done.stdout + done.stderr
    assert said == []  # unknown keys are only warnings


# -- Kubernetes ----------------------------------------------------------------------------------------------------


def test_the_kubernetes_cronjob_runs_the_nightly_sync_with_the_key_from_a_secret() -> None:
    documents = list(yaml.safe_load_all((KUBERNETES / "cronjob.yaml").read_text(encoding="utf-8")))
    (job,) = [d for d in documents if d["kind"] == "CronJob"]
    claims = [d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim"]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounted = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}

    assert job["apiVersion"] == "batch/v1"
    assert len(job["spec"]["schedule"].split()) == 5
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert set(env["LITELLM_MASTER_KEY"]) == {"name", "valueFrom"}
    assert set(env["LITELLM_MASTER_KEY"]["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    assert volumes[mounted[container["workingDir"]]]["persistentVolumeClaim"]["claimName"] in claims
    assert container["command"] == ["litellm-sync-user", *nightly_flags()]
