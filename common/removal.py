"""Taking users off the proxy, in the three ways del_user.py and sync_user.py share, and putting
them back: delete (the user and its keys, for good), block (every key blocked and the user marked
with metadata offboarded_at; nothing is lost), purge (delete a user blocked long enough), and
reinstate (unblock the keys the offboarding blocked, remove the mark).

The offboarding writes down, in the user's metadata (offboarded_keys, on the proxy, so every run
on any machine knows), which keys it blocked, before it blocks them: a reinstatement unblocks
those and only those. A key that was blocked already, by hand (it leaked, say), stays blocked.

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
from common.journal import Journal
from common.results import plural
from common.runner import Interrupted, Runner
from common.user_record import OFFBOARDED_AT, OFFBOARDED_KEYS
from litellm_client import DeleteOutcome, Key, LiteLLMClient, ProxyError, User, chunks


@dataclass(frozen=True, slots=True)
class Removal:
    """One user a run takes off: how (BLOCK, DELETE or PURGE), and the row that asked for it
    (None: sync, a user the file does not list)."""

    user: User
    action: Action
    row: Row | None = None

    def describe(self, keys: Sequence[Key]) -> str:
        """The plan's words; keys: the user's keys (a block counts those it will block)."""
        if self.action is Action.BLOCK:
            return f"block: {plural(len(keys_to_block(keys)), 'key')}"
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
    reason: str = ""  # why not done; or, done, what was left undone


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


def blocked_by_offboarding(user: User) -> tuple[str, ...]:
    """The keys (their hashes) the user's offboarding blocked, as it wrote them down."""
    tokens = (user.metadata or {}).get(OFFBOARDED_KEYS)
    return tuple(str(token) for token in tokens) if isinstance(tokens, list) else ()


def keys_to_block(keys: Sequence[Key]) -> list[Key]:
    return [key for key in keys if not key.blocked]


def keys_to_unblock(user: User, keys: Sequence[Key]) -> list[Key]:
    """A reinstated user's keys that its offboarding blocked and that are blocked still."""
    recorded = set(blocked_by_offboarding(user))
    return [key for key in keys if key.blocked and key.token in recorded]


def block(proxy: LiteLLMClient, user: User, keys: Sequence[Key], now: datetime, *, since: str | None = None) -> int:
    """Write down which keys this offboarding blocks, block them, then mark the user (in this
    order: a run killed in between leaves the user unmarked with its keys written down, and a
    rerun blocks it again, those keys included). The keys newly blocked. since: the mark's time
    (an undo file's), else now."""
    fresh = keys_to_block(keys)
    recorded = list(dict.fromkeys([*blocked_by_offboarding(user), *(key.token for key in fresh)]))
    if fresh:
        proxy.update_user(user.user_id, user_record.update_fields([], user, metadata={OFFBOARDED_KEYS: recorded}))
    for key in fresh:
        proxy.block_key(key.token)
    mark = {OFFBOARDED_AT: since or now_mark(now), OFFBOARDED_KEYS: recorded}
    proxy.update_user(user.user_id, user_record.update_fields([], user, metadata=mark))
    return len(fresh)


def unblock_keys(proxy: LiteLLMClient, user: User, keys: Sequence[Key]) -> int:
    """Unblock the keys a reinstated user's offboarding blocked (the mark goes with the user's
    update); a key blocked another way stays blocked."""
    chosen = keys_to_unblock(user, keys)
    for key in chosen:
        proxy.block_key(key.token, blocked=False)
    return len(chosen)


def left_blocked(user: User, keys: Sequence[Key]) -> str:
    """What a reinstatement leaves blocked, in words ("" for nothing)."""
    others = [key for key in keys if key.blocked and key not in keys_to_unblock(user, keys)]
    if not others:
        return ""
    why = (
        "blocked before this offboarding, or by hand"
        if blocked_by_offboarding(user) or OFFBOARDED_KEYS in (user.metadata or {})
        else "offboarded before the tools wrote down which keys they blocked: unblock by hand those that should work"
    )
    return f"{plural(len(others), 'key')} left blocked ({why})"


def remove(
    removals: Sequence[Removal],
    proxy: LiteLLMClient,
    runner: Runner,
    keys: Mapping[str, Sequence[Key]],
    now: datetime,
    record: Callable[[Removal, Outcome], None],
    journal: Journal | None = None,
) -> None:
    """Block, then delete (in batches), recording each user's outcome as soon as it is known. If the
    run stops, the Interrupted raised names every removal never started. journal: where deletions
    in flight are noted before they are sent (del_user.py: a rerun after kill -9 knows them)."""

    def block_one(r: Removal) -> None:
        try:
            count = block(proxy, r.user, keys.get(r.user.user_id, []), now)
        except ProxyError as exc:
            record(r, Outcome(False, reason=f"not blocked: {exc}"))
            return
        record(r, Outcome(True, count, f"blocked {plural(count, 'key')}; offboarded_at {now_mark(now)}"))

    def delete_batch(batch: Sequence[Removal]) -> None:
        by_id = {r.user.user_id: r for r in batch}
        if journal:
            journal.sending([(r.user.user_id, r.user.email or "") for r in batch])
        try:
            outcome = proxy.delete_many([r.user for r in batch])
        except ProxyError as exc:
            outcome = DeleteOutcome([], [], failed={user_id: str(exc) for user_id in by_id})
        record_outcomes(by_id, outcome)
        if journal:
            journal.settled(by_id)

    def record_outcomes(by_id: Mapping[str, Removal], outcome: DeleteOutcome) -> None:
        for user in [*outcome.deleted, *outcome.unconfirmed]:
            r = by_id[user.user_id]
            detail = f"deleted with {plural(user.key_count, 'key')}"
            if r.action is Action.PURGE:
                detail = f"purged (blocked on {offboarded_at(user)}), {detail}"
            if user in outcome.unconfirmed:
                detail += "; the proxy's answer was lost and the user was gone afterwards (this run, or someone else)"
            record(r, Outcome(True, user.key_count, detail, outcome.left_on_rosters.get(user.user_id, "")))
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
