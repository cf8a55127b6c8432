#!/usr/bin/env python3
"""Make the LiteLLM proxy's users match a CSV file: add, update, and delete or block, with a plan first.

Manual: docs/sync_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from contextlib import nullcontext

from common import addresses, csv_input, exits, lease, options, script, team_apply, team_record, undo
from common.actions import Action
from common.csv_input import Row
from common.exits import Exit, SafetyStop, UsageError
from common.journal import Journal
from common.results import Report, closing_notes, plural
from common.run_report import RUN
from common.runner import Runner
from common.snapshot import Names, Snapshot
from common.sync_apply import Sync
from common.sync_plan import DEFAULT_FLOOR, DEFAULT_SHARE, SyncOptions, delete_limit, keys_lost, plan_sync
from litellm_client import User

COLUMNS = undo.UNDO_COLUMNS  # undo files are written in this script's schema, to be fed back
RESULT_COLUMNS = (
    "action",
    "email",
    "user_id",
    "role",
    "team_name",
    "api_keys",
    "status",
    "error_reason",
    "line",
    "detail",
)
EXAMPLES = """\
  python sync_user.py --teams-file teams.csv --dry-run  # print the plan for user_list.csv and teams.csv
  python sync_user.py --remove block                    # apply it; users not in the file are blocked, not deleted
  python sync_user.py --check --quiet                   # exit 5 if the proxy drifted from the file (monitoring)
