"""common.csv_input.read_rows as a plain function: files in every supported encoding, delimiter and
line end read the same, cells that need quoting survive, and a row with too many fields is
flagged (and then failed by every planner). No proxy, no subprocess.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.actions import Action
from common.additions import plan_additions
from common.csv_input import FORMULA_START, Row, read_rows
from common.deletions import plan_deletions
from common.exits import UsageError
from common.results import cell
from common.snapshot import Snapshot
from common.sync_plan import SyncOptions, plan_sync
from litellm_client import User

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
COLUMNS = ("email", "role", "team_name", "key_name", "user_id", "max_budget", "models")
SPELLINGS = {  # the header names a file may use for each column
    "email": ("email", "user_email"),
    "role": ("role", "user_role"),
    "team_name": ("team_name", "team", "team_alias"),
    "key_name": ("key_name", "key_alias"),
    "user_id": ("user_id",),
    "max_budget": ("max_budget",),
    "models": ("models",),
    "metadata.cost_center": ("metadata.cost_center",),
    "metadata.Owner": ("metadata.Owner",),
}
UNKNOWN = ("notes", "line", "error_reason", "Department")  # ignored, as in an error file fed back
DELIMITERS = (",", ";", "\t")
LINE_ENDS = ("\n", "\r\n")
ENCODINGS = {  # name -> how a text becomes the file's bytes
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM": lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
    "utf-16-le with BOM": lambda text: b"\xff\xfe" + text.encode("utf-16-le"),
    "utf-16-be with BOM": lambda text: b"\xfe\xff" + text.encode("utf-16-be"),
}
BREAKS = re.compile(r"\r\n|\r|\n")  # what the reader counts as a line end (newline="")


# -- writing a table as a file -------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    columns: tuple[str | None, ...]  # canonical names; None for an unknown column
    header: tuple[str, ...]  # as the file spells it (case, aliases, spaces)
    rows: tuple[tuple[str, ...], ...]  # () is a blank line
    blank_before: tuple[str, ...]  # the blank lines before the header


def _quoted(cell: str, delimiter: str, quote_all: bool) -> str:
    if quote_all or any(char in cell for char in (delimiter, '"', "\r", "\n")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def render(
    table: Table, *, delimiter: str = ",", line_end: str = "\n", quote_all: bool = False, plain: bool = False
) -> tuple[str, list[int]]:
    """The file's text, and the line each data row starts on. plain: canonical header names."""
    header = (
        [name or spelled for name, spelled in zip(table.columns, table.header, strict=True)] if plain else table.header
    )
    records = [
        *[blank.replace(",", delimiter) for blank in table.blank_before],
        delimiter.join(header),
    ]
    starts = []
    text = ""
    for record in records:
        text += record + line_end
    for row in table.rows:
        starts.append(len(BREAKS.findall(text)) + 1)
        text += delimiter.join(_quoted(cell, delimiter, quote_all) for cell in row) + line_end
    return text, starts


def expected_cell(cell: str) -> str:
    """What the reader makes of a cell: trimmed, and a result file's leading ' before a formula dropped."""
    value = cell.strip()
    return value[1:] if value.startswith("'") and value[1:2] and value[1] in (*FORMULA_START, "'") else value


def expected_rows(table: Table, starts: Sequence[int]) -> list[Row]:
    rows = []
    for row, line in zip(table.rows, starts, strict=True):
        if not row:  # a blank line
            continue
        cells = {name: expected_cell(cell) for name, cell in zip(table.columns, row, strict=True) if name}
        if any(cells.values()):
            rows.append(Row(line, cells))
    return rows


# -- strategies ----------------------------------------------------------------------------------


def _any_case(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True))
    )


def _spelled(name: str) -> st.SearchStrategy[str]:
    if name.startswith("metadata."):  # the prefix in any case, the key's own case kept
        prefix, key = name.split(".", 1)
        spelled = _any_case(prefix).map(lambda p: f"{p}.{key}")
    else:
        spelled = st.sampled_from(SPELLINGS[name]).flatmap(_any_case)
    return st.tuples(st.sampled_from(["", " ", "  "]), spelled, st.sampled_from(["", " "])).map("".join)


PIECES = [",", ";", "\t", '"', "'", "\n", "\r\n", " ", "=1+2", "'=x", "a", "é", "ß", "\u00a0", "x@y.com", "none"]
CELL = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8),
    st.lists(st.sampled_from(PIECES), max_size=5).map("".join),
)


@st.composite
def tables(draw: st.DrawFn, *, min_columns: int = 2) -> Table:
    known = draw(st.lists(st.sampled_from(list(SPELLINGS)), unique=True, min_size=1))
    if "email" not in known:
        known.insert(draw(st.integers(0, len(known))), "email")
    columns: list[str | None] = list(known)
    for _ in range(draw(st.integers(0, 2))):
        columns.insert(draw(st.integers(0, len(columns))), None)
    while len(columns) < min_columns:
        columns.append(None)
    header = []
    for name in columns:
        header.append(draw(_spelled(name)) if name else draw(st.sampled_from(UNKNOWN)))
    width = len(columns)
    row = st.one_of(
        st.lists(CELL, min_size=width, max_size=width).map(tuple),
        st.just(()),  # a blank line between rows
    )
    rows = draw(st.lists(row, max_size=6).map(tuple))
    blank = draw(st.lists(st.sampled_from(["", " ", ",,", " , "]), max_size=3).map(tuple))
    return Table(tuple(columns), tuple(header), rows, blank)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("csv_input")


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


# -- properties ----------------------------------------------------------------------------------


