"""Undo files: before its first change, a run that deletes, blocks or changes users writes them as
the proxy has them, in sync_user.py's schema, so that sync_user.py --csv-file <undo> --no-delete
puts them back (a deleted user comes back under its former user_id; keys cannot, keys_lost says
which to issue again). Written whole, mode 0600, synced to disk; never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common import user_record
from common.csv_input import METADATA_PREFIX
from common.results import ResultFile
from common.snapshot import Snapshot
from common.user_record import OFFBOARDED_AT
from litellm_client import Key, LiteLLMClient, User

UNDO_COLUMNS = ("email", "role", "team_name", "user_id", *user_record.ACCESS_COLUMNS)


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
    /user/info shows, before it goes)."""
    snapshot.add_details(proxy, deleted)
    users = [snapshot.users_by_id[user_id] for user_id in touched]
    metadata = sorted(
        {name for user in users for name in (user.metadata or {}) if name != OFFBOARDED_AT and name.strip()}
    )
    known = [column for column in UNDO_COLUMNS if any(snapshot.knows(user, column) for user in users)]
    columns = [
        *known,  # a column known for no user is left out; a cell not known is left empty (kept)
        *(METADATA_PREFIX + name for name in metadata),
        "keys_lost",
    ]
    aliases = {user_id: [key.alias for key in keys] for user_id, keys in keys_lost.items()}
    return _write(output_dir / f"{name}_undo.csv", columns, (_row(user, snapshot, columns, aliases) for user in users))


def _write(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    undo = ResultFile(path, columns, private=True)
    for row in rows:
        undo.write(row)
    undo.sync()
    undo.close()
    return undo.path


def _row(
    user: User, snapshot: Snapshot, columns: Sequence[str], keys_lost: Mapping[str, Sequence[str | None]]
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
