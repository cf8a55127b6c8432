"""The one vocabulary of change every planner and applier speaks: what a run does to a user."""

from __future__ import annotations

from enum import Enum


class Action(Enum):
    """A change to one user. The value is the word sync_user.py's result file and summary use;
    a purge is a deletion there (of a user blocked long enough)."""

    ADD = "ADDED"
    UPDATE = "UPDATED"
    REINSTATE = "REINSTATED"
    BLOCK = "BLOCKED"
    DELETE = "DELETED"
    PURGE = "PURGED"
    KEEP = "UNCHANGED"

    @property
    def word(self) -> str:
        """What the result file calls it."""
        return Action.DELETE.value if self is Action.PURGE else self.value

    @property
    def removes(self) -> bool:
        """Takes a user off the proxy (for good, or blocked): counted against --max-delete."""
        return self in (Action.BLOCK, Action.DELETE, Action.PURGE)

    @property
    def deletes(self) -> bool:
        return self in (Action.DELETE, Action.PURGE)


CHANGES = (Action.ADD, Action.UPDATE, Action.REINSTATE, Action.BLOCK, Action.DELETE, Action.PURGE)
