#!/usr/bin/env python3
"""Create LiteLLM users from a CSV file, each with its role, team(s), access columns and an API key.

Manual: docs/add_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from common import csv_input, exits, lease, options, script, team_apply, team_record, user_record
from common.additions import apply_additions, invitation_base, plan_additions
from common.csv_input import Row
from common.exits import Exit
from common.journal import Journal
from common.results import Report, closing_notes, plural
from common.run_report import RUN
from common.runner import Runner
from common.snapshot import Names, Snapshot

COLUMNS = (
    "email",
    "role",
    "team_name",
    user_record.ADMIN_OF,
    "key_name",
    "key_duration",
    "user_id",
    "user_state",
    *user_record.ACCESS_COLUMNS,
)
RESULT_COLUMNS = ("email", "role", "user_id", "team_name", "models", "api_keys", "invitation_url", "status")
EXAMPLES = """\
  python add_user.py --dry-run                          # check user_addlist.csv, change nothing
  python add_user.py --csv-file new_hires.csv --create-teams --invite
  python add_user.py --skip-existing                    # finish a run that was interrupted
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser(__doc__.splitlines()[0], examples=EXAMPLES, csv_default="user_addlist.csv")
    options.add_role_option(p)
    p.add_argument("--create-teams", action="store_true", help="create teams that do not exist (default: a row error)")
    options.add_teams_file_option(
        p,
        help_text="with --create-teams: create the teams this CSV lists that do not exist, with their settings "
        "(max_budget, budget_duration, models, tpm_limit, rpm_limit, metadata.<name>); existing teams are left "
        "as they are (sync_user.py --teams-file changes them)",
    )
    p.add_argument(
        "--skip-existing", action="store_true", help="record users that already exist as skipped, not as errors"
    )
    p.add_argument("--no-key", action="store_true", help="create the users without API keys")
    p.add_argument(
        "--key-duration",
        type=options.litellm_duration,
        help="how long each new key lasts (30d, 1mo, ...), for rows without a key_duration cell (default: no expiry)",
    )
    p.add_argument("--invite", action="store_true", help="also create a password-setup invitation link per new user")
    p.add_argument(
        "--public-url",
        help="the proxy's URL as your users reach it, for invitation links (env LITELLM_PUBLIC_URL; "
        "default: the URL the proxy reports, else --base-url)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = options.Settings.from_args(args)
    rows = csv_input.read_rows(args.csv_file, COLUMNS, encoding=args.encoding, metadata=True)
    team_rows = team_record.read(args.teams_file, args.encoding) if args.teams_file else []
    with (
        settings.connect(read_only=args.dry_run) as proxy,
        lease.hold(proxy, "add_user.py", writes=not args.dry_run and bool(rows)) as held,
    ):
        journal = Journal(args.output_dir, "user_reg")
        snapshot = Snapshot.load(
            proxy,
            named=Names.of(
                [*((row["email"], row["user_id"]) for row in rows), *journal.leftovers_named()],
                creating=not args.skip_existing and not args.dry_run,  # a dry run reads every user it names
            ),
            key_aliases=[] if args.no_key else sorted({row["key_name"] for row in rows if row["key_name"]}),
            models=any(row["models"] for row in [*rows, *team_rows]),
        )
        teams = team_record.plan_teams(team_rows, snapshot.teams, models=snapshot.models, rules=snapshot.rules)
        if not args.create_teams:
            teams.drop_creates("not created: add_user.py creates teams only with --create-teams")
        snapshot = snapshot.with_teams(teams.with_creates(snapshot.teams))
        plan = plan_additions(
            rows,
            snapshot,
            default_role=args.user_role,
            skip_existing=args.skip_existing,
            create_teams=args.create_teams,
            with_key=not args.no_key,
            key_duration=args.key_duration,
            inflight=journal.leftovers,
        )
        csv_input.stop_if_strict(args.strict, args.csv_file, plan.failures)
        csv_input.stop_if_strict(args.strict, str(args.teams_file), teams.failures)
        for note in teams.left_alone(args.teams_file):
            print(note)
        if args.dry_run:
            print(plan.describe(args.csv_file, args.user_role, teams if team_rows else None, str(args.teams_file)))
            RUN.counts = plan.counts() | teams.counts()
            return exits.of_plan(failed=bool(plan.failures or teams.failures))
        invitations, why = invitation_base(settings, proxy) if args.invite else (None, "")
        input_columns = [c for c in _columns(rows) if c not in (*COLUMNS[:4], "user_id", "user_state")]
        set_columns = [c for c in input_columns if user_record.is_field(c) and c not in RESULT_COLUMNS]
        if not args.no_key and any(add.spec.key_duration for add in plan.additions):
            set_columns.append("key_duration")
        with (
            Report(
                args.output_dir,
                "user_reg",
                result_columns=[*RESULT_COLUMNS, *set_columns, "error_reason"],
                error_columns=["line", *COLUMNS[:4], *input_columns, "user_id", "user_state", "error_reason"],
                holds_keys=not args.no_key,
                words=("created", "skipped"),
            ) as report,
            team_apply.report(args.output_dir, "user_reg") if team_rows else nullcontext() as team_report,
            Runner(workers=args.workers, quiet=args.quiet, watched=[proxy, held] if held else [proxy]) as runner,
        ):

            def work() -> None:
                broken = team_apply.apply_teams(teams, proxy, runner, team_report, update=False) if team_report else {}
                apply_additions(
                    plan,
                    proxy,
                    runner,
                    report,
                    journal,
                    with_key=not args.no_key,
                    invitations=invitations,
                    broken=broken,
                )

            try:
                code = report.run(work)
            finally:
                journal.close()
    if team_report:
        print(f"Teams: created {team_report.counts['teams created']}; failed {team_report.failed}; "
              f"results in {team_report.results.path}.")  # fmt: skip
        code = code or (Exit.ROW_FAILED if team_report.failed else Exit.OK)
    defaults = f" ({plan.default_role_rows} got the default role {args.user_role})" if plan.default_role_rows else ""
    print(
        f"Created {plural(report.counts['created'], 'user')}{defaults}, skipped {report.counts['skipped']}, "
        f"failed {report.failed}; {report.files()}."
    )
    if invitations:
        print(f"Invitation links start with {invitations} ({why}).")
    for note in closing_notes(proxy, None):
        print(note)
    return code


def _columns(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(column for row in rows for column in row.cells))


def run() -> int:
    """The command `litellm-add-user` (pip install .), and this file run as a script."""
    return script.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
