"""Result and error files, and what a run tells its user as rows finish.

Rows are appended and flushed as they finish, so a run that is killed keeps everything it did.
An existing file is never overwritten: it is kept under a timestamped name first. Files that hold
API keys (and undo files, which hold a copy of users) are created with mode 0600.
"""

from __future__ import annotations

import csv
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from common.csv_input import FORMULA_START, Row
from common.exits import Exit, note_written
from common.redaction import hide
from common.run_report import RUN
from common.runner import Interrupted
from common.script import SIGNALS
from litellm_client import LiteLLMClient

MAX_ECHOED_FAILURES = 20


def cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet shows as text: formula-like cells get a leading quote,
    and so do cells that start with one (so that the reader, which takes one off, gives them back)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = ";".join(str(item) for item in value)
    text = str(value)
    bare = text.lstrip()  # the reader trims cells: outer white space never reads back anyway
    return "'" + bare if bare.startswith((*FORMULA_START, "'")) else text


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class ResultFile:
    """One CSV file, written row by row, each row flushed as soon as it is known."""

    def __init__(self, path: Path, columns: Sequence[str], *, private: bool = False):
        self.path = path
        self.columns = list(columns)
        self.private = private
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.rename(_free_name(path))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
        self._file = os.fdopen(fd, "w", newline="", encoding="utf-8")
        note_written(str(path))
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)
        self._file.flush()

    def write(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._writer.writerow([cell(values.get(column)) for column in self.columns])
            self._file.flush()

    def sync(self) -> None:
        """Make what was written survive a power cut (undo files, before the first change)."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _free_name(path: Path) -> Path:
    stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
        n += 1
    return candidate


class Report:
    """A run's result and error files, its counts, and what it prints as rows fail.

    Scripts without an error file (sync) record failures as result rows with error_reason.
    """

    def __init__(
        self,
        output_dir: Path,
        name: str,
        *,
        result_columns: Sequence[str],
        error_columns: Sequence[str] | None = None,
        holds_keys: bool = False,
        words: Sequence[str] = (),
        failed_word: str = "failed",
    ):
        """words: the counts the run report always has (the summary's main words), 0 included;
        failed_word: what its failures are counted as there."""
        self.results = ResultFile(output_dir / f"{name}_result.csv", result_columns, private=holds_keys)
        self.errors = ResultFile(output_dir / f"{name}_error.csv", error_columns) if error_columns else None
        self.counts: Counter[str] = Counter()
        self.failed = 0
        self.words = tuple(words)
        self.failed_word = failed_word
        self._lock = threading.Lock()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.results.close()
        if self.errors:
            self.errors.close()
        RUN.count({**self.counts, self.failed_word: self.failed}, always=(*self.words, self.failed_word))

    def done(self, status: str, *, tally: str | None = None, **values: Any) -> None:
        """A row that did what it should; counted under tally (default: its status)."""
        self.results.write({**values, "status": status})
        with self._lock:
            self.counts[tally or status] += 1

    def tally(self, name: str, count: int) -> None:
        """Add to a count the summary reports (keys deleted, keys blocked)."""
        with self._lock:
            self.counts[name] += count

    def fail(self, row: Row | None, reason: str, **values: Any) -> None:
        """A row that failed: into the error file with the input columns, so it can be fixed and
        fed back (the values given win over the row's own cells), or into the result file where
        the script has no error file."""
        reason = hide(reason)
        cells = {**(row.cells if row else {}), **values}
        if self.errors is not None:
            self.errors.write({**cells, "line": row.line if row else "", "error_reason": reason})
        else:
            self.results.write({**values, "error_reason": reason})
        self._count_failure(row, cells.get("email") or cells.get("user_id") or cells.get("team_name") or "", reason)

    def not_started(self, row: Row | None, reason: str, **values: Any) -> None:
        """A row the run never started, since it stopped (why: reason)."""
        self.fail(row, f"not started: {reason}", **values)

    def partly(self, status: str, reason: str, row: Row | None = None, **values: Any) -> None:
        """A row that did its main work (a user exists, a key was issued: it belongs in the result
        file) but not all of it: recorded as a result with the reason, and counted as failed."""
        reason = hide(reason)
        self.results.write({**values, "status": status, "error_reason": reason})
        self._count_failure(row, values.get("email") or "", reason)

    def _count_failure(self, row: Row | None, who: str, reason: str) -> None:
        with self._lock:
            self.failed += 1
            shown = self.failed
        if shown <= MAX_ECHOED_FAILURES:
            where = f"line {row.line}: " if row else ""
            print(f"FAILED {where}{who}: {reason}", file=sys.stderr, flush=True)
        elif shown == MAX_ECHOED_FAILURES + 1:
            print("(more failures: see the result and error files)", file=sys.stderr, flush=True)

    def run(self, work: Callable[[], None]) -> Exit:
        """Apply the work that fills this report; the run's exit code, also when it stopped early."""
        try:
            work()
        except Interrupted as stop:
            RUN.error = f"stopped: {stop.reason}"
            return stop.code
        return Exit.ROW_FAILED if self.failed else Exit.OK

    def files(self) -> str:
        where = f"results in {self.results.path}"
        if self.results.private:
            where += " (it holds API keys: mode 0600, keep it safe)"
        return where + (f", errors in {self.errors.path}" if self.errors else "")


def closing_notes(proxy: LiteLLMClient, undo_file: Path | None, teams_undo: Path | None = None) -> list[str]:
    """What a writing run says after its summary: how to undo it, and when other processes of the
    proxy may not see its changes at once (docs/guarantees.md, "Replicated proxies")."""
    notes = []
    if undo_file and teams_undo:
        notes.append(
            f"Undo files: {undo_file}, {teams_undo} (to restore: python sync_user.py --csv-file {undo_file} "
            f"--teams-file {teams_undo} --no-delete)"
        )
    elif undo_file:
        notes.append(f"Undo file: {undo_file} (to restore: python sync_user.py --csv-file {undo_file} --no-delete)")
    if SIGNALS.changed and proxy.caches_apart:
        notes.append(
            "NOTE: this proxy runs several processes without a shared cache (Redis): until their caches expire "
            "(60 s by default), the others may still accept a key this run blocked or deleted, or a role it changed."
        )
    return notes
