"""The run report (--report FILE): what a run did, as JSON for monitors, written when the run ends,
whatever its exit code, and replaced atomically.

A stable format: new keys may appear, none changes meaning.

    script, version, exit_code, dry_run (--dry-run or --check), started_at, finished_at, seconds,
    proxy {url (without credentials), release}, counts {the summary's words: added, updated, deleted,
    blocked, reinstated, purged, unchanged, created, skipped, kept, listed, failed, keys_deleted, ...;
    for a dry run or --check, what the plan would do}, files [the files it wrote that are there at its
    end: results, errors, undo, an in-flight journal left to finish], error (one line, when
    the run stopped)

It never holds a key or the master key.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from common import __version__
from common.exits import written
from common.redaction import hide


@dataclass
class RunRecord:
    """What the report says; the scripts fill it in as the run goes."""

    script: str = ""
    report_to: Path | None = None
    dry_run: bool = False
    proxy_url: str = ""
    release: Callable[[], str | None] = lambda: None  # the release the run learned (no request made for it)
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    _started: float = field(default_factory=time.monotonic)

    def count(self, counts: Mapping[str, int], *, always: tuple[str, ...] = ()) -> None:
        """Take a run's counts, keyed by the summary's words (`keys deleted` as keys_deleted);
        `always`: words reported even at 0, so that a monitor finds them."""
        merged = dict(self.counts)  # a run with two reports (users and teams) adds both
        for word in always:
            merged.setdefault(word.lower().replace(" ", "_"), 0)
        for word, number in counts.items():
            if number:
                name = word.lower().replace(" ", "_")
                merged[name] = merged.get(name, 0) + int(number)
        self.counts = merged

    def write(self, exit_code: int) -> None:
        """Replace the report file with this run's (nothing to do without --report)."""
        if self.report_to is None:
            return
        finished = datetime.now(timezone.utc)
        report: dict[str, Any] = {
            "script": self.script,
            "version": __version__,
            "exit_code": int(exit_code),
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - self._started, 3),
            "proxy": {"url": _without_credentials(self.proxy_url), "release": self.release()},
            "counts": self.counts,
            "files": [str(Path(path).resolve()) for path in dict.fromkeys(written()) if Path(path).exists()],
        }
        if self.error:
            report["error"] = hide(self.error.splitlines()[0])
        _replace(self.report_to, json.dumps(report, indent=2) + "\n")


def _without_credentials(url: str) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _replace(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: a reader sees the old report or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


RUN = RunRecord()  # this process's run: one script run a process
