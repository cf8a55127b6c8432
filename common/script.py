"""One script run, from start to end: the exit code for whatever escapes its main, its signals, and
its report (common/run_report.py).

Ctrl-C and SIGTERM (what cron and systemd send) are handled here and only here. Before a run
starts changing the proxy, a signal stops it at once: nothing was changed. While a plan is
applied (a Runner is active), the first signal asks the Runner to finish the rows in flight and
start no new one; a second quits at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from common.exits import Exit, SafetyStop, UsageError, written
from common.redaction import hide
from common.run_report import RUN
from litellm_client import ProxyError


class _Signals:
    """Where a signal goes: KeyboardInterrupt, or the stop of the plan being applied."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._applying: Callable[[], None] | None = None
        self.changed = False  # a plan has started to be applied: the proxy may have changed

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, *_: object) -> None:
        with self._lock:
            stop = self._applying
        if stop is None:
            raise KeyboardInterrupt
        stop()

    def applying(self, stop: Callable[[], None] | None) -> None:
        """A plan is applied from now on (stop: what a signal does), or no longer (None)."""
        with self._lock:
            self._applying = stop
            self.changed = self.changed or stop is not None


SIGNALS = _Signals()


def run_main(main: Callable[[], int]) -> int:
    """Run a script's main, turn what escapes it into the documented exit code, and write the run
    report (--report) whatever that code is.

    A ProxyError that escapes main came before any change: the proxy could not be used (3).
    Anything else is a bug (70): one line saying so and where the partial results are, then the
    traceback, secrets redacted.
    """
    SIGNALS.install()
    RUN.script = Path(sys.argv[0]).name
    RUN.report_to = _report_path(sys.argv[1:])
    code, message = _outcome(main)
    if message:
        print(hide(message), file=sys.stderr)
        RUN.error = RUN.error or message
    if code is not None:
        RUN.write(code)
    return code if code is not None else Exit.OK


def _outcome(main: Callable[[], int]) -> tuple[int | None, str]:
    """The exit code (None: --help or --version, no run) and the message that ends the run early."""
    try:
        return main(), ""
    except SystemExit as exc:  # argparse: a bad option (2), or --help and --version (0)
        return (None, "") if not exc.code else (int(exc.code) if isinstance(exc.code, int) else Exit.USAGE, "")
    except (UsageError, SafetyStop) as exc:
        return exc.code, str(exc)
    except ProxyError as exc:
        reason = "the master key was refused" if exc.auth_refused else "the proxy could not be used"
        return Exit.PROXY, f"ERROR: {reason}: {exc}. Nothing was changed."
    except KeyboardInterrupt:
        if SIGNALS.changed:
            where = f" What it did is in {', '.join(written())}." if written() else ""
            return Exit.INTERRUPTED, f"Interrupted after the run had started its changes.{where}"
        return Exit.INTERRUPTED, "Interrupted before any change: nothing was changed."
    except BrokenPipeError:  # whoever read stdout stopped (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK, ""
    except Exception:
        where = f"Partial results: {', '.join(written())}." if written() else "No result file was written."
        RUN.error = f"internal error: {traceback.format_exc().strip().splitlines()[-1]}"
        return Exit.INTERNAL, (
            f"INTERNAL ERROR (exit 70): a bug in these tools stopped the run. {where} "
            "Please report it with the traceback below (keys and the master key are hidden in it).\n"
            + traceback.format_exc()
        )


def _report_path(argv: list[str]) -> Path | None:
    """--report FILE, read before the script's own parser: a run that stops on a bad option reports too."""
    seen = argparse.ArgumentParser(add_help=False)
    seen.add_argument("--report", type=Path)
    try:
        return seen.parse_known_args(argv)[0].report
    except SystemExit:  # --report without a file: the script's own parser says so
        return None
