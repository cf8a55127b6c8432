"""The journal of changes in flight, kept beside a run's result file: creates (add_user.py,
sync_user.py) and deletions (del_user.py).

Each is written here, and synced to disk, before it is sent; it is settled once its result or
error row is written. A run that is killed (kill -9, a power cut) leaves the ones it had in
flight. The next run in the same output folder reads them (leftovers): a create's user may exist
with a key the proxy issued and nobody saw, and is finished with a new key instead of skipped as
existing; a deleted user is reported as deleted already, not as one nobody ever had. The file goes
once nothing in it is unsettled.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from common.exits import note_written


class Journal:
    """The changes a run has sent and not yet recorded (user_id, email)."""

    def __init__(self, output_dir: Path, name: str):
        self.path = output_dir / f"{name}_inflight.csv"
        self.leftovers = self._unsettled()
        self._open = dict(self.leftovers)
        self._lock = threading.Lock()
        self._file: Any = None

    def _unsettled(self) -> dict[str, str]:
        """user_id -> email of the changes an earlier run sent and never recorded."""
        if not self.path.exists():
            return {}
        unsettled: dict[str, str] = {}
        with self.path.open(newline="", encoding="utf-8") as handle:
            for event, user_id, email in (row for row in csv.reader(handle) if len(row) == 3):
                if event == "sent":
                    unsettled[user_id] = email
                else:
                    unsettled.pop(user_id, None)
        return unsettled

    def leftovers_named(self) -> list[tuple[str, str]]:
        """The leftovers as (email, user_id): the users a run must look at, whatever its file names."""
        return [(email, user_id) for user_id, email in self.leftovers.items()]

    def sending(self, users: Iterable[tuple[str, str]]) -> None:
        """Note changes (user_id, email) about to be sent, on disk before they go."""
        with self._lock:
            users = list(users)
            self._open.update(users)
            self._append([["sent", user_id, email] for user_id, email in users], sync=True)

    def settled(self, user_ids: Iterable[str]) -> None:
        """Changes whose outcome is now in the result or error file."""
        with self._lock:
            done = [user_id for user_id in user_ids if self._open.pop(user_id, None) is not None]
            if done:
                self._append([["settled", user_id, ""] for user_id in done], sync=False)

    def _append(self, rows: list[list[str]], *, sync: bool) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "a", newline="", encoding="utf-8")
            note_written(str(self.path))
        csv.writer(self._file).writerows(rows)
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            if not self._open and self.path.exists():
                self.path.unlink()
