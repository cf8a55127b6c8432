"""Reading an input CSV file: the whole file is read and checked before anything changes.

UTF-8 (with or without Excel's BOM) or UTF-16; CRLF or LF; comma, semicolon or tab, guessed from
the header line; header names matched case-insensitively, with aliases. Columns a script does not
know are ignored, so an error or undo file can be fed back as it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.exits import UsageError

HEADER_ALIASES = {
    "user_email": "email",
    "user_role": "role",
    "team": "team_name",
    "team_alias": "team_name",
    "key_alias": "key_name",
}
METADATA_PREFIX = "metadata."
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # cells a spreadsheet would run: written with a leading '


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of the input: its line (header = 1), its known cells (trimmed), and what is
    wrong with its shape, if anything (planners report it as the row's error)."""

    line: int
    cells: dict[str, str]
    problem: str = ""

    def __getitem__(self, column: str) -> str:
        return self.cells.get(column, "")


def read_rows(
    path: str,
    columns: Sequence[str],
    *,
    encoding: str = "utf-8",
    required: Sequence[str] = ("email",),
    metadata: bool = False,
) -> list[Row]:
    """Every data row of the file, or a UsageError naming the file and line where it cannot be
    used. `metadata`: also keep the metadata.<name> columns (<name> keeps its case)."""
    text = _read_text(path, encoding)
    first = next((line for line in text.splitlines() if line.strip()), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first), strict=True)
    rows: list[Row] = []
    header: list[str | None] = []
    next_line = 1
    try:
        for record in reader:
            line, next_line = next_line, reader.line_num + 1
            if not header:
                if any(cell.strip() for cell in record):  # blank lines before the header are skipped
                    header = _header(path, line, record, columns, required, metadata)
                continue
            cells = {name: _unescape(value.strip()) for name, value in zip(header, record, strict=False) if name}
            extra = [value for value in record[len(header) :] if value.strip()]
            if any(cells.values()) or extra:
                problem = (
                    f"the row has {len(record)} fields but the header has {len(header)}: check for an "
                    "unquoted delimiter in a cell"
                    if extra
                    else ""
                )
                rows.append(Row(line, cells, problem))
    except csv.Error as exc:  # reported at the line where the broken record starts
        if "field larger" in str(exc):
            reason = f"a field is too large (over {csv.field_size_limit()} characters)"
        elif "end of data" in str(exc):
            reason = "a quote opened here is never closed"
        else:
            reason = str(exc)
        raise UsageError(f"ERROR: {path} line {next_line}: {reason}. Check its quotes.") from exc
    if not header:
        raise UsageError(f"ERROR: {path} is empty: expected a header line with an 'email' column.")
    return rows


def column_name(header_cell: str) -> str:
    """The column a header cell names: trimmed, lower case, aliases resolved (metadata.<name>
    keeps the case of <name>)."""
    name = header_cell.strip().lstrip("\ufeff")
    if name.lower().startswith(METADATA_PREFIX):
        return METADATA_PREFIX + name[len(METADATA_PREFIX) :].strip()
    name = name.lower()
    return HEADER_ALIASES.get(name, name)


def _read_text(path: str, encoding: str) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"ERROR: CSV file '{path}' not found.") from None
    except IsADirectoryError:
        raise UsageError(f"ERROR: CSV file '{path}' is a directory, not a file.") from None
    except OSError as exc:
        raise UsageError(f"ERROR: cannot read CSV file '{path}': {exc.strerror}.") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # Excel's "Unicode text"
    elif data.startswith(b"\xef\xbb\xbf") and encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except LookupError as exc:
        raise UsageError(f"ERROR: unknown encoding '{encoding}'.") from exc
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"ERROR: {path} line {line}: not valid {encoding} (byte 0x{data[exc.start]:02x}). "
            "Save it as 'CSV UTF-8', or rerun with --encoding latin-1 if that is what it is."
        ) from exc
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise UsageError(f"ERROR: {path} line {line}: contains NUL bytes: this is not a text CSV file.")
    if not text.strip():
        raise UsageError(f"ERROR: {path} is empty: expected a header line with an 'email' column.")
    return text


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(
    path: str, line: int, record: list[str], columns: Sequence[str], required: Sequence[str], metadata: bool
) -> list[str | None]:
    names: list[str | None] = []
    for cell in record:
        name = column_name(cell)
        known = name in columns or (metadata and name.startswith(METADATA_PREFIX) and name != METADATA_PREFIX)
        if known and name in names:
            raise UsageError(f"ERROR: {path} line {line}: two columns mean '{name}'; keep one.")
        names.append(name if known else None)
    if not any(name in names for name in required):
        found = ", ".join(cell.strip() for cell in record if cell.strip()) or "nothing"
        wanted = " or ".join(f"'{name}'" for name in required)
        raise UsageError(f"ERROR: {path} line {line}: no {wanted} column (found: {found}).")
    return names


def _unescape(value: str) -> str:
    """Undo the quote that the tools' files put before a formula-like cell or one that starts with
    a quote (results.cell), so that what they wrote reads back as it was."""
    return value[1:] if value.startswith("'") and value[1:2] and value[1] in (*FORMULA_START, "'") else value


class Repeats:
    """The first line of each email and user_id in a file: a row that repeats one is an error (the
    first occurrence goes ahead)."""

    def __init__(self) -> None:
        self._emails: dict[str, int] = {}
        self._ids: dict[str, int] = {}

    def check(self, row: Row, email_key: str) -> None:
        if email_key in self._emails:
            raise ValueError(f"duplicate email in the file (first on line {self._emails[email_key]})")
        if row["user_id"] in self._ids:
            raise ValueError(f"duplicate user_id in the file (first on line {self._ids[row['user_id']]})")
        self._emails[email_key] = row.line
        if row["user_id"]:
            self._ids[row["user_id"]] = row.line


def stop_if_strict(strict: bool, csv_file: str, failures: Sequence[tuple[Row, str]]) -> None:
    """--strict: any bad row stops the run before any change, every bad row listed."""
    if strict and failures:
        lines = [f"ERROR: {csv_file} line {row.line}: {reason}" for row, reason in failures]
        lines.append(f"--strict: {len(failures)} bad row(s); nothing was changed.")
        raise UsageError("\n".join(lines))
