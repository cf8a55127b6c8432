"""What list_user.py shows: the columns of a user and of a team (each the JSON value; files and
tables show its text), the --columns and --where parsers, and the writers for each format. Nothing
else of a user (no password or secret) is ever printed. Lists are sorted, so two exports of the same
state are the same file, and a CSV export syncs back as no change."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from common import removal, team_record, user_record
from common.csv_input import METADATA_PREFIX
from common.exits import UsageError
from common.results import cell
from common.snapshot import Snapshot
from litellm_client import Team, User

DEFAULT_COLUMNS = "user_id,user_email,user_role,teams,created_at,updated_at"
TEAM_COLUMNS = "team_name,team_id,max_budget,budget_duration,models,tpm_limit,rpm_limit,members,admins,spend"
COLUMN_ALIASES = {"email": "user_email", "role": "user_role"}
PLACEHOLDER = "default_user_id"  # LiteLLM's stand-in for the master key on the teams it creates: not a member


def user_values(snapshot: Snapshot) -> dict[str, Callable[[User], Any]]:
    """What each column shows (the JSON value; files and tables show its text); nothing else of
    a user (no password or secret) is ever printed. Lists are sorted, so two exports of the same
    state are the same file."""
    return {
        "user_id": lambda u: u.user_id,
        "user_email": lambda u: u.email,
        "user_role": lambda u: u.role,
        "teams": lambda u: sorted(u.teams),
        "team_name": lambda u: sorted(snapshot.team_label(team) for team in snapshot.teams_of(u)),
        user_record.ADMIN_OF: lambda u: sorted(snapshot.team_label(team) for team in snapshot.admin_of(u)),
        "key_count": lambda u: u.key_count,
        **{column: _field_value(column) for column in user_record.ACCESS_COLUMNS},
        "models": lambda u: sorted(u.models),
        "spend": lambda u: u.spend,
        "offboarded_at": removal.offboarded_at,
        "state": lambda u: "offboarded" if removal.offboarded_at(u) else "active",
        user_record.METADATA: lambda u: user_record.own_metadata(u) or None,
        "created_at": lambda u: u.created_at,
        "updated_at": lambda u: u.updated_at,
    }


def _field_value(column: str) -> Callable[[User], Any]:
    def value(user: User) -> Any:
        current = user_record.field(column).current(user)
        return list(current) if isinstance(current, tuple) else current

    return value


def team_values(emails: dict[str, str]) -> dict[str, Callable[[Team], Any]]:
    """What each column of --teams shows; emails: of the teams' members, by user_id (an admin
    without one shows its id)."""
    return {
        team_record.TEAM_NAME: lambda t: t.alias,
        team_record.TEAM_ID: lambda t: t.team_id,
        **{column: _team_setting(column) for column in team_record.SETTINGS},
        "members": lambda t: len(t.member_ids - {PLACEHOLDER}),
        "admins": lambda t: sorted(emails.get(user_id, user_id) for user_id in t.admin_ids - {PLACEHOLDER}),
        "spend": lambda t: t.spend,
        user_record.METADATA: lambda t: {k: v for k, v in t.metadata.items() if v is not None} or None,
    }


def _team_setting(column: str) -> Callable[[Team], Any]:
    def value(team: Team) -> Any:
        current = team_record.field(column).current(team)
        return list(current) if isinstance(current, tuple) else current

    return value


VALID_COLUMNS = [*user_values(Snapshot([], [])), *COLUMN_ALIASES, "metadata.<name>"]
VALID_TEAM_COLUMNS = [*team_values({}), "metadata.<name>"]


def _known(name: str, valid: list[str]) -> bool:
    return name in valid or (name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX))


def parse_columns(text: str, valid: list[str]) -> list[str]:
    columns = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in columns if not _known(name, valid)]
    if unknown or not columns:
        raise UsageError(f"ERROR: unknown column(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(valid)}")
    return columns


def parse_where(conditions: list[str], valid: list[str]) -> list[tuple[str, str]]:
    parsed = []
    for condition in conditions:
        name, equals, value = condition.partition("=")
        if not equals or not _known(name.strip(), valid):
            raise UsageError(f"ERROR: --where '{condition}': expected COLUMN=VALUE, COLUMN one that --columns takes")
        parsed.append((name.strip(), value.strip()))
    return parsed


def team_filter(team: str | None, snapshot: Snapshot) -> str | None:
    """A team id from --team: an id as it is, an alias if exactly one team has it."""
    if not team:
        return None
    try:
        return snapshot.find_team(team).team_id
    except ValueError as problem:
        raise UsageError(f"ERROR: --team: {problem}") from None


def value_of(name: str, values: dict[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """A column's value of a user (or a team): metadata.<name> is the one metadata key."""
    name = COLUMN_ALIASES.get(name, name)
    if name in values:
        return values[name]
    return lambda holder: user_record.export(name, holder) or None


def text(value: Any) -> str:
    if isinstance(value, dict):
        return user_record.field(user_record.METADATA).text(value)
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    if isinstance(value, float):
        return user_record.show("max_budget", value)
    return "" if value is None else str(value)


def write(
    rows: Iterable[Any], columns: list[str], values: dict[str, Callable[[Any], Any]], fmt: str, out: IO[str]
) -> None:
    """Users (or teams) in a format, each column as value_of shows it."""
    fields = [value_of(name, values) for name in columns]
    records = ([field(row) for field in fields] for row in rows)
    if fmt == "json":
        out.write("[")
        for n, record in enumerate(records):
            out.write(
                ("," if n else "") + "\n  " + json.dumps(dict(zip(columns, record, strict=True)), ensure_ascii=False)
            )
        out.write("\n]\n")
    elif fmt == "table":
        rows = [columns] + [[text(value) for value in record] for record in records]
        widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
        for row in rows:
            out.write("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() + "\n")
    else:
        writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([cell(text(value)) for value in record] for record in records)


@contextmanager
def destination(path: str | None) -> Iterator[IO[str]]:
    """stdout, or FILE written beside itself and renamed over it only once the listing is complete:
    a listing that fails half way leaves the old file as it was."""
    if not path:
        yield sys.stdout
        return
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise UsageError(f"ERROR: cannot write '{path}': {exc.strerror}") from None
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            yield out
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