"""
REMOVE = {"delete": Action.DELETE, "block": Action.BLOCK}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser(__doc__.splitlines()[0], examples=EXAMPLES, csv_default="user_list.csv")
    options.add_role_option(p)
    p.add_argument("--no-add", action="store_true", help="do not add users missing from the proxy")
    p.add_argument(
        "--no-update", action="store_true", help="do not change roles, teams or access columns, or reinstate"
    )
    p.add_argument("--no-delete", action="store_true", help="do not delete or block users missing from the file")
    p.add_argument(
        "--remove",
        choices=tuple(REMOVE),
        default="delete",
        help="what happens to managed users the file does not list: delete them with their keys, or block "
        "their keys and mark them offboarded (reversible) (default: %(default)s)",
    )
    options.add_purge_after_option(
        p, help_text="with --remove block: delete the users blocked at least this long ago (30d, 1mo, ...)"
    )
    options.add_teams_file_option(
        p,
        help_text="a CSV of teams (team_name, team_id, max_budget, budget_duration, models, tpm_limit, rpm_limit, "
        "metadata.<name>): create those missing and change the settings that differ, first; teams it does not "
        "name are left alone, none is deleted",
    )
    options.add_max_delete_option(p, default_text=f"{DEFAULT_SHARE:g}%%, but never fewer than {DEFAULT_FLOOR}")
    p.add_argument(
        "--check",
        action="store_true",
        help="only compare: print the plan, change nothing, exit 0 if the proxy matches the file, 5 if not",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.purge_after and args.remove != "block":
        raise UsageError("ERROR: --purge-after deletes users blocked long enough: it needs --remove block.")
    settings = options.Settings.from_args(args)
    rows = csv_input.read_rows(args.csv_file, COLUMNS, encoding=args.encoding, metadata=True)
    team_rows = team_record.read(args.teams_file, args.encoding) if args.teams_file else []
    if not rows and not args.no_delete:
        raise UsageError(
            f"ERROR: {args.csv_file} lists no users: a sync would delete every managed user. Nothing was changed "
            "(to delete users, list them for del_user.py)."
        )
    opts = SyncOptions(
        default_role=args.user_role,
        add=not args.no_add,
        update=not args.no_update,
        delete=not args.no_delete,
        remove=REMOVE[args.remove],
        purge_after=args.purge_after,
    )
    writes = not (args.dry_run or args.check)
    with (
        settings.connect(read_only=not writes) as proxy,
        lease.hold(proxy, "sync_user.py", writes=writes) as held,
    ):
        journal = Journal(args.output_dir, "user_sync")
        # without deletions the plan needs only the users the file names: looked up, where that is cheaper
        named = Names.of([*((row["email"], row["user_id"]) for row in rows), *journal.leftovers_named()])
        models = any(row["models"] for row in [*rows, *team_rows])
        snapshot = Snapshot.load(proxy, named=None if opts.delete else named, models=models)
        teams = team_record.plan_teams(team_rows, snapshot.teams, models=snapshot.models, rules=snapshot.rules)
        snapshot = snapshot.with_teams(teams.teams_after(snapshot.teams))  # the users' plan reads the teams as planned
        # some listings leave max_parallel_requests out: read the users whose rows set it
        snapshot.add_details(
            proxy, [user.user_id for row in rows if row["max_parallel_requests"] for user in _named(row, snapshot)]
        )
        plan = plan_sync(rows, snapshot, opts, journal.leftovers)
        csv_input.stop_if_strict(args.strict, args.csv_file, [(row, reason) for row, reason, _ in plan.failures])
        csv_input.stop_if_strict(args.strict, str(args.teams_file), teams.failures)
        # the keys the plan counts: those that leaving a team deletes, and those a block or a reinstatement switches
        switching = [c.user for c in [*plan.leaving(), *plan[Action.BLOCK], *plan[Action.REINSTATE]] if c.user]
        keys = snapshot.keys_of(proxy, switching)
        plan.count_team_keys(keys)
        print(plan.describe(snapshot, keys, teams if args.teams_file else None, args.teams_file), flush=True)
        limit, why = delete_limit(args.max_delete, plan.managed)
        if len(plan.removals) > limit:
            raise SafetyStop(
                f"STOPPED: the plan deletes or blocks {plural(len(plan.removals), 'user')}, more than the limit of "
                f"{limit} ({why}). Nothing was changed. Check {args.csv_file}; if this is intended, rerun with "
                f"--max-delete {len(plan.removals)}."
            )
        if not writes:
            RUN.counts = plan.counts() | teams.counts()
            drift = plan.changes_anything() or teams.changes_anything()
            return exits.of_plan(failed=bool(plan.failures or teams.failures), drift=args.check and drift)
        touched = [c for action in (Action.UPDATE, Action.REINSTATE) for c in plan[action]] + plan.removals
        unlisted = [c.user for c in touched if c.user and c.action.deletes and c.user_id not in keys]
        keys |= snapshot.keys_of(proxy, unlisted)
        teams_undo = team_apply.write_undo(args.output_dir, "user_sync", teams.changes)
        undo_file = None
        if touched or teams_undo:  # with the teams' undo file, the users' (maybe empty) to feed back beside it
            lost = {c.user_id: keys_lost(c, keys) for c in touched}
            deleted = [c.user_id for c in touched if c.action.deletes]
            ids = [c.user_id for c in touched]
            undo_file = undo.write_undo(args.output_dir, "user_sync", proxy, snapshot, ids, lost, deleted=deleted)
        with (
            Report(
                args.output_dir,
                "user_sync",
                result_columns=RESULT_COLUMNS,
                holds_keys=bool(plan[Action.ADD]),
                words=("added", "updated", "deleted", "unchanged"),
            ) as report,
            team_apply.report(args.output_dir, "user_sync") if args.teams_file else nullcontext() as team_report,
            Runner(workers=args.workers, quiet=args.quiet, watched=[proxy, *([held] if held else [])]) as runner,
        ):
            team_work = (teams, team_report) if team_report else None
            sync = Sync(plan, snapshot, proxy, runner, report, keys, opts.now, journal, team_work)
            try:
                code = report.run(sync.run)
            finally:
                journal.close()
    if team_report:
        print(f"Teams: {team_summary(team_report)}.")
        code = code or (Exit.ROW_FAILED if team_report.failed else Exit.OK)
    print(f"Sync done: {summary(report.counts)}; failed {report.failed}; {report.files()}.")
    for note in closing_notes(proxy, undo_file, teams_undo):
        print(note)
    return code


def _named(row: Row, snapshot: Snapshot) -> list[User]:
    return snapshot.users_by_email.get(addresses.key(row["email"]), [])


def summary(counts: Counter[str]) -> str:
    """What the run did, with key counts: 'added 2 (1 restored), ..., blocked 1 (2 keys), ...'."""
    notes = {
        Action.ADD: f"{counts['restored']} restored" if counts["restored"] else "",
        Action.REINSTATE: f"{plural(counts['keys unblocked'], 'key')} unblocked",
        Action.BLOCK: f"{plural(counts['keys blocked'], 'key')} blocked",
        Action.DELETE: f"{counts['purged']} purged, " * bool(counts["purged"])
        + f"{plural(counts['keys deleted'], 'key')}",
    }
    shown = (Action.ADD, Action.UPDATE, Action.REINSTATE, Action.BLOCK, Action.DELETE, Action.KEEP)
    return ", ".join(
        f"{action.word.lower()} {counts[action.word]}"
        + (f" ({notes[action]})" if counts[action.word] and notes.get(action) else "")
        for action in shown
        if counts[action.word] or action in (Action.ADD, Action.UPDATE, Action.DELETE, Action.KEEP)
    )


def team_summary(report: Report) -> str:
    counts = report.counts
    return (
        f"created {counts['teams created']}, updated {counts['teams updated']}, unchanged {counts['teams unchanged']}; "
        f"failed {report.failed}; results in {report.results.path}"
    )


def run() -> int:
    """The command `litellm-sync-user` (pip install .), and this file run as a script."""
    return script.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
