"""Taking users off the proxy, in the three ways del_user.py and sync_user.py share, and putting
them back: delete (the user and its keys, for good), block (every key blocked and the user marked
with metadata offboarded_at; nothing is lost), purge (delete a user blocked long enough), and
reinstate (unblock the keys, remove the mark).

Before its first change a run writes its undo file: the users it is about to touch, as the proxy
has them, in sync_user.py's schema, so that sync_user.py --csv-file <undo> --no-delete puts them
back (a deleted user comes back under its former user_id; keys cannot, keys_lost says which).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import user_record
from common.csv_input import METADATA_PREFIX, Row
from common.results import plural, write_undo
from common.snapshot import Snapshot
from common.user_record import OFFBOARDED_AT
from litellm_client import Key, LiteLLMClient, User

DELETE, BLOCK, PURGE = "delete", "block", "purge"
UNDO_COLUMNS = ("email", "role", "team_name", "user_id", *user_record.ACCESS_COLUMNS)


@dataclass(frozen=True, slots=True)
class Removal:
    """One user a run takes off: how, and the row that asked for it (None: sync, not in the file)."""

    user: User
    how: str  # DELETE, BLOCK or PURGE
    row: Row | None = None

    def describe(self) -> str:
        if self.how == BLOCK:
            return f"block: {plural(self.user.key_count, 'key')}"
        if self.how == PURGE:
            return f"purge: blocked {offboarded_at(self.user) or '?'}, {plural(self.user.key_count, 'key')}"
        return f"keys: {self.user.key_count}"


def offboarded_at(user: User) -> str | None:
    value = (user.metadata or {}).get(OFFBOARDED_AT)
    return str(value) if value else None


def blocked_for(user: User, now: datetime) -> float | None:
    """Seconds since the user was blocked (None: not blocked, or the mark is not a time)."""
    mark = offboarded_at(user)
    if not mark:
        return None
    try:
        since = datetime.fromisoformat(mark.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (now - (since if since.tzinfo else since.replace(tzinfo=timezone.utc))).total_seconds()


def now_mark(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def block(proxy: LiteLLMClient, user: User, keys: Sequence[Key], now: datetime) -> int:
    """Block every key the user has, then mark the user (in this order: a run killed in between
    leaves the user unmarked, and a rerun blocks it again). The keys newly blocked."""
    fresh = [key for key in keys if not key.blocked]
    for key in fresh:
        proxy.block_key(key.token)
    proxy.update_user(user.user_id, user_record.update_fields([], user, metadata={OFFBOARDED_AT: now_mark(now)}))
    return len(fresh)


def unblock_keys(proxy: LiteLLMClient, keys: Sequence[Key]) -> int:
    """Unblock a reinstated user's blocked keys (the mark goes with the user's update)."""
    held = [key for key in keys if key.blocked]
    for key in held:
        proxy.block_key(key.token, blocked=False)
    return len(held)


def undo_file(
    output_dir: Path,
    name: str,
    users: Iterable[User],
    snapshot: Snapshot,
    keys_lost: Mapping[str, Sequence[str]],
) -> Path:
    """Write the undo file for the users a run is about to change, delete or block."""
    users = list(users)
    metadata = sorted(
        {name for user in users for name in (user.metadata or {}) if name != OFFBOARDED_AT and name.strip()}
    )
    known = [column for column in UNDO_COLUMNS if any(snapshot.knows(user, column) for user in users)]
    columns = [
        *known,  # a column known for no user is left out; a cell not known is left empty (kept)
        *(METADATA_PREFIX + name for name in metadata),
        "keys_lost",
    ]
    return write_undo(output_dir, name, columns, (_undo_row(user, snapshot, columns, keys_lost) for user in users))


def _undo_row(
    user: User, snapshot: Snapshot, columns: Sequence[str], keys_lost: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "email": user.email,
        "role": user.role or "default",
        "team_name": snapshot.team_cell(snapshot.teams_of(user)) or user_record.CLEAR,
        "user_id": user.user_id,
        "keys_lost": ";".join(alias or "(no alias)" for alias in keys_lost.get(user.user_id, ())),
    }
    for column in columns:
        if user_record.is_field(column) and snapshot.knows(user, column):  # not known: empty, kept as it is
            row[column] = user_record.show(column, user_record.field(column).current(user))
    return row
