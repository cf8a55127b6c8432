#!/usr/bin/env python3
"""List LiteLLM users (every page), filter them, and export them as TSV, CSV, JSON or a table.

Manual: docs/list_user_manual.md
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import cli_common as cli
from litellm_client import ROLES, User

DEFAULT_COLUMNS = "user_id,user_email,user_role,teams,created_at,updated_at"
COLUMN_ALIASES = {"email": "user_email", "role": "user_role"}
EXAMPLES = """\
  python list_user.py --format table
  python list_user.py --role internal_user --team engineering --columns email,role,key_count
  python list_user.py --format csv --columns email,role,team_name --output user_list.csv   # sync_user.py's input
"""


def _column_values(teams: dict[str, str]) -> dict[str, Callable[[User], Any]]:
    """What each column shows; nothing else of a user (no password or secret) is ever printed.
    Teams are sorted, so two exports of the same state are the same file."""
    return {
        "user_id": lambda u: u.user_id,
        "user_email": lambda u: u.email,
        "user_role": lambda u: u.role,
        "teams": lambda u: sorted(u.teams),
        "team_name": lambda u: sorted(teams.get(team, team) for team in u.teams),
        "key_count": lambda u: u.key_count,
        "max_budget": lambda u: u.max_budget,
        "spend": lambda u: u.spend,
        "models": lambda u: list(u.models),
        "user_alias": lambda u: u.user_alias,
        "created_at": lambda u: u.created_at,
        "updated_at": lambda u: u.updated_at,
    }


VALID_COLUMNS = [*_column_values({}), *COLUMN_ALIASES]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.parser(__doc__.splitlines()[0], examples=EXAMPLES, writes=False)
    p.add_argument("--role", choices=ROLES, help="only users with this role")
    p.add_argument("--email-like", metavar="TEXT", help="only users whose email contains TEXT (any case)")
    p.add_argument("--team", metavar="ALIAS_OR_ID", help="only members of this team")
    p.add_argument(
        "--show-all",
        action="store_true",
        help="also users without an email or without one of the four roles (hidden by default)",
    )
    p.add_argument(
        "--columns",
        default=DEFAULT_COLUMNS,
        help=f"comma-separated (default: %(default)s); any of: {', '.join(VALID_COLUMNS)}",
    )
    p.add_argument("--format", choices=("tsv", "csv", "json", "table"), default="tsv", help="(default: %(default)s)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    return p.parse_args(argv)


def parse_columns(text: str) -> list[str]:
    columns = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in columns if name not in VALID_COLUMNS]
    if unknown or not columns:
        raise cli.UsageError(
            f"ERROR: unknown column(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(VALID_COLUMNS)}"
        )
    return columns


def team_filter(team: str | None, state: cli.ProxyState) -> str | None:
    """A team id from --team: an id as it is, an alias if exactly one team has it."""
    if not team or team in state.teams_by_id:
        return team
    try:
        return state.find_team(team).team_id
    except ValueError as problem:
        raise cli.UsageError(f"ERROR: --team: {problem}") from None


def matches(user: User, args: argparse.Namespace, team_id: str | None) -> bool:
    """The filters, applied here too: older proxies ignore some, or match differently."""
    if args.role and user.role != args.role:
        return False
    if args.email_like and args.email_like.lower() not in (user.email or "").lower():
        return False
    return not team_id or team_id in user.teams


def write(
    users: Iterable[User],
    columns: list[str],
    values: dict[str, Callable[[User], Any]],
    args: argparse.Namespace,
    out: IO[str],
) -> None:
    fields = [values[COLUMN_ALIASES.get(name, name)] for name in columns]
    records = ([field(user) for field in fields] for user in users)
    if args.format == "json":
        out.write("[")
        for n, record in enumerate(records):
            out.write(
                ("," if n else "") + "\n  " + json.dumps(dict(zip(columns, record, strict=True)), ensure_ascii=False)
            )
        out.write("\n]\n")
    elif args.format == "table":
        rows = [columns] + [[_text(value) for value in record] for record in records]
        widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
        for row in rows:
            out.write("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() + "\n")
    else:
        writer = csv.writer(out, delimiter="\t" if args.format == "tsv" else ",", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([cli.cell(value) for value in record] for record in records)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ";".join(value)
    return "" if value is None else str(value)


@contextmanager
def destination(path: str | None) -> Iterator[IO[str]]:
    if not path:
        yield sys.stdout
        return
    try:
        with open(path, "w", newline="", encoding="utf-8") as out:
            yield out
    except OSError as exc:
        raise cli.UsageError(f"ERROR: cannot write '{path}': {exc.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    columns = parse_columns(args.columns)
    settings = cli.Settings.from_args(args)
    with settings.connect(read_only=True) as proxy:
        needs_teams = bool(args.team) or "team_name" in columns  # one /team/list, only when it is used
        state = cli.ProxyState(users=[], teams=proxy.teams() if needs_teams else [])
        team_id = team_filter(args.team, state)
        pages = proxy.users(role=args.role, email_contains=args.email_like, team_id=team_id)
        values = _column_values({team.team_id: team.alias or team.team_id for team in state.teams})
        progress = cli.Progress(pages.total, "users read", quiet=args.quiet)
        shown = hidden = 0

        def selected() -> Iterator[User]:
            nonlocal shown, hidden
            for user in pages:
                progress.advance()
                if not args.show_all and not user.is_managed:
                    hidden += 1
                elif matches(user, args, team_id):
                    shown += 1
                    yield user

        with destination(args.output) as out:
            write(selected(), columns, values, args, out)
    note = f"; {hidden} more without an email or one of the four roles (--show-all shows them)" if hidden else ""
    print(f"{shown} users listed{note}; the proxy counts {pages.total} for this filter.", file=sys.stderr)
    return cli.Exit.OK


if __name__ == "__main__":
    sys.exit(cli.run(main))
