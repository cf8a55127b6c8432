#!/usr/bin/env python3
"""Delete the LiteLLM users a CSV file lists (by email, or by user_id), with their API keys.

Manual: docs/del_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import cli_common as cli
from litellm_client import BATCH_SIZE, LiteLLMClient, ProxyError, User, chunks

COLUMNS = ("email", "user_id")
RESULT_COLUMNS = ("email", "user_id", "status", "keys_deleted")
ERROR_COLUMNS = ("line", *COLUMNS, "error_reason")
EXAMPLES = """\
  python del_user.py --dry-run                          # who would go from user_dellist.csv, with key counts
  python del_user.py --csv-file leavers.csv
  python del_user.py --csv-file leavers.csv --all-matches   # also where several users share an email
"""


@dataclass(frozen=True)
class Deletion:
    row: cli.Row
    user: User


@dataclass
class Plan:
    deletions: list[Deletion] = field(default_factory=list)
    failures: list[tuple[cli.Row, str]] = field(default_factory=list)

    def describe(self, csv_file: str) -> str:
        lines = [f"Plan for {csv_file}:"]
        lines += [
            f"  - {d.user.email or d.row['email']} (user_id: {d.user.user_id}, keys: {d.user.key_count})"
            for d in self.deletions
        ]
        lines += [f"  ! line {row.line} {row['email'] or row['user_id']}: {reason}" for row, reason in self.failures]
        keys = sum(d.user.key_count for d in self.deletions)
        lines.append(
            f"Users to delete: {len(self.deletions)} (with {keys} API keys), rows with errors: {len(self.failures)}."
        )
        return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.parser(__doc__.splitlines()[0], examples=EXAMPLES, csv_default="user_dellist.csv")
    p.add_argument(
        "--all-matches",
        action="store_true",
        help="where several users share an email (older proxies allow it), delete them all (default: a row error)",
    )
    return p.parse_args(argv)


def plan_deletions(rows: list[cli.Row], state: cli.ProxyState, all_matches: bool) -> Plan:
    """Resolve every row against one listing of the users; no request is made here."""
    plan = Plan()
    planned: dict[str, int] = {}  # user_id -> line
    for row in rows:
        try:
            users = _resolve(row, state, all_matches)
            again = [user for user in users if user.user_id in planned]
            if again:
                raise ValueError(f"listed twice (first on line {planned[again[0].user_id]})")
        except ValueError as problem:
            plan.failures.append((row, str(problem)))
            continue
        for user in users:
            planned[user.user_id] = row.line
            plan.deletions.append(Deletion(row, user))
    return plan


def _resolve(row: cli.Row, state: cli.ProxyState, all_matches: bool) -> list[User]:
    email = row["email"]
    if row["user_id"]:
        user = state.users_by_id.get(row["user_id"])
        if user is None:
            raise ValueError(f"{cli.USER_NOT_FOUND} (user_id {row['user_id']})")
        if email and (user.email or "").lower() != email.lower():
            raise ValueError(f"user_id {user.user_id} belongs to {user.email or 'a user without email'}, not {email}")
        return [user]
    if not cli.parse_email(email):
        raise ValueError(f"invalid email '{email}'")
    users = state.users_by_email.get(email.lower(), [])
    if not users:
        raise ValueError(cli.USER_NOT_FOUND)
    if len(users) > 1 and not all_matches:
        ids = ", ".join(user.user_id for user in users)
        raise ValueError(
            f"{len(users)} users have this email ({ids}): none deleted; give a user_id or use --all-matches"
        )
    return users


def apply(plan: Plan, proxy: LiteLLMClient, args: argparse.Namespace, report: cli.Report, deleted: list[User]) -> None:
    for row, reason in plan.failures:
        report.fail(row, reason)
    rows = {d.user.user_id: d.row for d in plan.deletions}

    def delete(batch: list[Deletion]) -> None:
        try:
            outcome = proxy.delete_user_batch([d.user for d in batch])
        except ProxyError as exc:
            for d in batch:
                report.fail(d.row, str(exc), user_id=d.user.user_id)
            return
        deleted.extend(outcome.deleted)
        for user in outcome.deleted:
            report.done("Deleted", email=user.email, user_id=user.user_id, keys_deleted=user.key_count)
        for user in outcome.missing:
            report.fail(
                rows[user.user_id],
                f"{cli.USER_NOT_FOUND} (deleted by someone else during this run)",
                user_id=user.user_id,
            )

    batches = [list(batch) for batch in chunks(plan.deletions)]
    progress = cli.Progress(len(batches), f"batches of up to {BATCH_SIZE} users deleted", quiet=args.quiet)
    try:
        cli.run_parallel(batches, delete, workers=args.workers, progress=progress, proxy=proxy)
    except cli.Interrupted as stop:
        for batch in stop.not_started:
            for d in batch:
                report.fail(d.row, f"not started: {stop.reason}", user_id=d.user.user_id)
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = cli.Settings.from_args(args)
    rows = cli.read_rows(args.csv_file, COLUMNS, encoding=args.encoding, required=("email", "user_id"))
    with settings.connect(read_only=args.dry_run) as proxy:
        state = cli.ProxyState.load(proxy, teams=False)
        plan = plan_deletions(rows, state, args.all_matches)
        cli.stop_if_strict(args, plan.failures)
        if args.dry_run:
            print(plan.describe(args.csv_file))
            return cli.Exit.ROW_FAILED if plan.failures else cli.Exit.OK
        deleted: list[User] = []
        with cli.Report(
            args.output_dir, "user_del", result_columns=RESULT_COLUMNS, error_columns=ERROR_COLUMNS
        ) as report:
            code = report.run(lambda: apply(plan, proxy, args, report, deleted))
    keys = sum(user.key_count for user in deleted)
    print(f"Deleted {len(deleted)} users with {keys} API keys, failed {report.failed}; {report.files()}.")
    return code


if __name__ == "__main__":
    sys.exit(cli.run(main))
