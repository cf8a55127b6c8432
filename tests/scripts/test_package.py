"""The project installs as commands (pyproject.toml): pip install in a fresh venv gives litellm-add-user,
litellm-del-user, litellm-list-user and litellm-sync-user, the four scripts' programs, and they run outside a clone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from common import __version__
from tests.conftest import ROOT, Proxy, clean_env, write_csv

MODULES = ("add_user", "del_user", "list_user", "sync_user", "litellm_client")
# pip builds in the source tree, leaving build/ and *.egg-info behind (and a stale build/lib can put a module deleted
# since into the next wheel): the test installs a copy of the clone, without its venv, caches and .env
NOT_COPIED = shutil.ignore_patterns(".*", "__pycache__", "build", "dist", "*.egg-info")
PROBE = """
import importlib.metadata, json
installed = importlib.metadata.distribution("litellm-user-tools")
meta = installed.metadata
print(json.dumps({"top": sorted({f.parts[0] for f in installed.files or []}), "requires": installed.requires,
                  "about": [meta["Name"], meta["Version"], meta.get("License-Expression"), meta["Requires-Python"]]}))
"""


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _build_isolation(python: Path, cwd: Path) -> list[str]:
    """--no-build-isolation where the venv's own setuptools can build the project: nothing to download."""
    needed = re.search(r'"setuptools>=(\d+)', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert needed, "pyproject.toml names no setuptools>=N in [build-system]"
    have = _run(python, "-c", "import setuptools; print(setuptools.__version__)", cwd=cwd)
    major = int(have.stdout.split(".")[0]) if have.returncode == 0 else 0
    return ["--no-build-isolation"] if major >= int(needed.group(1)) else []


def test_pip_install_gives_the_four_commands(standin: Proxy, tmp_path: Path) -> None:
    source, venv, work = tmp_path / "source", tmp_path / "venv", tmp_path / "work"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    work.mkdir()
    assert _run(sys.executable, "-m", "venv", venv, cwd=work).returncode == 0
    python = venv / "bin" / "python"
    flags = _build_isolation(python, work)
    installed = _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *flags, source, cwd=work)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    probe = json.loads(_run(python, "-c", PROBE, cwd=work).stdout)
    assert {"common", *(f"{module}.py" for module in MODULES)} <= set(probe["top"])
    assert not {"tests", "docs"} & set(probe["top"])
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8").split()
    assert probe["requires"] == requirements, "pyproject.toml's dependencies differ from requirements.txt"
    assert probe["about"] == ["litellm-user-tools", __version__, "MIT", ">=3.10"]

    assert standin.standin is not None
    team = standin.standin.seed_team("engineering")
    for name in ("ann", "bob"):
        standin.standin.seed_user(f"{name}@example.com", teams=(team,), keys=1)
    write_csv(work / "new.csv", "email,role,team_name\ncarl@example.com,internal_user,engineering\n")
    write_csv(work / "leaving.csv", "email\nbob@example.com\n")
    write_csv(work / "all.csv", "email,team_name\nann@example.com,engineering\ncarl@example.com,engineering\n")
    env = clean_env(LITELLM_BASE_URL=standin.url, LITELLM_MASTER_KEY=standin.master_key)
    env.pop("PYTHONPATH", None)
    runs = {
        "add": (("--csv-file", "new.csv", "--dry-run"), "  + carl@example.com (Role: internal_user"),
        "list": ((), "ann@example.com"),
        "del": (("--csv-file", "leaving.csv", "--dry-run"), "Users to delete: 1"),
        "sync": (("--csv-file", "all.csv", "--dry-run", "--remove", "block"), "  - bob@example.com (block: 1 key)"),
    }
    for short, (args, line) in runs.items():
        command = venv / "bin" / f"litellm-{short}-user"
        helped = _run(command, "--help", cwd=work, env=env)
        assert helped.returncode == 0, helped.stderr
        assert helped.stdout.startswith(f"usage: litellm-{short}-user ")
        version = _run(command, "--version", cwd=work, env=env)
        from_clone = _run(sys.executable, str(ROOT / f"{short}_user.py"), "--version", cwd=work, env=env)
        assert version.stdout.strip() == f"litellm-{short}-user {__version__}"
        assert from_clone.stdout.strip() == f"{short}_user.py {__version__}"  # the same program, as a file

        done = _run(command, *args, cwd=work, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert line in done.stdout
    assert standin.standin.user_emails() == ["ann@example.com", "bob@example.com"]
