#!/usr/bin/env python3
"""List LiteLLM users (every page), filter them, and export them as TSV, CSV, JSON or a table.

Manual: docs/list_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from common import listing, options, removal, script, user_record
from common.exits import Exit, UsageError
from common.listing import DEFAULT_COLUMNS, PLACEHOLDER, TEAM_COLUMNS, VALID_COLUMNS, VALID_TEAM_COLUMNS
from common.results import plural
from common.run_report import RUN
from common.runner import Progress
from common.snapshot import Snapshot
from litellm_client import ROLES, LiteLLMClient, User

EXAMPLES = """\
  python list_user.py --format table --columns email,role,team_name,max_budget,models
  python list_user.py --offboarded --columns email,user_id,offboarded_at    # the blocked users
  python list_user.py --format csv --columns email,role,team_name,max_budget --output user_list.csv   # for sync
"""


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


def list_teams(proxy: LiteLLMClient, columns: list[str], where: list[tuple[str, str]], args: argparse.Namespace) -> int:
    """Every team (every page; the lease's hidden), in the teams file's columns: how many listed."""
    teams = Snapshot([], proxy.teams()).teams
    admins = sorted({user_id for team in teams for user_id in team.admin_ids} - {PLACEHOLDER})
    emails = {user_id: user.email for user_id, user in proxy.existing(admins).items() if user.email} if admins else {}
    values = listing.team_values(emails)
    shown = [
        t for t in teams if all(listing.text(listing.value_of(name, values)(t)) == wanted for name, wanted in where)
    ]
    with listing.destination(args.output) as out:
        listing.write(sorted(shown, key=lambda t: (t.alias or "", t.team_id)), columns, values, args.format, out)
    return len(shown)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    valid = VALID_TEAM_COLUMNS if args.teams else VALID_COLUMNS
    columns = listing.parse_columns(args.columns or (TEAM_COLUMNS if args.teams else DEFAULT_COLUMNS), valid)
    where = listing.parse_where(args.where, valid)
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
        team_id = listing.team_filter(args.team, snapshot)
        pages = proxy.users(role=args.role, email_contains=args.email_like, team_id=team_id)
        values = listing.user_values(snapshot)
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
            if any(listing.text(listing.value_of(name, values)(user)) != wanted for name, wanted in where):
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

        with listing.destination(args.output) as out:
            listing.write(selected(), columns, values, args.format, out)
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
