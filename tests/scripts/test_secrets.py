"""Secrets: the master key appears nowhere, and an API key only in the 0600 result file, also
with --debug, whatever the script."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from tests.conftest import Proxy, Run, run_script, write_csv
from tests.support.standin import StandIn

MASTER_KEY = "plain-master-secret-9f8e7d"  # no sk- prefix: only the literal redaction can hide it


def test_a_full_debug_scenario_leaks_no_key(tmp_path: Path) -> None:
    with StandIn(master_key=MASTER_KEY) as server:
        proxy = Proxy("secrets", server.url, MASTER_KEY, server)
        server.seed_team("eng")
        write_csv(
            tmp_path / "user_addlist.csv",
            "email,role,team_name,key_name\nann@example.com,internal_user,eng,ann-key\nbob@example.com,,,\n"
            "cat@example.com,internal_user,nope,\n",
        )
        write_csv(
            tmp_path / "user_list.csv",
            "email,role,team_name\nann@example.com,proxy_admin,eng\ndan@example.com,internal_user,eng\n",
        )
        write_csv(tmp_path / "user_dellist.csv", "email\nann@example.com\nnobody@example.com\n")
        as_flag = {"LITELLM_MASTER_KEY": ""}  # the master key given with --master-key only
        runs = [
            run_script(
                "add_user.py", "--debug", "--invite", "--master-key", MASTER_KEY, proxy=proxy, cwd=tmp_path, env=as_flag
            ),
            run_script(
                "list_user.py",
                "--debug",
                "--show-all",
                "--format",
                "json",
                "--output",
                "users.json",
                proxy=proxy,
                cwd=tmp_path,
            ),
            run_script("sync_user.py", "--debug", "--dry-run", proxy=proxy, cwd=tmp_path),
            run_script("sync_user.py", "--debug", proxy=proxy, cwd=tmp_path),
            run_script("del_user.py", "--debug", proxy=proxy, cwd=tmp_path),
            run_script(
                "list_user.py", "--master-key", "sk-wrong-master-key-123", proxy=proxy, cwd=tmp_path, env=as_flag
            ),
        ]
        issued = list(server.issued)

    assert [run.code for run in runs] == [1, 0, 0, 0, 1, 3]
    assert re.search(r"POST /(user/new|management/v1/users/bulk) ", runs[0].stderr)  # the debug log says what happened
    assert "Authorization" not in runs[0].stderr
    assert len(issued) == 3  # ann and bob by add_user, dan by sync_user
    key_files = {path for path in tmp_path.iterdir() if path.name.startswith(("user_reg_result", "user_sync_result"))}
    assert key_files
    for path in key_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = {path.name: path.read_text(encoding="utf-8", errors="replace") for path in tmp_path.iterdir()}
    printed = {f"run {n} {stream}": text for n, run in enumerate(runs) for stream, text in _streams(run)}
    for key in issued:
        holders = {name for name, text in {**written, **printed}.items() if key in text}
        assert holders, "an issued key is in no result file"
        assert holders <= {path.name for path in key_files}, f"{key[:6]}... also in {holders}"
    for name, text in {**written, **printed}.items():
        assert MASTER_KEY not in text, name
        assert "sk-wrong-master-key-123" not in text, name


def _streams(run: Run) -> list[tuple[str, str]]:
    return [("stdout", run.stdout), ("stderr", run.stderr)]
