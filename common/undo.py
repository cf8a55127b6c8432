"""Undo files: before its first change, a run that deletes, blocks or changes users writes them as
the proxy has them, in sync_user.py's schema, so that sync_user.py --csv-file <undo> --no-delete
puts them back (a deleted user comes back under its former user_id; keys cannot, keys_lost says
which to issue again). Written whole, mode 0600, synced to disk; never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common import removal, user_record
from common.results import ResultFile
from common.snapshot import Snapshot
from litellm_client import Key, LiteLLMClient, User

UNDO_COLUMNS = (
    "email",
    "role",
    "team_name",
    user_record.ADMIN_OF,
    "user_id",
    "state",
    *user_record.ACCESS_COLUMNS,
    user_record.METADATA,
)


def write_undo(
    output_dir: Path,
    name: str,
    proxy: LiteLLMClient,
    snapshot: Snapshot,
    touched: Sequence[str],
    keys_lost: Mapping[str, Sequence[Key]],
    *,
    deleted: Iterable[str],
) -> Path:
    """Write <name>_undo.csv for the users a run is about to touch (user_ids). keys_lost: the keys
    the run deletes, by user; deleted: the users it deletes, read in full first (what only
    /user/info shows, before it goes).

    Each user as it is: teams by id (an alias may pass to another team meanwhile), the teams it
    is an admin of (admin_of, by id too), its state
    (offboarded or active: fed back, an offboarded user comes back offboarded, a blocked one back
    active), and its metadata as one JSON object, every value with its type and exact text."""
    snapshot.add_details(proxy, deleted)
    users = [snapshot.users_by_id[user_id] for user_id in touched]
    known = [column for column in UNDO_COLUMNS if not users or any(snapshot.knows(user, column) for user in users)]
    columns = [*known, "keys_lost"]  # a column known for no user is left out; a cell not known is empty (kept)
    aliases = {user_id: [key.alias for key in keys] for user_id, keys in keys_lost.items()}
    return write_rows(
        output_dir / f"{name}_undo.csv", columns, (_row(user, snapshot, columns, aliases) for user in users)
    )


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """An undo file: written whole, mode 0600, synced to disk, never overwritten."""
    undo = ResultFile(path, columns, private=True)
    for row in rows:
        undo.write(row)
    undo.sync()
    undo.close()
    return undo.path


def _row(
    user: User, snapshot: Snapshot, columns: Sequence[str], keys_lost: Mapping[str, Sequence[str | None]]
) -> dict[str, Any]:
    metadata = {name: value for name, value in (user.metadata or {}).items() if value is not None}
    row: dict[str, Any] = {
        "email": user.email,
        "role": user.role or "default",
        "team_name": ";".join(snapshot.teams_of(user)) or user_record.CLEAR,
        user_record.ADMIN_OF: ";".join(snapshot.admin_of(user)),
        "user_id": user.user_id,
        "state": "offboarded" if removal.offboarded_at(user) else "active",
        user_record.METADATA: json.dumps(metadata, ensure_ascii=False, sort_keys=True),
        "keys_lost": ";".join(alias or "(no alias)" for alias in keys_lost.get(user.user_id, ())),
    }
    for column in user_record.ACCESS_COLUMNS:
        if column in columns and snapshot.knows(user, column):  # not known: empty, kept as it is
            row[column] = user_record.show(column, user_record.field(column).current(user))
    return row
