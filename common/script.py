"""One script run, from start to end: the exit code for whatever escapes its main, and its signals.

Ctrl-C and SIGTERM (what cron and systemd send) are handled here and only here. Before a run
starts changing the proxy, a signal stops it at once: nothing was changed. While a plan is
applied (a Runner is active), the first signal asks the Runner to finish the rows in flight and
start no new one; a second quits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable

from common.exits import Exit, SafetyStop, UsageError, written
from common.redaction import hide
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
    """Run a script's main and turn what escapes it into the documented exit code.

    A ProxyError that escapes main came before any change: the proxy could not be used (3).
    Anything else is a bug (70): one line saying so and where the partial results are, then the
    traceback, secrets redacted.
    """
    SIGNALS.install()
    try:
        return main()
    except (UsageError, SafetyStop) as exc:
        print(hide(str(exc)), file=sys.stderr)
        return exc.code
    except ProxyError as exc:
        reason = "the master key was refused" if exc.auth_refused else "the proxy could not be used"
        print(hide(f"ERROR: {reason}: {exc}. Nothing was changed."), file=sys.stderr)
        return Exit.PROXY
    except KeyboardInterrupt:
        if SIGNALS.changed:
            where = f" What it did is in {', '.join(written())}." if written() else ""
            print(f"Interrupted after the run had started its changes.{where}", file=sys.stderr)
        else:
            print("Interrupted before any change: nothing was changed.", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:  # whoever read stdout stopped (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except Exception:
        where = f"Partial results: {', '.join(written())}." if written() else "No result file was written."
        print(
            f"INTERNAL ERROR (exit 70): a bug in these tools stopped the run. {where} "
            "Please report it with the traceback below (keys and the master key are hidden in it).",
            file=sys.stderr,
        )
        print(hide(traceback.format_exc()), file=sys.stderr)
        return Exit.INTERNAL
