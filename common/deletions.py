"""del_user.py's plan and its application: which users a file names (by email or user_id), how each
is taken off (deleted, blocked, purged, or kept), and one result or error row per row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from common import addresses, options, removal, user_record
from common.actions import Action
from common.csv_input import Row
from common.journal import Journal
from common.removal import Outcome, Removal
from common.results import Report, plural
from common.runner import Interrupted, Runner
from common.snapshot import Snapshot
from litellm_client import Key, LiteLLMClient, User

ALREADY_DELETED = "already deleted: a run stopped (kill -9?) before it recorded this deletion"


@dataclass
class DelPlan:
    removals: list[Removal] = field(default_factory=list)
    kept: list[tuple[Row, User, str]] = field(default_factory=list)  # listed, but not removed: why
    failures: list[tuple[Row, str]] = field(default_factory=list)
    deleted_before: list[tuple[Row, str, str]] = field(
        default_factory=list
    )  # (row, user_id, email) a killed run deleted

    def counts(self, keys: Mapping[str, Sequence[Key]]) -> dict[str, int]:
        """What the plan would do, in the words of the run's summary (the run report of a dry run)."""
        deleted = [r for r in self.removals if r.action.deletes]
        blocked = [r for r in self.removals if r.action is Action.BLOCK]
        return {
            "deleted": len(deleted),
            "purged": len([r for r in deleted if r.action is Action.PURGE]),
            "blocked": len(blocked),
            "kept": len(self.kept) + len(self.deleted_before),
            "failed": len(self.failures),
            "keys_deleted": sum(r.user.key_count for r in deleted),
            "keys_blocked": sum(len(removal.keys_to_block(keys.get(r.user.user_id, []))) for r in blocked),
        }

    def describe(self, csv_file: str, keys: Mapping[str, Sequence[Key]]) -> str:
        """keys: the users' keys, so that a block counts the keys it really blocks."""
        lines = [f"Plan for {csv_file}:"]
        lines += [
            f"  - {r.user.email} (user_id: {r.user.user_id}, {r.describe(keys.get(r.user.user_id, []))})"
            for r in self.removals
        ]
        lines += [f"  = {user.email} (kept: {why})" for _, user, why in self.kept]
        lines += [f"  = {email} ({ALREADY_DELETED})" for _, _, email in self.deleted_before]
        lines += [f"  ! line {row.line} {row['email'] or row['user_id']}: {reason}" for row, reason in self.failures]
        deleted = [r for r in self.removals if r.action.deletes]
        blocked = [r for r in self.removals if r.action is Action.BLOCK]
        to_block = sum(len(removal.keys_to_block(keys.get(r.user.user_id, []))) for r in blocked)
        lines.append(
            f"Users to delete: {len(deleted)} (with {plural(sum(r.user.key_count for r in deleted), 'API key')}), "
            f"to block: {len(blocked)} (with {plural(to_block, 'API key')}), "
            f"kept: {len(self.kept)}, rows with errors: {len(self.failures)}."
        )
        return "\n".join(lines)


def plan_deletions(
    rows: Sequence[Row],
    snapshot: Snapshot,
    *,
    all_matches: bool = False,
    block: bool = False,
    purge_after: str | None = None,
    now: datetime | None = None,
    in_flight: Mapping[str, str] | None = None,
) -> DelPlan:
    """Resolve every row against the snapshot; no request is made here. in_flight: user_id -> email
    of the deletions a killed run sent and never recorded: a row naming one that is gone is done.

    Without --purge-after each user is deleted (or blocked, with --block). With it, a user blocked
    that long ago is deleted; one not blocked is blocked with --block, kept otherwise; one blocked
    more recently is kept."""
    plan = DelPlan()
    planned: dict[str, int] = {}  # user_id -> line
    now = now or datetime.now(timezone.utc)
    for row in rows:
        try:
            if row.problem:
                raise ValueError(row.problem)
            gone = _deleted_before(row, snapshot, in_flight or {})
            if gone:
                plan.deleted_before.append((row, *gone))
                continue
            users = _resolve(row, snapshot, all_matches)
            again = [user for user in users if user.user_id in planned]
            if again:
                raise ValueError(f"listed twice (first on line {planned[again[0].user_id]})")
        except ValueError as problem:
            plan.failures.append((row, str(problem)))
            continue
        for user in users:
            planned[user.user_id] = row.line
            action, why = _action(user, block, purge_after, now)
            if action:
                plan.removals.append(Removal(user, action, row))
            else:
                plan.kept.append((row, user, why))
    return plan


