"""Taking users off the proxy, in the three ways del_user.py and sync_user.py share, and putting
them back: delete (the user and its keys, for good), block (every key blocked and the user marked
with metadata offboarded_at; nothing is lost), purge (delete a user blocked long enough), and
reinstate (unblock the keys, remove the mark).

Both scripts apply their removals here (blocks first, then deletions in batches) and turn each
user's Outcome into their own result row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from common import user_record
from common.actions import Action
from common.csv_input import Row
from common.results import plural
from common.runner import Interrupted, Runner
from common.user_record import OFFBOARDED_AT
from litellm_client import Key, LiteLLMClient, ProxyError, User, chunks


@dataclass(frozen=True, slots=True)
class Removal:
    """One user a run takes off: how (BLOCK, DELETE or PURGE), and the row that asked for it
    (None: sync, a user the file does not list)."""

    user: User
    action: Action
    row: Row | None = None

    def describe(self) -> str:
        if self.action is Action.BLOCK:
            return f"block: {plural(self.user.key_count, 'key')}"
        if self.action is Action.PURGE:
            return f"purge: blocked {offboarded_at(self.user) or '?'}, {plural(self.user.key_count, 'key')}"
        return f"keys: {self.user.key_count}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one user a run set out to remove: done or not, the keys it blocked or
    deleted, what was done in words (detail), or why not (reason)."""

    done: bool
    keys: int = 0
    detail: str = ""
    reason: str = ""


GONE_MEANWHILE = f"{user_record.USER_NOT_FOUND} (deleted by someone else during this run)"


def offboarded_at(user: User) -> str | None:
    value = (user.metadata or {}).get(OFFBOARDED_AT)
    return str(value) if value else None


def blocked_for(user: User, now: datetime) -> float | None:
    """Seconds since the user was blocked (None: not blocked, or the mark is not a time)."""
    mark = offboarded_at(user)
    if not mark:
        return None
    try:
        since = datetime.fromisoformat(mark.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (now - (since if since.tzinfo else since.replace(tzinfo=timezone.utc))).total_seconds()


def now_mark(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def block(proxy: LiteLLMClient, user: User, keys: Sequence[Key], now: datetime) -> int:
    """Block every key the user has, then mark the user (in this order: a run killed in between
    leaves the user unmarked, and a rerun blocks it again). The keys newly blocked."""
    fresh = [key for key in keys if not key.blocked]
    for key in fresh:
        proxy.block_key(key.token)
    proxy.update_user(user.user_id, user_record.update_fields([], user, metadata={OFFBOARDED_AT: now_mark(now)}))
    return len(fresh)


def unblock_keys(proxy: LiteLLMClient, keys: Sequence[Key]) -> int:
    """Unblock a reinstated user's blocked keys (the mark goes with the user's update)."""
    held = [key for key in keys if key.blocked]
    for key in held:
        proxy.block_key(key.token, blocked=False)
    return len(held)


def remove(
    removals: Sequence[Removal],
    proxy: LiteLLMClient,
    runner: Runner,
    keys: Mapping[str, Sequence[Key]],
    now: datetime,
    record: Callable[[Removal, Outcome], None],
) -> None:
    """Block, then delete (in batches), recording each user's outcome as soon as it is known. If the
    run stops, the Interrupted raised names every removal never started."""

    def block_one(r: Removal) -> None:
        try:
            count = block(proxy, r.user, keys.get(r.user.user_id, []), now)
        except ProxyError as exc:
            record(r, Outcome(False, reason=f"not blocked: {exc}"))
            return
        record(r, Outcome(True, count, f"blocked {plural(count, 'key')}; offboarded_at {now_mark(now)}"))

    def delete_batch(batch: Sequence[Removal]) -> None:
        by_id = {r.user.user_id: r for r in batch}
        try:
            outcome = proxy.delete_many([r.user for r in batch])
        except ProxyError as exc:
            for r in batch:
                record(r, Outcome(False, reason=str(exc)))
            return
        for user in [*outcome.deleted, *outcome.unconfirmed]:
            r = by_id[user.user_id]
            detail = f"deleted with {plural(user.key_count, 'key')}"
            if r.action is Action.PURGE:
                detail = f"purged (blocked on {offboarded_at(user)}), {detail}"
            if user in outcome.unconfirmed:
                detail += "; the proxy's answer was lost and the user was gone afterwards (this run, or someone else)"
            record(r, Outcome(True, user.key_count, detail))
        for user in outcome.missing:
            record(by_id[user.user_id], Outcome(False, reason=GONE_MEANWHILE))
        for user_id, reason in outcome.failed.items():
            record(by_id[user_id], Outcome(False, reason=reason))

    blocks = [r for r in removals if r.action is Action.BLOCK]
    deletions = [r for r in removals if r.action.deletes]
    try:
        runner.parallel(blocks, block_one, "users blocked")
    except Interrupted as stop:
        stop.not_started = [*stop.not_started, *deletions]
        raise
    try:
        runner.parallel(list(chunks(deletions, proxy.delete_batch_size)), delete_batch, "users deleted", size=len)
    except Interrupted as stop:
        stop.not_started = [r for batch in stop.not_started for r in batch]
        raise
