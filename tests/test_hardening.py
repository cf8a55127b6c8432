"""The failure paths of issue 13, each as a user meets it, on the stand-in: the per-user path of
releases before 1.108 and the bulk path of 1.108 and later where a script has both."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from common.runner import Progress
from tests.conftest import ROOT, Proxy, clean_env, endpoint, run_script, write_csv
from tests.standin import StandIn

SCRIPTS = ("add_user.py", "del_user.py", "list_user.py", "sync_user.py")


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# -- 1. a failed delete, whatever the file's columns -------------------------------------------


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
    _no_traceback(run.output)
    errors = run.rows("user_del_error.csv")
    assert sorted(row["user_id"] for row in errors) == sorted(users.values())
    assert all(row["error_reason"] == "HTTP 500: Service unavailable" for row in errors)
    assert run.rows("user_del_result.csv") == []
    assert standin.user_emails() == sorted(users)


# -- 2. a URL that answers with a web page -------------------------------------------------------


class _Page(BaseHTTPRequestHandler):
    """A login page, a UI or a reverse proxy's landing page: 200 to everything."""

    body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"
    content_type = "text/html; charset=utf-8"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


class _JsonPage(_Page):
    body = b'{"status": "ok", "service": "gateway"}'
    content_type = "application/json"


@pytest.mark.parametrize("page", [_Page, _JsonPage], ids=["html", "json"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_url_that_is_not_the_api_stops_before_any_change(tmp_path: Path, script: str, page: type) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ui"
    write_csv(tmp_path / "users.csv", "email,role\na@example.com,internal_user\n")
    try:
        run = run_script(
            script,
            *(["--csv-file", "users.csv"] if script != "list_user.py" else []),
            proxy=Proxy("page", url, "sk-secret-master"),
            cwd=tmp_path,
        )
    finally:
        server.shutdown()

    assert run.code == 3, run.output
    _no_traceback(run.output)
    assert f"the answer from {url}/" in run.stderr
    assert "is not the LiteLLM API (HTTP 200" in run.stderr
    assert "Nothing was changed" in run.stderr
    assert "sk-secret-master" not in run.output
    assert not list(tmp_path.glob("*_result.csv"))


# -- 5. sync's summary counts what happened ------------------------------------------------------


def test_the_sync_summary_counts_the_outcome_not_the_plan(tmp_path: Path) -> None:
    with StandIn(release="1.80.7") as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        standin.fail("/user/new", status=500, skip=1, times=2)
        write_csv(
            tmp_path / "user_list.csv", "email,role\n" + "".join(f"n{n}@example.com,internal_user\n" for n in range(4))
        )

        run = run_script("sync_user.py", "--workers", "1", proxy=proxy, cwd=tmp_path)

    assert run.code == 1
    assert "Sync done: added 2, updated 0, deleted 0, unchanged 0; failed 2;" in run.stdout
    assert sorted(row["status"] for row in run.rows("user_sync_result.csv")) == [
        "FAILED",
        "FAILED",
        "SUCCESS",
        "SUCCESS",
    ]


# -- 6. a file whose first line is blank ---------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_the_delimiter_is_read_from_the_header_line_after_blank_lines(
    standin: Proxy, tmp_path: Path, delimiter: str
) -> None:
    header = delimiter.join(["email", "role"])
    write_csv(tmp_path / "users.csv", f"\n\n{header}\na@example.com{delimiter}internal_user_viewer\n")

    run = run_script("add_user.py", "--csv-file", "users.csv", "--no-key", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert standin.standin
    assert standin.standin.user_by_email("a@example.com")[0]["user_role"] == "internal_user_viewer"


# -- 7. --max-delete -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf%", "nan%", "-1", "150%", "-5%", "ten", "1e3"])
def test_a_bad_max_delete_stops_before_the_first_request(standin: Proxy, tmp_path: Path, value: str) -> None:
    write_csv(tmp_path / "user_list.csv", "email\na@example.com\n")

    run = run_script("sync_user.py", f"--max-delete={value}", proxy=standin, cwd=tmp_path)

    assert run.code == 2, run.output
    _no_traceback(run.output)
    assert f"argument --max-delete: '{value}' is not a count of users" in run.stderr
    assert standin.standin
    assert standin.standin.count() == 0


# -- 8. a failing row never creates its team -----------------------------------------------------


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


# -- 9. one slow answer does not stop a run; a dead proxy does ------------------------------------


def test_one_slow_answer_does_not_end_the_run(tmp_path: Path) -> None:
    with StandIn(release="1.80.7") as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        standin.fail("/user/new", "delay_after", skip=3, seconds=2)
        write_csv(tmp_path / "user_addlist.csv", "email\n" + "".join(f"s{n}@example.com\n" for n in range(12)))

        run = run_script("add_user.py", "--timeout", "1", "--workers", "4", proxy=proxy, cwd=tmp_path)

        assert run.code == 0, run.output
        assert len(run.rows("user_reg_result.csv")) == 12
        assert standin.user_emails() == sorted(f"s{n}@example.com" for n in range(12))


def test_a_proxy_that_dies_stops_the_run_after_a_few_unanswered_requests(tmp_path: Path) -> None:
    with StandIn(release="1.80.7", latency=0.02) as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        standin.fail("/user/new", "call", skip=8, call=lambda: threading.Thread(target=standin.crash).start())
        write_csv(tmp_path / "user_addlist.csv", "email\n" + "".join(f"x{n:03d}@example.com\n" for n in range(200)))

        started = time.monotonic()
        run = run_script("add_user.py", "--workers", "4", proxy=proxy, cwd=tmp_path)

    assert run.code == 1
    assert time.monotonic() - started < 90
    errors = run.rows("user_reg_error.csv")
    assert len(run.rows("user_reg_result.csv")) + len(errors) == 200
    assert sum(row["error_reason"].startswith("not started: the proxy stopped answering") for row in errors) > 150


# -- 10. a bug in the tools exits 70 ---------------------------------------------------------------


BUG = """
import sys
sys.argv = ["add_user.py", *sys.argv[1:]]
sys.path.insert(0, {root!r})
import add_user
from common import additions, script, snapshot
def broken(*args, **kwargs):
    raise ZeroDivisionError("a bug, with sk-leakedkey1234 in its message")
getattr(snapshot.Snapshot, "team_cell")  # the code under test exists
{patch}
sys.exit(script.run_main(add_user.main))
"""


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
        [sys.executable, "-c", BUG.format(root=str(ROOT), patch=patch)],
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


# -- 11. an output folder that cannot be written --------------------------------------------------


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_an_unwritable_output_dir_stops_before_any_request(standin: Proxy, tmp_path: Path, script: str) -> None:
    write_csv(tmp_path / "users.csv", "email,role\na@example.com,internal_user\n")
    (tmp_path / "a-file").write_text("not a folder")

    run = run_script(script, "--csv-file", "users.csv", "--output-dir", "a-file/results", proxy=standin, cwd=tmp_path)

    assert run.code == 2, run.output
    _no_traceback(run.output)
    assert "argument --output-dir: cannot write result files to 'a-file/results'" in run.stderr
    assert standin.standin
    assert standin.standin.count() == 0


# -- progress ---------------------------------------------------------------------------------------


def test_progress_shows_the_rate_and_the_time_left(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(5000, "users created", quiet=False)
    progress._started -= 100  # 100 s ago
    progress._shown -= 100
    progress.advance(1200)

    line = capsys.readouterr().err.strip()
    assert line == "[1200/5000] users created, 12/s, about 5 min left"


def test_a_long_run_prints_its_progress_on_stderr_only(tmp_path: Path) -> None:
    with StandIn(release="1.80.7", latency=0.05) as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        write_csv(tmp_path / "user_addlist.csv", "email\n" + "".join(f"p{n:03d}@example.com\n" for n in range(120)))

        run = run_script("add_user.py", "--workers", "2", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert re.search(r"^\[\d+/120\] users created, \d+/s, about \d+ (s|min) left$", run.stderr, re.M), run.stderr
    assert "[" not in run.stdout
