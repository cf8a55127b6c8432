"""Exit codes, the two exceptions that stop a run before any change, and the files a run wrote
(for the messages that end a run early)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ROW_FAILED = 1
    USAGE = 2
    PROXY = 3
    SAFETY = 4
    DRIFT = 5  # sync_user.py --check: the proxy differs from the file
    INTERNAL = 70  # a bug in the tools
    INTERRUPTED = 130


_WRITTEN: list[str] = []  # result files this run has written


def note_written(path: str) -> None:
    _WRITTEN.append(path)


def written() -> list[str]:
    return list(_WRITTEN)


class UsageError(Exception):
    """A bad option or unusable input: the run stops before any change (exit 2)."""

    code = Exit.USAGE


class SafetyStop(Exception):
    """A safety limit stopped the run before any change (exit 4)."""

    code = Exit.SAFETY


def of_plan(*, failed: bool, drift: bool = False) -> Exit:
    """The exit code of a run that only planned (a dry run, sync's --check): 1 if a row is bad,
    else 5 if --check found a difference, else 0."""
    return Exit.ROW_FAILED if failed else Exit.DRIFT if drift else Exit.OK
