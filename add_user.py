#!/usr/bin/env python3
"""Create LiteLLM users from a CSV file, each with its role, team(s) and an API key.

Manual: docs/add_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import cli_common as cli
from litellm_client import LiteLLMClient, ProxyError, User

COLUMNS = ("email", "role", "team_name", "key_name")
RESULT_COLUMNS = (
    "email",
    "role",
    "user_id",
    "team_name",
    "models",
    "api_keys",
    "invitation_url",
    "status",
    "error_reason",
)
ERROR_COLUMNS = ("line", *COLUMNS, "user_id", "error_reason")
EXAMPLES = """\
  python add_user.py --dry-run                          # check user_addlist.csv, change nothing
  python add_user.py --csv-file new_hires.csv --create-teams --invite
  python add_user.py --skip-existing                    # finish a run that was interrupted
"""


@dataclass(frozen=True)
class Addition:
    row: cli.Row
    email: str
    role: str | None  # None: no role is sent, the proxy's default applies
    teams: list[str]  # aliases
    key_alias: str | None


@dataclass
class Plan:
    additions: list[Addition] = field(default_factory=list)
    skipped: list[tuple[cli.Row, User]] = field(default_factory=list)
    failures: list[tuple[cli.Row, str]] = field(default_factory=list)
    new_teams: list[str] = field(default_factory=list)
    default_role_rows: int = 0

    def describe(self, args: argparse.Namespace) -> str:
        lines = [f"Plan for {args.csv_file}:"]
        lines += [f"  + team {alias}" for alias in self.new_teams]
        for add in self.additions:
            key = "none" if args.no_key else (add.key_alias or "(no alias)")
            lines.append(
                f"  + {add.email} (Role: {add.role or 'default'}, Teams: {';'.join(add.teams) or '-'}, Key: {key})"
            )
        lines += [f"  = {row['email']} (exists: skipped)" for row, _ in self.skipped]
        lines += [f"  ! line {row.line} {row['email']}: {reason}" for row, reason in self.failures]
        lines.append(
            f"Users to create: {len(self.additions)}, teams to create: {len(self.new_teams)}, "
            f"skipped: {len(self.skipped)}, rows with errors: {len(self.failures)}."
        )
        if self.default_role_rows:
            lines.append(f"{self.default_role_rows} row(s) have no role and get the default role {args.user_role}.")
        return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.parser(__doc__.splitlines()[0], examples=EXAMPLES, csv_default="user_addlist.csv")
    cli.add_role_option(p)
    p.add_argument("--create-teams", action="store_true", help="create teams that do not exist (default: a row error)")
    p.add_argument(
        "--skip-existing", action="store_true", help="record users that already exist as skipped, not as errors"
    )
    p.add_argument("--no-key", action="store_true", help="create the users without API keys")
    p.add_argument("--invite", action="store_true", help="also create a password-setup invitation link per new user")
    return p.parse_args(argv)


def plan_additions(rows: list[cli.Row], state: cli.ProxyState, args: argparse.Namespace) -> Plan:
    """Check every row against the file and the proxy's state; no request is made here."""
    plan = Plan()
    first_line: dict[str, int] = {}
    key_line: dict[str, int] = {}
    for row in rows:
        try:
            email = cli.parse_email(row["email"])
            if not email:
                raise ValueError(f"invalid email '{row['email']}'")
            if email.lower() in first_line:
                raise ValueError(f"duplicate email in the file (first on line {first_line[email.lower()]})")
            first_line[email.lower()] = row.line
            existing = state.users_by_email.get(email.lower())
            if existing and args.skip_existing:
                plan.skipped.append((row, existing[0]))
                continue
            if existing:
                raise ValueError(cli.USER_EXISTS)
            role, used_default = cli.parse_role(row["role"], args.user_role)
            teams = cli.split_teams(row["team_name"])
            for alias in teams:
                if state.teams_by_alias.get(alias):
                    state.find_team(alias)  # one team has it, or the row is ambiguous
                elif not args.create_teams:
                    raise ValueError(f"team '{alias}' does not exist (--create-teams creates it)")
                elif alias not in plan.new_teams:
                    plan.new_teams.append(alias)
            key_alias = None if args.no_key else row["key_name"] or None
            if key_alias in key_line:
                raise ValueError(f"duplicate key name in the file (first on line {key_line[key_alias]})")
            if key_alias:
                key_line[key_alias] = row.line
            if key_alias in state.key_aliases:
                raise ValueError(f"key name '{key_alias}' is already used on the proxy")
        except ValueError as problem:
            plan.failures.append((row, str(problem)))
            continue
        plan.default_role_rows += used_default
        plan.additions.append(Addition(row, email, role, teams, key_alias))
    return plan


