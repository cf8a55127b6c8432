"""Applying a plan: rows on --workers threads, progress on stderr, and one stop every phase obeys.

Ctrl-C or SIGTERM while a plan is applied: the rows in flight finish and are recorded, no new one
starts (a second Ctrl-C quits at once). The same happens when the proxy stops answering or the
run's lease on the proxy is lost: each phase raises Interrupted with the items it never started,
and the script records them.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from common.exits import Exit
from common.script import SIGNALS

T = TypeVar("T")
_END = object()


class Interrupted(Exception):
    """The run stopped early; not_started holds the items that never began."""

    code = Exit.INTERRUPTED

    def __init__(self, not_started: list[Any], reason: str = "the run was interrupted"):
        super().__init__(reason)
        self.not_started = not_started
        self.reason = reason


class Stopped(Interrupted):
    """The run cannot go on (the proxy stopped answering, or the run's lease on it was lost): no
    new row starts, since each would only fail slowly, or unguarded."""

    code = Exit.ROW_FAILED


class Watched(Protocol):
    """Something that can end a run early: the proxy, or the run's lease on it."""

    @property
    def stop_reason(self) -> str | None: ...


class Progress:
    """'[1200/5000] users created, 17/s, about 4 min left' on stderr, at most once a second, for
    runs longer than a second."""

    def __init__(self, total: int, label: str, *, quiet: bool):
        self.total = total
        self.label = label
        self.quiet = quiet
        self.done = 0
        self._started = self._shown = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if self.quiet or now - self._shown < 1.0 or now - self._started < 1.0:
                return
            self._shown = now
            line = f"[{self.done}/{self.total}] {self.label}{self._pace(now - self._started)}"
        print(line, file=sys.stderr, flush=True)

    def _pace(self, elapsed: float) -> str:
        rate = self.done / elapsed
        if not rate:
            return ""
        left = (self.total - self.done) / rate
        return f", {rate:.0f}/s, about {_duration(left)} left" if self.done < self.total else f", {rate:.0f}/s"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class Runner:
    """The apply phase of a run: `with Runner(...) as runner:` takes Ctrl-C and SIGTERM for its
    whole length (common/script.py hands them over), so a signal between two phases is seen by
    the next one, never lost."""

    def __init__(self, *, workers: int, quiet: bool, watched: Iterable[Watched] = ()):
        self.workers = workers
        self.quiet = quiet
        self.watched = list(watched)
        self._stop = threading.Event()

    def __enter__(self) -> Runner:
        SIGNALS.applying(self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        SIGNALS.applying(None)

    def _on_signal(self) -> None:
        if self._stop.is_set():  # a second Ctrl-C: out now, like kill (rows in flight go unrecorded)
            os._exit(Exit.INTERRUPTED)
        self._stop.set()
        print(
            "Interrupted: finishing the rows in flight, starting no new ones (Ctrl-C again to quit at once).",
            file=sys.stderr,
            flush=True,
        )

    def check(self, not_started: list[Any]) -> None:
        """Between phases: raise Interrupted (with what would have come next) if the run must stop."""
        stop = self._stop_reason()
        if stop:
            kind, reason = stop
            raise kind(not_started, reason)

    def _stop_reason(self) -> tuple[type[Interrupted], str] | None:
        for watched in self.watched:
            reason = watched.stop_reason
            if reason:
                return Stopped, reason
        return (Interrupted, "the run was interrupted") if self._stop.is_set() else None

    def parallel(
        self,
        items: Iterable[T],
        work: Callable[[T], Any],
        label: str,
        *,
        workers: int | None = None,
        size: Callable[[T], int] = lambda _: 1,
    ) -> None:
        """Run work(item) for every item; work records its own outcome as soon as it has it.
        size: how many rows an item holds (a batch), so that progress counts rows.

        Stops starting items when the run must stop, then raises Interrupted (or Stopped) with
        the items never started. An unexpected error stops the run the same way, then is raised.
        """
        items = list(items)
        progress = Progress(sum(size(item) for item in items), label, quiet=self.quiet)
        width = workers or self.workers
        failure: BaseException | None = None
        remaining = iter(items)
        with ThreadPoolExecutor(width, thread_name_prefix="row") as pool:
            pending: dict[Future[Any], int] = {}
            while True:
                while failure is None and self._stop_reason() is None and len(pending) < width:
                    item = next(remaining, _END)
                    if item is _END:
                        break
                    pending[pool.submit(work, item)] = size(item)  # type: ignore[arg-type]
                if not pending:
                    break
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    progress.advance(pending.pop(future))
                    if future.exception() and failure is None:
                        failure = future.exception()
        if failure is not None:
            raise failure
        self.check(list(remaining))
