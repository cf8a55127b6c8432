"""Creating users, as add_user.py and sync_user.py both do.

Where the release has the bulk create (1.108 on), new users go 500 a request, with the same end
state as one by one; users to finish (an earlier run created them without handing out their key)
go one by one, as everywhere before 1.108. Each create is noted in the run's journal before it is
sent, and settled once the script has recorded its outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from common.results import Journal
from common.runner import Interrupted, Runner
from litellm_client import BULK_SIZE, LiteLLMClient, NewUser, NewUserSpec, ProxyError, User, chunks

T = TypeVar("T")


@dataclass(frozen=True)
class Creation(Generic[T]):
    """A user to create (its spec has its user_id), for a script's row or change."""

    item: T
    spec: NewUserSpec
    unfinished: User | None = None  # created by an earlier run: finish it (a new key, its teams)


def create(
    creations: Sequence[Creation[T]],
    proxy: LiteLLMClient,
    runner: Runner,
    journal: Journal,
    record: Callable[[T, NewUser | ProxyError], None],
    *,
    bulk: bool,
    label: str = "users created",
) -> None:
    """Create every user, recording each outcome as soon as it is known. If the run stops, the
    Interrupted raised names the items never started."""

    def settle(creation: Creation[T], outcome: NewUser | ProxyError) -> None:
        record(creation.item, outcome)
        journal.settled([str(creation.spec.user_id)])

    def one(creation: Creation[T]) -> None:
        journal.sending([(str(creation.spec.user_id), creation.spec.email)])
        try:
            outcome: NewUser | ProxyError = (
                proxy.finish(creation.spec, creation.unfinished)
                if creation.unfinished
                else proxy.create_user(creation.spec)
            )
        except ProxyError as exc:
            outcome = exc
        settle(creation, outcome)

    def batch(creations: Sequence[Creation[T]]) -> None:
        journal.sending([(str(c.spec.user_id), c.spec.email) for c in creations])
        try:
            outcomes: list[NewUser | ProxyError] = proxy.create_users([c.spec for c in creations])
        except ProxyError as exc:
            outcomes = [exc] * len(creations)
        for creation, outcome in zip(creations, outcomes, strict=True):
            settle(creation, outcome)

    fresh = [c for c in creations if not c.unfinished] if bulk else []
    singles = [c for c in creations if c.unfinished] if bulk else list(creations)
    try:
        runner.parallel(list(chunks(fresh, BULK_SIZE)), batch, label, size=len)
    except Interrupted as stop:
        stop.not_started = [c.item for b in stop.not_started for c in b] + [c.item for c in singles]
        raise
    try:
        runner.parallel(singles, one, label)
    except Interrupted as stop:
        stop.not_started = [c.item for c in stop.not_started]
        raise
