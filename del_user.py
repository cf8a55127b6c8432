#!/usr/bin/env python3
"""Delete (or block) the LiteLLM users a CSV file lists, by email or user_id, with their API keys.

Manual: docs/del_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from common import csv_input, exits, lease, options, removal, user_record
from common.csv_input import Row
from common.exits import Exit
from common.removal import BLOCK, DELETE, PURGE, Removal
from common.results import Report, plural
from common.runner import Interrupted, Runner
from common.snapshot import Snapshot
from litellm_client import PAGE_SIZE, Key, LiteLLMClient, ProxyError, User, chunks

COLUMNS = ("email", "user_id")
RESULT_COLUMNS = ("email", "user_id", "status", "keys_deleted", "keys_blocked", "detail")
ERROR_COLUMNS = ("line", *COLUMNS, "error_reason")
EXAMPLES = """\
  python del_user.py --dry-run                          # who would go from user_dellist.csv, with key counts
  python del_user.py --csv-file leavers.csv --block     # block their keys instead: reversible
  python del_user.py --csv-file leavers.csv --purge-after 30d   # delete those blocked 30 days ago or more
"""


@dataclass
class Plan:
    removals: list[Removal] = field(default_factory=list)
    kept: list[tuple[Row, User, str]] = field(default_factory=list)  # listed, but not removed: why
    failures: list[tuple[Row, str]] = field(default_factory=list)

    def describe(self, csv_file: str) -> str:
        lines = [f"Plan for {csv_file}:"]
        lines += [f"  - {r.user.email} (user_id: {r.user.user_id}, {r.describe()})" for r in self.removals]
        lines += [f"  = {user.email} (kept: {why})" for _, user, why in self.kept]
        lines += [f"  ! line {row.line} {row['email'] or row['user_id']}: {reason}" for row, reason in self.failures]
        deleted = [r for r in self.removals if r.how != BLOCK]
        blocked = [r for r in self.removals if r.how == BLOCK]
        lines.append(
            f"Users to delete: {len(deleted)} (with {plural(sum(r.user.key_count for r in deleted), 'API key')}), "
            f"to block: {len(blocked)} (with {plural(sum(r.user.key_count for r in blocked), 'API key')}), "
            f"kept: {len(self.kept)}, rows with errors: {len(self.failures)}."
        )
        return "\n".join(lines)


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
    p.add_argument(
        "--purge-after",
        metavar="DURATION",
        type=options.duration,
        help="delete only the listed users blocked at least this long ago (30d, 1mo, ...); keep the others",
    )
    return p.parse_args(argv)


def plan_deletions(
    rows: Sequence[Row],
    snapshot: Snapshot,
    *,
    all_matches: bool = False,
    block: bool = False,
    purge_after: str | None = None,
    now: datetime | None = None,
) -> Plan:
    """Resolve every row against one listing of the users; no request is made here.

    Without --purge-after each user is deleted (or blocked, with --block). With it, a user blocked
    that long ago is deleted; one not blocked is blocked with --block, kept otherwise; one blocked
    more recently is kept."""
    plan = Plan()
    planned: dict[str, int] = {}  # user_id -> line
    now = now or datetime.now(timezone.utc)
    for row in rows:
        try:
            if row.problem:
                raise ValueError(row.problem)
            users = _resolve(row, snapshot, all_matches)
            again = [user for user in users if user.user_id in planned]
            if again:
                raise ValueError(f"listed twice (first on line {planned[again[0].user_id]})")
        except ValueError as problem:
            plan.failures.append((row, str(problem)))
            continue
        for user in users:
            planned[user.user_id] = row.line
            how, why = _how(user, block, purge_after, now)
            if how:
                plan.removals.append(Removal(user, how, row))
            else:
                plan.kept.append((row, user, why))
    return plan


def _how(user: User, block: bool, purge_after: str | None, now: datetime) -> tuple[str | None, str]:
    """How a listed user is removed (None: kept), and why it is kept."""
    blocked_for = removal.blocked_for(user, now)
    if purge_after is None:
        if block and blocked_for is not None:
            return None, f"already blocked on {removal.offboarded_at(user)}"
        return (BLOCK if block else DELETE), ""
    if blocked_for is None:
        return (BLOCK, "") if block else (None, "not blocked: --purge-after deletes only blocked users")
    if blocked_for >= options.duration_seconds(purge_after):
        return PURGE, ""
    return None, f"blocked on {removal.offboarded_at(user)}, less than --purge-after {purge_after} ago"


def _resolve(row: Row, snapshot: Snapshot, all_matches: bool) -> list[User]:
    email = row["email"]
    if row["user_id"]:
        user = snapshot.users_by_id.get(row["user_id"])
        if user is None:
            raise ValueError(f"{user_record.USER_NOT_FOUND} (user_id {row['user_id']})")
        if email and user_record.email_key(user.email or "") != user_record.email_key(email):
            raise ValueError(f"user_id {user.user_id} belongs to {user.email or 'a user without email'}, not {email}")
        return [user]
    users = snapshot.users_by_email.get(user_record.email_key(user_record.parse_email(email)), [])
    if not users:
        raise ValueError(user_record.USER_NOT_FOUND)
    if len(users) > 1 and not all_matches:
        ids = ", ".join(user.user_id for user in users)
        raise ValueError(
            f"{len(users)} users have this email ({ids}): none removed; give a user_id or use --all-matches"
        )
    return users


def apply(
    plan: Plan, proxy: LiteLLMClient, runner: Runner, report: Report, keys: dict[str, list[Key]], now: datetime
) -> None:
    for row, reason in plan.failures:
        report.fail(row, reason)
    for row, user, why in plan.kept:
        report.done("Kept", email=user.email or row["email"], user_id=user.user_id, detail=why)

    def values(r: Removal) -> dict[str, Any]:
        return {"email": r.user.email or (r.row["email"] if r.row else ""), "user_id": r.user.user_id}

    def delete(batch: Sequence[Removal]) -> None:
        by_id = {r.user.user_id: r for r in batch}
        try:
            outcome = proxy.delete_user_batch([r.user for r in batch])
        except ProxyError as exc:
            for r in batch:
                report.fail(r.row, str(exc), **values(r))
            return
        for user in outcome.deleted:
            purged = by_id[user.user_id].how == PURGE
            detail = f"purged: blocked on {removal.offboarded_at(user)}" if purged else ""
            report.done("Deleted", **values(by_id[user.user_id]), keys_deleted=user.key_count, detail=detail)
            report.tally("keys deleted", user.key_count)
            report.tally("purged", purged)
        for user in outcome.unconfirmed:
            report.done(
                "Deleted",
                **values(by_id[user.user_id]),
                keys_deleted=user.key_count,
                detail="the proxy's answer was lost; the user was gone afterwards (deleted by this run, or by "
                "someone else at the same time)",
            )
            report.tally("keys deleted", user.key_count)
        for user in outcome.missing:
            report.fail(
                by_id[user.user_id].row,
                f"{user_record.USER_NOT_FOUND} (deleted by someone else during this run)",
                **values(by_id[user.user_id]),
            )
        for user_id, reason in outcome.failed.items():
            report.fail(by_id[user_id].row, reason, **values(by_id[user_id]))

    def block(r: Removal) -> None:
        try:
            count = removal.block(proxy, r.user, keys.get(r.user.user_id, []), now)
        except ProxyError as exc:
            report.fail(r.row, f"not blocked: {exc}", **values(r))
            return
        report.done("Blocked", **values(r), keys_blocked=count, detail=f"offboarded_at {removal.now_mark(now)}")
        report.tally("keys blocked", count)

    def not_started(stop: Interrupted, removals: Sequence[Removal]) -> None:
        for r in removals:
            report.fail(r.row, f"not started: {stop.reason}", **values(r))

    blocks = [r for r in plan.removals if r.how == BLOCK]
    deletions = [r for r in plan.removals if r.how != BLOCK]
    try:
        runner.parallel(blocks, block, "users blocked")
    except Interrupted as stop:
        not_started(stop, [*stop.not_started, *deletions])
        raise
    try:
        runner.parallel(list(chunks(deletions, proxy.delete_batch_size)), delete, "users deleted", size=len)
    except Interrupted as stop:
        not_started(stop, [r for batch in stop.not_started for r in batch])
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = options.Settings.from_args(args)
    rows = csv_input.read_rows(args.csv_file, COLUMNS, encoding=args.encoding, required=("email", "user_id"))
    with (
        settings.connect(read_only=args.dry_run) as proxy,
        lease.hold(proxy, "del_user.py", writes=not args.dry_run and bool(rows)) as held,
    ):
        # the undo file names each user's teams and keys: a file of a page of users or more has
        # every key listed beside the users, where that takes no more requests than it has rows
        many = bool(held) and len(rows) >= PAGE_SIZE
        snapshot = Snapshot.load(proxy, teams=bool(held), keys_within=len(rows) if many else 0)
        now = datetime.now(timezone.utc)
        plan = plan_deletions(
            rows, snapshot, all_matches=args.all_matches, block=args.block, purge_after=args.purge_after, now=now
        )
        csv_input.stop_if_strict(args.strict, args.csv_file, plan.failures)
        if args.dry_run:
            print(plan.describe(args.csv_file))
            return Exit.ROW_FAILED if plan.failures else Exit.OK
        keys = snapshot.keys_of(proxy, [r.user for r in plan.removals])
        undo = None
        if plan.removals:
            lost = {
                r.user.user_id: [k.alias or "" for k in keys.get(r.user.user_id, [])]
                for r in plan.removals
                if r.how != BLOCK
            }
            snapshot.add_details(proxy, [r.user.user_id for r in plan.removals if r.how != BLOCK])
            users = [snapshot.users_by_id[r.user.user_id] for r in plan.removals]
            undo = removal.undo_file(args.output_dir, "user_del", users, snapshot, lost)
        with (
            Report(args.output_dir, "user_del", result_columns=RESULT_COLUMNS, error_columns=ERROR_COLUMNS) as report,
            Runner(workers=args.workers, quiet=args.quiet, watched=[proxy, *([held] if held else [])]) as runner,
        ):
            code = report.run(lambda: apply(plan, proxy, runner, report, keys, now))
    counts = report.counts
    blocked = (
        f", blocked {plural(counts['Blocked'], 'user')} ({plural(counts['keys blocked'], 'key')})"
        if counts["Blocked"]
        else ""
    )
    kept = f", kept {counts['Kept']}" if counts["Kept"] else ""
    purged = f" ({counts['purged']} purged)" if counts["purged"] else ""
    print(
        f"Deleted {plural(counts['Deleted'], 'user')}{purged} with {plural(counts['keys deleted'], 'API key')}"
        f"{blocked}{kept}, "
        f"failed {report.failed}; {report.files()}."
    )
    if undo:
        print(f"Undo file: {undo} (to restore: python sync_user.py --csv-file {undo} --no-delete)")
    return code


if __name__ == "__main__":
    sys.exit(exits.run(main))
