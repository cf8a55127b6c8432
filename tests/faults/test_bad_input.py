"""Input the tools cannot use stops the run with exit 2, naming the file and the line, before any
request that changes anything; odd but valid input is read as meant.
"""

from __future__ import annotations

import csv
import ctypes
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, Proxy, Run, clean_env, no_traceback, run_script, write_csv

DATA = Path(__file__).resolve().parent.parent / "data"


SCRIPTS = ("add_user.py", "del_user.py", "sync_user.py")


FORMULA_START = ("=", "+", "-", "@")


HYPERLINK = '=HYPERLINK("http://evil","x")'


PR_CAPBSET_DROP = 24  # prctl(2)


CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2  # capability(7): what lets root read any file


def _files(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def _copy(name: str, tmp_path: Path) -> str:
    """Put a corpus file in the run's working directory; the scripts are given its name."""
    shutil.copyfile(DATA / name, tmp_path / name)
    return name


def assert_refused(run: Run, standin: Proxy, files_before: set[str]) -> None:
    """Exit 2: no write request reached the proxy, and no result or error file was written."""
    assert run.code == 2, run.output
    assert standin.standin.writes() == 0
    assert _files(run.cwd) == files_before


def run_refused(script: str, csv_file: str, standin: Proxy, cwd: Path) -> Run:
    before = _files(cwd)
    run = run_script(script, "--csv-file", csv_file, proxy=standin, cwd=cwd)
    assert_refused(run, standin, before)
    return run


def users_on(standin: Proxy) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """email -> (role, team ids) of the users with an email, as the proxy lists them."""
    with standin.client() as client:
        return {user.email: (user.role, user.teams) for user in client.users() if user.email}


def written_cells(directory: Path, inputs: set[str]) -> list[str]:
    """Every cell of every CSV file a run wrote into directory (the input files left out)."""
    cells: list[str] = []
    for path in directory.glob("*.csv"):
        if path.name not in inputs:
            with path.open(newline="", encoding="utf-8") as handle:
                cells += [value for record in csv.reader(handle) for value in record]
    return cells


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("name", ["empty.csv", "blank_lines.csv"])
def test_an_empty_file_is_refused(standin: Proxy, tmp_path: Path, script: str, name: str) -> None:
    run = run_refused(script, _copy(name, tmp_path), standin, tmp_path)

    assert f"ERROR: {name} is empty: expected a header line with an 'email' column." in run.stderr


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py"])
def test_a_header_without_rows_changes_nothing(standin: Proxy, tmp_path: Path, script: str) -> None:
    standin.standin.seed_user("kept@example.com")

    run = run_script(script, "--csv-file", _copy("header_only.csv", tmp_path), proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert standin.standin.writes() == 0
    assert list(users_on(standin)) == ["kept@example.com"]


def test_sync_refuses_a_header_without_rows_rather_than_delete_everyone(standin: Proxy, tmp_path: Path) -> None:
    standin.standin.seed_user("kept@example.com")

    run = run_refused("sync_user.py", _copy("header_only.csv", tmp_path), standin, tmp_path)

    assert "lists no users: a sync would delete every managed user" in run.stderr
    assert list(users_on(standin)) == ["kept@example.com"]


@pytest.mark.parametrize(
    ("script", "wanted"),
    [("add_user.py", "'email'"), ("del_user.py", "'email' or 'user_id'"), ("sync_user.py", "'email'")],
)
def test_a_file_without_an_email_column_is_refused(standin: Proxy, tmp_path: Path, script: str, wanted: str) -> None:
    run = run_refused(script, _copy("no_email_column.csv", tmp_path), standin, tmp_path)

    assert f"no_email_column.csv line 1: no {wanted} column (found: mail, role)" in run.stderr


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("png_image.png", "line 1: not valid utf-8 (byte 0x89)"),
        ("gzip_archive.csv.gz", "line 1: not valid utf-8 (byte 0x8b)"),
        ("utf16_without_bom.csv", "line 1: contains NUL bytes"),
    ],
)
def test_binary_garbage_is_refused(standin: Proxy, tmp_path: Path, script: str, name: str, problem: str) -> None:
    run = run_refused(script, _copy(name, tmp_path), standin, tmp_path)

    assert f"ERROR: {name} {problem}" in run.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_latin1_file_is_refused_with_the_line_and_the_way_out(standin: Proxy, tmp_path: Path, script: str) -> None:
    run = run_refused(script, _copy("latin1.csv", tmp_path), standin, tmp_path)

    assert "latin1.csv line 3: not valid utf-8 (byte 0xfc)" in run.stderr
    assert "--encoding latin-1" in run.stderr