def _action(user: User, block: bool, purge_after: str | None, now: datetime) -> tuple[Action | None, str]:
    """How a listed user is removed (None: kept), and why it is kept."""
    blocked_for = removal.blocked_for(user, now)
    if purge_after is None:
        if block and blocked_for is not None:
            return None, f"already blocked on {removal.offboarded_at(user)}"
        return (Action.BLOCK if block else Action.DELETE), ""
    if blocked_for is None:
        return (Action.BLOCK, "") if block else (None, "not blocked: --purge-after deletes only blocked users")
    if blocked_for >= options.duration_seconds(purge_after):
        return Action.PURGE, ""
    return None, f"blocked on {removal.offboarded_at(user)}, less than --purge-after {purge_after} ago"


def _deleted_before(row: Row, snapshot: Snapshot, in_flight: Mapping[str, str]) -> tuple[str, str] | None:
    """(user_id, email) of the user a row names that a killed run deleted: in flight, and gone."""
    for user_id, email in in_flight.items():
        named = row["user_id"] == user_id if row["user_id"] else addresses.key(row["email"]) == addresses.key(email)
        gone = user_id not in snapshot.users_by_id
        if named and gone:
            return user_id, email
    return None


def _resolve(row: Row, snapshot: Snapshot, all_matches: bool) -> list[User]:
    email = row["email"]
    if row["user_id"]:
        user = snapshot.users_by_id.get(row["user_id"])
        if user is None:
            raise ValueError(f"{user_record.USER_NOT_FOUND} (user_id {row['user_id']})")
        if email and addresses.key(user.email or "") != addresses.key(email):
            raise ValueError(f"user_id {user.user_id} belongs to {user.email or 'a user without email'}, not {email}")
        return [user]
    users = snapshot.users_by_email.get(addresses.key(email), [])
    addresses.parse(email, held=[user.email or "" for user in users])
    if not users:
        raise ValueError(user_record.USER_NOT_FOUND)
    if len(users) > 1 and not all_matches:
        ids = ", ".join(user.user_id for user in users)
        raise ValueError(
            f"{len(users)} users have this email ({ids}): none removed; give a user_id or use --all-matches"
        )
    return users


def apply_deletions(
    plan: DelPlan,
    proxy: LiteLLMClient,
    runner: Runner,
    report: Report,
    keys: Mapping[str, Sequence[Key]],
    now: datetime,
    journal: Journal,
) -> None:
    """Block, then delete; one result or error row per row, as each finishes."""
    for row, reason in plan.failures:
        report.fail(row, reason)
    for row, user, why in plan.kept:
        report.done("Kept", email=user.email or row["email"], user_id=user.user_id, detail=why)
    for _, user_id, email in plan.deleted_before:
        report.done("Deleted", email=email, user_id=user_id, detail=ALREADY_DELETED)
    journal.settled([user_id for _, user_id, _ in plan.deleted_before])

    def cells(r: Removal) -> dict[str, Any]:
        return {"email": r.user.email or (r.row["email"] if r.row else ""), "user_id": r.user.user_id}

    def record(r: Removal, outcome: Outcome) -> None:
        if not outcome.done:
            report.fail(r.row, outcome.reason, **cells(r))
        elif r.action is Action.BLOCK:
            report.done("Blocked", **cells(r), keys_blocked=outcome.keys, detail=outcome.detail)
            report.tally("keys blocked", outcome.keys)
        else:
            values = {**cells(r), "keys_deleted": outcome.keys, "detail": outcome.detail}
            if outcome.reason:  # deleted, with something left undone: in the results, and counted as failed
                report.partly("Deleted", outcome.reason, r.row, **values)
                report.tally("Deleted", 1)
            else:
                report.done("Deleted", **values)
            report.tally("keys deleted", outcome.keys)
            report.tally("purged", r.action is Action.PURGE)

    try:
        removal.remove(plan.removals, proxy, runner, keys, now, record, journal)
    except Interrupted as stop:
        for r in stop.not_started:
            report.not_started(r.row, stop.reason, **cells(r))
        raise


def summary(counts: Counter[str], failed: int, files: str) -> str:
    """del_user.py's last line: what it deleted, blocked and kept, with key counts."""
    blocked = (
        f", blocked {plural(counts['Blocked'], 'user')} ({plural(counts['keys blocked'], 'key')})"
        if counts["Blocked"]
        else ""
    )
    kept = f", kept {counts['Kept']}" if counts["Kept"] else ""
    purged = f" ({counts['purged']} purged)" if counts["purged"] else ""
    return (
        f"Deleted {plural(counts['Deleted'], 'user')}{purged} with {plural(counts['keys deleted'], 'API key')}"
        f"{blocked}{kept}, failed {failed}; {files}."
    )
