#!/usr/bin/env python3
"""Delete (or block) the LiteLLM users a CSV file lists, by email or user_id, with their API keys.

Manual: docs/del_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from common import csv_input, exits, lease, options, script, undo
from common.actions import Action
from common.deletions import apply_deletions, plan_deletions, summary
from common.journal import Journal
from common.results import Report, closing_notes
from common.run_report import RUN
from common.runner import Runner
from common.snapshot import Names, Snapshot
from litellm_client import FEW_LOOKUPS

COLUMNS = ("email", "user_id")
RESULT_COLUMNS = ("email", "user_id", "status", "keys_deleted", "keys_blocked", "detail", "error_reason")
ERROR_COLUMNS = ("line", *COLUMNS, "error_reason")
EXAMPLES = """\
  python del_user.py --dry-run                          # who would go from user_dellist.csv, with key counts
  python del_user.py --csv-file leavers.csv --block     # block their keys instead: reversible
  python del_user.py --csv-file leavers.csv --purge-after 30d   # delete those blocked 30 days ago or more
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser(__doc__.splitlines()[0], examples=EXAMPLES, csv_default="user_dellist.csv")
    p.add_argument(
        "--all-matches",
        action="store_true",
        help="where several users share an email (older proxies allow it), take them all (default: a row error)",
    )
    p.add_argument(
        "--block",
        action="store_true",
        help="block the users' keys and mark them offboarded instead of deleting them (undone by listing them "
        "again for sync_user.py)",
    )
    options.add_purge_after_option(
        p, help_text="delete only the listed users blocked at least this long ago (30d, 1mo, ...); keep the others"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = options.Settings.from_args(args)
    rows = csv_input.read_rows(args.csv_file, COLUMNS, encoding=args.encoding, required=("email", "user_id"))
    with (
        settings.connect(read_only=args.dry_run) as proxy,
        lease.hold(proxy, "del_user.py", writes=not args.dry_run and bool(rows)) as held,
    ):
        # the undo file names each user's teams and keys: a file of more than a few rows has every
        # key listed beside the users where that takes no more requests than it has rows (the
        # first page says; on a proxy with more pages of keys, that page is the one more request)
        many = bool(held) and len(rows) > FEW_LOOKUPS
        journal = Journal(args.output_dir, "user_del")
        named = Names.of([*((row["email"], row["user_id"]) for row in rows), *journal.leftovers_named()])
        snapshot = Snapshot.load(proxy, named=named, teams=bool(held), keys_within=len(rows) if many else 0)
        now = datetime.now(timezone.utc)
        plan = plan_deletions(
            rows,
            snapshot,
            all_matches=args.all_matches,
            block=args.block,
            purge_after=args.purge_after,
            now=now,
            in_flight=journal.leftovers,
        )
        csv_input.stop_if_strict(args.strict, args.csv_file, plan.failures)
        keys = snapshot.keys_of(proxy, [r.user for r in plan.removals if r.action is Action.BLOCK or held])
        if args.dry_run:
            print(plan.describe(args.csv_file, keys))
            RUN.counts = plan.counts(keys)
            return exits.of_plan(failed=bool(plan.failures))
        undo_file = None
        if plan.removals:
            deleted = [r.user.user_id for r in plan.removals if r.action.deletes]
            lost = {user_id: keys.get(user_id, []) for user_id in deleted}
            touched = [r.user.user_id for r in plan.removals]
            undo_file = undo.write_undo(args.output_dir, "user_del", proxy, snapshot, touched, lost, deleted=deleted)
        with (
            Report(
                args.output_dir,
                "user_del",
                result_columns=RESULT_COLUMNS,
                error_columns=ERROR_COLUMNS,
                words=("deleted", "blocked", "kept"),
            ) as report,
            Runner(workers=args.workers, quiet=args.quiet, watched=[proxy, *([held] if held else [])]) as runner,
        ):
            try:
                code = report.run(lambda: apply_deletions(plan, proxy, runner, report, keys, now, journal))
            finally:
                journal.close()
    print(summary(report.counts, report.failed, report.files()))
    for note in closing_notes(proxy, undo_file):
        print(note)
    return code


def run() -> int:
    """The command `litellm-del-user` (pip install .), and this file run as a script."""
    return script.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
