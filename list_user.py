#!/usr/bin/env python3
"""List LiteLLM users (every page), filter them, and export them as TSV, CSV, JSON or a table.

Manual: docs/list_user_manual.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from common import options, removal, script, team_record, user_record
from common.csv_input import METADATA_PREFIX
from common.exits import Exit, UsageError
from common.results import cell, plural
from common.run_report import RUN
from common.runner import Progress
from common.snapshot import Snapshot
from litellm_client import ROLES, LiteLLMClient, Team, User

DEFAULT_COLUMNS = "user_id,user_email,user_role,teams,created_at,updated_at"
TEAM_COLUMNS = "team_name,team_id,max_budget,budget_duration,models,tpm_limit,rpm_limit,members,admins,spend"
COLUMN_ALIASES = {"email": "user_email", "role": "user_role"}
PLACEHOLDER = "default_user_id"  # LiteLLM's stand-in for the master key on the teams it creates: not a member
EXAMPLES = """\
  python list_user.py --format table --columns email,role,team_name,max_budget,models
  python list_user.py --offboarded --columns email,user_id,offboarded_at    # the blocked users
  python list_user.py --format csv --columns email,role,team_name,max_budget --output user_list.csv   # for sync
"""


def _column_values(snapshot: Snapshot) -> dict[str, Callable[[User], Any]]:
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


def _team_values(emails: dict[str, str]) -> dict[str, Callable[[Team], Any]]:
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


VALID_COLUMNS = [*_column_values(Snapshot([], [])), *COLUMN_ALIASES, "metadata.<name>"]
VALID_TEAM_COLUMNS = [*_team_values({}), "metadata.<name>"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser(__doc__.splitlines()[0], examples=EXAMPLES, writes=False)
    p.add_argument(
        "--teams",
        action="store_true",
        help=f"list teams instead of users (default columns: {TEAM_COLUMNS}); an export syncs back with "
        "sync_user.py --teams-file",
    )
    p.add_argument("--role", choices=ROLES, help="only users with this role")
    p.add_argument("--email-like", metavar="TEXT", help="only users whose email contains TEXT (any case)")
    p.add_argument("--team", metavar="ALIAS_OR_ID", help="only members of this team")
    p.add_argument("--offboarded", action="store_true", help="only users blocked by an offboarding (offboarded_at set)")
    p.add_argument(
        "--where",
        metavar="COLUMN=VALUE",
        action="append",
        default=[],
        help="only users whose COLUMN shows exactly VALUE, as the CSV export writes it (repeatable; "
        "e.g. metadata.cost_center=cc-42, max_budget=25, models= for no restriction)",
    )
    p.add_argument(
        "--show-all",
        action="store_true",
        help="also users without an email or without one of the four roles (hidden by default)",
    )
    p.add_argument(
        "--columns",
        help=f"comma-separated (default: {DEFAULT_COLUMNS}); any of: {', '.join(VALID_COLUMNS)}; with --teams, "
        f"any of: {', '.join(VALID_TEAM_COLUMNS)}",
    )
    p.add_argument("--format", choices=("tsv", "csv", "json", "table"), default="tsv", help="(default: %(default)s)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout (replaced only once complete)")
    return p.parse_args(argv)


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


def list_teams(proxy: LiteLLMClient, columns: list[str], where: list[tuple[str, str]], args: argparse.Namespace) -> int:
    """Every team (every page; the lease's hidden), in the teams file's columns: how many listed."""
    teams = Snapshot([], proxy.teams()).teams
    admins = sorted({user_id for team in teams for user_id in team.admin_ids} - {PLACEHOLDER})
    emails = {user_id: user.email for user_id, user in proxy.existing(admins).items() if user.email} if admins else {}
    values = _team_values(emails)
    shown = [t for t in teams if all(text(value_of(name, values)(t)) == wanted for name, wanted in where)]
    with destination(args.output) as out:
        write(sorted(shown, key=lambda t: (t.alias or "", t.team_id)), columns, values, args.format, out)
    return len(shown)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    valid = VALID_TEAM_COLUMNS if args.teams else VALID_COLUMNS
    columns = parse_columns(args.columns or (TEAM_COLUMNS if args.teams else DEFAULT_COLUMNS), valid)
    where = parse_where(args.where, valid)
    user_filters = {"--role": args.role, "--email-like": args.email_like, "--team": args.team,
                    "--offboarded": args.offboarded, "--show-all": args.show_all}  # fmt: skip
    if args.teams and any(user_filters.values()):
        used = ", ".join(flag for flag, value in user_filters.items() if value)
        raise UsageError(f"ERROR: {used} filter users: with --teams, use --where.")
    settings = options.Settings.from_args(args)
    if args.teams:
        with settings.connect(read_only=True) as proxy:
            listed = list_teams(proxy, columns, where, args)
        print(f"{plural(listed, 'team')} listed.", file=sys.stderr)
        RUN.counts = {"listed": listed}
        return Exit.OK
    with settings.connect(read_only=True) as proxy:
        names = [*columns, *(name for name, _ in where)]
        needs_teams = bool(args.team) or "team_name" in names or user_record.ADMIN_OF in names  # only when used
        snapshot = Snapshot(users=[], teams=proxy.teams() if needs_teams else [])
        team_id = team_filter(args.team, snapshot)
        pages = proxy.users(role=args.role, email_contains=args.email_like, team_id=team_id)
        values = _column_values(snapshot)
        progress = Progress(pages.total, "users read", quiet=args.quiet)
        shown = hidden = 0

        def matches(user: User) -> bool:
            """The filters, applied here too: older proxies ignore some, or match differently."""
            if args.role and user.role != args.role:
                return False
            if args.email_like and args.email_like.lower() not in (user.email or "").lower():
                return False
            if args.offboarded and not removal.offboarded_at(user):
                return False
            if any(text(value_of(name, values)(user)) != wanted for name, wanted in where):
                return False
            return not team_id or team_id in user.teams

        def selected() -> Iterator[User]:
            nonlocal shown, hidden
            for user in pages:
                progress.advance()
                if not matches(user):
                    continue
                if not args.show_all and not user.is_managed:
                    hidden += 1
                else:
                    shown += 1
                    yield user

        with destination(args.output) as out:
            write(selected(), columns, values, args.format, out)
    note = f"; {hidden} more without an email or one of the four roles (--show-all shows them)" if hidden else ""
    count = (
        f"the proxy counts {pages.total} for this filter"
        if not pages.unfiltered
        else f"the proxy sent {pages.total} (it does not apply this filter itself: it was applied here)"
    )
    print(f"{plural(shown, 'user')} listed{note}; {count}.", file=sys.stderr)
    RUN.counts = {"listed": shown, "hidden": hidden}
    return Exit.OK


def run() -> int:
    """The command `litellm-list-user` (pip install .), and this file run as a script."""
    return script.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
