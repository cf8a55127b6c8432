"""Exit codes, and turning what escapes a script's main into one of them."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable
from enum import IntEnum

from common.redaction import hide
from litellm_client import ProxyError


class Exit(IntEnum):
    OK = 0
    ROW_FAILED = 1
    USAGE = 2
    PROXY = 3
    SAFETY = 4
    DRIFT = 5  # sync_user.py --check: the proxy differs from the file
    INTERNAL = 70  # a bug in the tools
    INTERRUPTED = 130


_WRITTEN: list[str] = []  # result files this run has written, for the message of exit 70


def note_written(path: str) -> None:
    _WRITTEN.append(path)


class UsageError(Exception):
    """A bad option or unusable input: the run stops before any change (exit 2)."""

    code = Exit.USAGE


class SafetyStop(Exception):
    """A safety limit stopped the run before any change (exit 4)."""

    code = Exit.SAFETY


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run(main: Callable[[], int]) -> int:
    """Run a script's main and turn what escapes it into the documented exit code.

    SIGTERM (what cron and systemd send) is Ctrl-C. A ProxyError that escapes main came before
    any change: the proxy could not be used (3). Anything else is a bug (70): one line saying so
    and where the partial results are, then the traceback, secrets redacted.
    """
    signal.signal(signal.SIGTERM, _interrupt)
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
        print("Interrupted before any change: nothing was changed.", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:  # whoever read stdout stopped (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except Exception:
        where = f"Partial results: {', '.join(_WRITTEN)}." if _WRITTEN else "No result file was written."
        print(
            f"INTERNAL ERROR (exit 70): a bug in these tools stopped the run. {where} "
            "Please report it with the traceback below (keys and the master key are hidden in it).",
            file=sys.stderr,
        )
        print(hide(traceback.format_exc()), file=sys.stderr)
        return Exit.INTERNAL
