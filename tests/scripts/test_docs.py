"""Every shell example in README.md and docs/*.md runs as written, against the stand-in.

The rules, so that examples are skipped by what they say, not by a list:
- the examples are the fenced blocks marked `sh`; other blocks (`text`, ...) are not run;
- a block with a line `# docs-test: skip (why)` is not run (it installs packages, or needs cron);
- a command holding a placeholder such as `<your-proxy>` is not run;
- a command ending in `# exit N` must exit with N, the others with 0;
- `<!-- docs-test: before: COMMAND -->` in a document runs COMMAND first (the state its examples
  start from), e.g. users to delete;
- `<!-- docs-test: licensed (why) -->`: the stand-in has a LiteLLM licence (team admins).
Each document runs in a fresh directory holding the scripts and docs/examples/*, against a fresh
stand-in that has the teams engineering, research and support.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_env
from tests.support.standin import StandIn

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
BEFORE = re.compile(r"<!-- docs-test: before: (.+?) -->")
PLACEHOLDER = re.compile(r"<[a-z][a-z-]*>")
EXIT = re.compile(r"#\s*exit (\d+)\s*$")


def commands(doc: Path) -> list[str]:
    """The doc's runnable commands, continuation lines joined, in order."""
    found = []
    for block in BLOCK.findall(doc.read_text(encoding="utf-8")):
        if "# docs-test: skip" in block:
            continue
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip() and not command.lstrip().startswith("#") and not PLACEHOLDER.search(command):
                found.append(command.strip())
    return found


def test_the_docs_have_examples() -> None:
    """The rules above must leave examples to run, or the test below proves nothing."""
    runnable = {doc.name: len(commands(doc)) for doc in DOCS}
    assert all(
        runnable[name] >= 3
        for name in ("add_user_manual.md", "del_user_manual.md", "list_user_manual.md", "sync_user_manual.md")
    )
    assert runnable["README.md"] >= 2


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_examples_run_as_written(doc: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "docs" / "examples", work)
    for script in ROOT.glob("*.py"):
        shutil.copy(script, work)
    shutil.copytree(ROOT / "common", work / "common")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    with StandIn(licensed="<!-- docs-test: licensed" in doc.read_text(encoding="utf-8")) as proxy:
        for team in ("engineering", "research", "support"):
            proxy.seed_team(team)
        env = clean_env(
            LITELLM_BASE_URL=proxy.url,
            LITELLM_MASTER_KEY=proxy.master_key,
            PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        )
        setup = BEFORE.findall(doc.read_text(encoding="utf-8"))
        for command in setup + commands(doc):
            done = subprocess.run(
                ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
            )
            expected = int(EXIT.search(command).group(1)) if EXIT.search(command) else 0
            assert done.returncode == expected, f"{doc.name}: {command}\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "list_user.py", "sync_user.py"])
def test_help_lists_the_options_with_defaults_and_ends_with_examples(script: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0
    lines = done.stdout.rstrip().splitlines()
    examples = lines[lines.index("examples:") + 1 :]
    assert 2 <= len(examples) <= 3
    assert all(line.startswith(f"  python {script}") for line in examples)
    assert "(default: " in done.stdout