def apply(
    plan: Plan, state: cli.ProxyState, proxy: LiteLLMClient, args: argparse.Namespace, report: cli.Report
) -> None:
    for row, reason in plan.failures:
        report.fail(row, reason)
    for row, user in plan.skipped:
        teams = ";".join(state.team_label(team) for team in user.teams)
        report.done("skipped", email=row["email"], role=user.role, user_id=user.user_id, team_name=teams)
    team_ids = {
        alias: state.find_team(alias).team_id
        for add in plan.additions
        for alias in add.teams
        if alias not in plan.new_teams
    }
    broken_teams: dict[str, str] = {}
    for alias in plan.new_teams:
        try:
            team_ids[alias] = proxy.create_team(alias).team_id
        except ProxyError as exc:
            broken_teams[alias] = f"team '{alias}' could not be created: {exc}"

    def add(addition: Addition) -> None:
        broken = [broken_teams[alias] for alias in addition.teams if alias in broken_teams]
        if broken:
            report.fail(addition.row, broken[0])
            return
        try:
            new = proxy.create_user(
                addition.email,
                role=addition.role,
                team_ids=[team_ids[alias] for alias in addition.teams],
                key_alias=addition.key_alias,
                with_key=not args.no_key,
            )
        except ProxyError as exc:
            report.fail(addition.row, cli.USER_EXISTS if exc.already_exists else str(exc), user_id=exc.user_id)
            return
        problems = [new.problem] if new.problem else []
        invitation = ""
        if args.invite:
            try:
                invitation = proxy.create_invitation(new.user_id)
            except ProxyError as exc:
                problems.append(f"invitation failed: {exc}")
        result = {
            "email": addition.email,
            "role": addition.role or "default",
            "user_id": new.user_id,
            "team_name": ";".join(addition.teams),
            "models": new.models,
            "api_keys": new.key,
            "invitation_url": invitation,
        }
        if problems:
            report.partly("created", "; ".join(problems), addition.row, **result)
        else:
            report.done("created", **result)

    progress = cli.Progress(len(plan.additions), "users created", quiet=args.quiet)
    try:
        cli.run_parallel(plan.additions, add, workers=args.workers, progress=progress, proxy=proxy)
    except cli.Interrupted as stop:
        for addition in stop.not_started:
            report.fail(addition.row, f"not started: {stop.reason}")
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = cli.Settings.from_args(args)
    rows = cli.read_rows(args.csv_file, COLUMNS, encoding=args.encoding)
    with settings.connect(read_only=args.dry_run) as proxy:
        check_keys = not args.no_key and any(row["key_name"] for row in rows)
        state = cli.ProxyState.load(proxy, key_aliases=check_keys)
        plan = plan_additions(rows, state, args)
        cli.stop_if_strict(args, plan.failures)
        if args.dry_run:
            print(plan.describe(args))
            return cli.Exit.ROW_FAILED if plan.failures else cli.Exit.OK
        with cli.Report(
            args.output_dir, "user_reg", result_columns=RESULT_COLUMNS, error_columns=ERROR_COLUMNS
        ) as report:
            code = report.run(lambda: apply(plan, state, proxy, args, report))
    defaults = f" ({plan.default_role_rows} got the default role {args.user_role})" if plan.default_role_rows else ""
    print(
        f"Created {report.counts['created']} users{defaults}, skipped {report.counts['skipped']}, "
        f"failed {report.failed}; {report.files()}."
    )
    return code


if __name__ == "__main__":
    sys.exit(cli.run(main))