def test_a_latin1_file_is_read_with_encoding_latin1(standin: Proxy, tmp_path: Path) -> None:
    name = _copy("latin1.csv", tmp_path)

    run = run_script("add_user.py", "--csv-file", name, "--encoding", "latin-1", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert users_on(standin) == {
        "ann@example.com": ("internal_user", ()),
        "jürgen@example.com": ("internal_user", ()),
    }


@pytest.mark.parametrize("script", ["add_user.py", "sync_user.py"])
@pytest.mark.parametrize("name", ["utf16_bom_tab.csv", "utf8_bom_crlf_semicolon.csv"])
def test_excel_exports_create_users_like_plain_utf8(standin: Proxy, tmp_path: Path, script: str, name: str) -> None:
    eng = standin.standin.seed_team("eng")

    run = run_script(script, "--csv-file", _copy(name, tmp_path), proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert users_on(standin) == {
        "jürgen@exämple.de": ("internal_user", (eng,)),
        "ann@example.com": ("proxy_admin_viewer", ()),
    }


@pytest.mark.parametrize("name", ["utf16_bom_tab.csv", "utf8_bom_crlf_semicolon.csv"])
def test_excel_exports_delete_users_like_plain_utf8(standin: Proxy, tmp_path: Path, name: str) -> None:
    for email in ("jürgen@exämple.de", "ann@example.com", "kept@example.com"):
        standin.standin.seed_user(email)

    run = run_script("del_user.py", "--csv-file", _copy(name, tmp_path), proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert list(users_on(standin)) == ["kept@example.com"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_one_megabyte_field_is_refused(standin: Proxy, tmp_path: Path, script: str) -> None:
    huge = "k" * 1_000_000
    (tmp_path / "huge_field.csv").write_text(
        f"email,role,team_name,key_name\nann@example.com,internal_user,,\nbob@example.com,internal_user,,{huge}\n",
        encoding="utf-8",
    )

    run = run_refused(script, "huge_field.csv", standin, tmp_path)

    assert re.search(r"huge_field\.csv line 3: .*field.*(too large|larger than)", run.stderr), run.stderr
    assert huge not in run.output


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unclosed_quote_is_refused_at_its_line(standin: Proxy, tmp_path: Path, script: str) -> None:
    run = run_refused(script, _copy("unbalanced_quotes.csv", tmp_path), standin, tmp_path)

    assert "unbalanced_quotes.csv line 2:" in run.stderr
    assert "Check its quotes." in run.stderr


def test_a_dry_run_of_100000_rows_is_quick_and_writes_nothing(standin: Proxy, tmp_path: Path) -> None:
    (tmp_path / "user_addlist.csv").write_text(
        "email,role\n" + "".join(f"user{n}@example.com,internal_user\n" for n in range(100_000)), encoding="utf-8"
    )
    started = time.monotonic()

    run = run_script("add_user.py", "--dry-run", proxy=standin, cwd=tmp_path, timeout=120)

    assert time.monotonic() - started < 60
    assert run.code == 0, run.output
    assert "Users to create: 100000," in run.stdout
    assert standin.standin.writes() == 0


def test_emails_are_trimmed_checked_and_matched_in_any_case(standin: Proxy, tmp_path: Path) -> None:
    standin.standin.seed_user("bob@example.com")

    run = run_script("add_user.py", "--csv-file", _copy("odd_emails.csv", tmp_path), proxy=standin, cwd=tmp_path)

    assert run.code == 1, run.output
    errors = {row["line"]: row["error_reason"] for row in run.rows("user_reg_error.csv")}
    assert errors == {
        "4": "invalid email 'a b@example.com': one address, without a name or spaces",
        "6": "User already exists in the system",
    }
    assert {row["email"] for row in run.rows("user_reg_result.csv")} == {
        "spaced@example.com",
        "quoted@example.com",
        "jürgen@exämple.de",
    }
    assert set(users_on(standin)) == {
        "bob@example.com",
        "spaced@example.com",
        "quoted@example.com",
        "jürgen@exämple.de",
    }


@pytest.mark.parametrize("script", ["add_user.py", "sync_user.py"])
def test_roles_in_odd_case_and_spacing_are_normalised(standin: Proxy, tmp_path: Path, script: str) -> None:
    run = run_script(script, "--csv-file", _copy("odd_roles.csv", tmp_path), proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert users_on(standin) == {
        "camel@example.com": ("internal_user", ()),
        "padded@example.com": ("proxy_admin", ()),
        "viewer@example.com": ("internal_user_viewer", ()),
    }


@pytest.mark.parametrize("script", SCRIPTS)
def test_formula_cells_are_written_as_text(standin: Proxy, tmp_path: Path, script: str) -> None:
    standin.standin.seed_team(HYPERLINK)
    standin.standin.seed_user("-created@example.com")
    name = _copy("formulas.csv", tmp_path)

    run = run_script(script, "--csv-file", name, proxy=standin, cwd=tmp_path)

    assert run.code == 1, run.output  # each script finds some rows bad
    cells = written_cells(tmp_path, {name})
    assert [value for value in cells if value.startswith(FORMULA_START)] == []
    emails = ("-minus@example.com", "+plus@example.com", "=equals@example.com", "@at.example.com")
    assert {f"'{email}" for email in (*emails, "-created@example.com")} <= set(cells)  # every row is in a file


def test_a_fed_back_error_file_reads_its_cells_without_the_added_quote(standin: Proxy, tmp_path: Path) -> None:
    name = _copy("formulas.csv", tmp_path)
    first = run_script("add_user.py", "--csv-file", name, proxy=standin, cwd=tmp_path)
    assert first.code == 1, first.output
    first_errors = {row["email"]: row for row in first.rows("user_reg_error.csv")}
    assert first_errors["'-minus@example.com"]["team_name"] == f"'{HYPERLINK}"
    assert first_errors["'-minus@example.com"]["key_name"] == "'@SUM(A1)"
    team = standin.standin.seed_team(HYPERLINK)  # the fix: the missing team now exists

    again = run_script(
        "add_user.py", "--csv-file", "user_reg_error.csv", "--output-dir", "again", proxy=standin, cwd=tmp_path
    )

    assert again.code == 1, again.output
    assert users_on(standin)["-minus@example.com"] == ("internal_user", (team,))
    with standin.client() as client:
        assert "@SUM(A1)" in client.key_aliases()
    assert {row["email"]: row["error_reason"] for row in again.rows("again/user_reg_error.csv")} == {
        "'+plus@example.com": "role '+cmd' is not one of proxy_admin, proxy_admin_viewer, internal_user, "
        "internal_user_viewer (or default)",
        "'@at.example.com": "invalid email '@at.example.com': not an address a mail system accepts, nor a user's on "
        "the proxy",
    }
    written = written_cells(tmp_path, {name}) + written_cells(tmp_path / "again", set())
    assert [value for value in written if value.startswith(FORMULA_START)] == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_directory_is_refused(standin: Proxy, tmp_path: Path, script: str) -> None:
    (tmp_path / "exports").mkdir()

    run = run_refused(script, "exports", standin, tmp_path)

    assert "ERROR: CSV file 'exports' is a directory, not a file." in run.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_missing_file_is_refused_in_the_original_words(standin: Proxy, tmp_path: Path, script: str) -> None:
    run = run_refused(script, "missing.csv", standin, tmp_path)

    assert "ERROR: CSV file 'missing.csv' not found." in run.stderr


def _without_root_file_access() -> Callable[[], None] | None:
    """For the child before exec: drop the capabilities that let root read a file whatever its mode
    (running as nobody would not do: the interpreter may live where only root may go). Other
    users are kept out by the mode alone."""
    if os.geteuid() != 0:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here, not in the forked child

    def drop() -> None:
        for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    return drop


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    "locked",
    [
        "file",
        "directory",
    ],
)
def test_an_unreadable_file_is_refused(standin: Proxy, tmp_path: Path, script: str, locked: str) -> None:
    path = tmp_path / "locked" / "users.csv"
    path.parent.mkdir()
    path.write_text("email\nann@example.com\n", encoding="utf-8")
    (path if locked == "file" else path.parent).chmod(0)
    before = _files(tmp_path)

    done = subprocess.run(
        [sys.executable, str(ROOT / script), "--csv-file", "locked/users.csv"],
        cwd=tmp_path,
        env=clean_env(LITELLM_BASE_URL=standin.url, LITELLM_MASTER_KEY=standin.master_key),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_without_root_file_access(),
    )

    run = Run(done.returncode, done.stdout, done.stderr, tmp_path)
    assert_refused(run, standin, before)
    assert "ERROR: cannot read CSV file 'locked/users.csv': Permission denied." in run.stderr


def test_blank_lines_before_the_header_are_skipped(standin: Proxy, tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text("\n \n\nemail,role\nann@example.com,internal_user\n", encoding="utf-8")

    run = run_script("add_user.py", "--csv-file", "users.csv", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert users_on(standin) == {"ann@example.com": ("internal_user", ())}


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


@pytest.mark.parametrize("value", ["inf%", "nan%", "-1", "150%", "-5%", "ten", "1e3"])
def test_a_bad_max_delete_stops_before_the_first_request(standin: Proxy, tmp_path: Path, value: str) -> None:
    write_csv(tmp_path / "user_list.csv", "email\na@example.com\n")

    run = run_script("sync_user.py", f"--max-delete={value}", proxy=standin, cwd=tmp_path)

    assert run.code == 2, run.output
    no_traceback(run.output)
    assert f"argument --max-delete: '{value}' is not a count of users" in run.stderr
    assert standin.standin
    assert standin.standin.count() == 0


@pytest.mark.parametrize("script", ["add_user.py", "del_user.py", "sync_user.py"])
def test_an_unwritable_output_dir_stops_before_any_request(standin: Proxy, tmp_path: Path, script: str) -> None:
    write_csv(tmp_path / "users.csv", "email,role\na@example.com,internal_user\n")
    (tmp_path / "a-file").write_text("not a folder")

    run = run_script(script, "--csv-file", "users.csv", "--output-dir", "a-file/results", proxy=standin, cwd=tmp_path)

    assert run.code == 2, run.output
    no_traceback(run.output)
    assert "argument --output-dir: cannot write result files to 'a-file/results'" in run.stderr
    assert standin.standin
    assert standin.standin.count() == 0


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("kn30@example.com\u200b", "email 'kn30@example.com' contains invisible characters (U+200B)"),
        ("Kn 30 <kn30@example.com>", "invalid email 'Kn 30 <kn30@example.com>': one address, without a name or spaces"),
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