@FAST
@given(
    table=tables(),
    delimiter=st.sampled_from(DELIMITERS),
    line_end=st.sampled_from(LINE_ENDS),
    encoding=st.sampled_from(list(ENCODINGS)),
    quote_all=st.booleans(),
    final_line_end=st.booleans(),
)
def test_every_encoding_delimiter_and_line_end_reads_as_the_plain_file(
    folder: Path,
    table: Table,
    delimiter: str,
    line_end: str,
    encoding: str,
    quote_all: bool,
    final_line_end: bool,
) -> None:
    plain_text, starts = render(table, plain=True)
    plain = read_rows(_write(folder / "plain.csv", plain_text.encode()), COLUMNS, metadata=True)
    assert plain == expected_rows(table, starts)  # every cell survives: delimiters, quotes, newlines inside

    text, _ = render(table, delimiter=delimiter, line_end=line_end, quote_all=quote_all)
    if not final_line_end:
        text = text[: -len(line_end)]
    other = read_rows(_write(folder / "other.csv", ENCODINGS[encoding](text)), COLUMNS, metadata=True)
    assert other == plain


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("delimiter", DELIMITERS)
@pytest.mark.parametrize("line_end", LINE_ENDS)
def test_an_excel_style_file_reads_like_plain_utf8(
    tmp_path: Path, encoding: str, delimiter: str, line_end: str
) -> None:
    table = Table(
        ("email", "role", "team_name", None, "metadata.Owner"),
        ("User_Email ", " ROLE", "Team", "Notes", "METADATA.Owner"),
        (
            ("  ann@example.com ", "internal_user", "eng;ops", "a note, with a comma", "Ann; B"),
            (),
            ("bob@example.com", "", "", 'say "hi"\nsecond line', "'=SUM(A1)"),
            ("zoé@example.com", "proxy_admin", "tab\there", "", ""),
        ),
        ("", " "),
    )
    text, _ = render(table, delimiter=delimiter, line_end=line_end)
    rows = read_rows(_write(tmp_path / "in.csv", ENCODINGS[encoding](text)), COLUMNS, metadata=True)
    assert rows == [
        Row(
            4, {"email": "ann@example.com", "role": "internal_user", "team_name": "eng;ops", "metadata.Owner": "Ann; B"}
        ),
        Row(6, {"email": "bob@example.com", "role": "", "team_name": "", "metadata.Owner": "=SUM(A1)"}),
        Row(8, {"email": "zoé@example.com", "role": "proxy_admin", "team_name": "tab\there", "metadata.Owner": ""}),
    ]


@st.composite
def overfull(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """A header, and a row with more fields than it: the extra ones with or without text. The header
    has two columns or more: a one-column header shows no delimiter, so none can be told apart."""
    header = ["email", *draw(st.lists(st.sampled_from(["role", "team_name", "user_id"]), unique=True, min_size=1))]
    cells = [draw(st.sampled_from(["ann@example.com", "Ann@Example.com", "ann@example.com"]))]
    cells += [draw(st.sampled_from(["", "internal_user"])) if name == "role" else "" for name in header[1:]]
    extra = draw(st.lists(st.sampled_from(["", " ", "x", "eng", "internal_user"]), min_size=1, max_size=3))
    return draw(st.sampled_from(DELIMITERS)), header, cells + extra


@FAST
@given(case=overfull())
def test_a_row_with_more_filled_fields_than_the_header_has_a_problem_every_planner_reports(
    folder: Path, case: tuple[str, list[str], list[str]]
) -> None:
    delimiter, header, fields = case
    text = delimiter.join(header) + "\n" + delimiter.join(fields) + "\n"
    path = _write(folder / "overfull.csv", text.encode())
    (row,) = read_rows(path, COLUMNS, required=("email", "user_id"))
    filled = [value for value in fields[len(header) :] if value.strip()]
    if not filled:  # empty trailing fields (a spreadsheet's habit) are no problem
        assert row.problem == ""
        return
    assert row.problem.startswith(f"the row has {len(fields)} fields but the header has {len(header)}")

    ann = User("u-ann", "ann@example.com", "internal_user", (), 1)
    snapshot = Snapshot([ann], [])
    assert plan_additions([row], Snapshot([], []), default_role="internal_user").failures == [(row, row.problem)]
    assert plan_deletions([row], snapshot).failures == [(row, row.problem)]
    sync = plan_sync([row], snapshot, SyncOptions())
    assert [(failed, reason) for failed, reason, _ in sync.failures] == [(row, row.problem)]
    assert sync[Action.DELETE] == []  # the bad row still lists ann: she stays


def test_a_quote_never_closed_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "open.csv", b'email,role\nann@example.com,internal_user\n"bob@example.com,proxy_admin\n')
    with pytest.raises(UsageError, match=r"line 3: a quote opened here is never closed"):
        read_rows(path, COLUMNS)


@FAST
@given(
    value=st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12),
        st.lists(st.sampled_from([" ", "'", "-", "+", "=", "@", "\t", "x"]), max_size=6).map("".join),
    )
)
def test_every_text_the_tools_write_reads_back_as_it_was(tmp_path_factory: pytest.TempPathFactory, value: str) -> None:
    """A result file, an error file or an export fed back: a cell that starts with ' followed by
    -, +, = or @ (or another ') keeps its leading quote (issue 22, item 8)."""
    path = tmp_path_factory.mktemp("cells") / "file.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["email", "user_alias"], ["a@example.com", cell(value)]])
    (row,) = read_rows(str(path), ("email", "user_alias"))
    assert row["user_alias"] == value.strip()
