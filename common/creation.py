"""Creating users, as add_user.py and sync_user.py both do.

New users go as many a request as the proxy takes (the client knows: 500 with the bulk create, one
before it), with the same end state either way; users to finish (an earlier run created them
without handing out their key) go one by one. Where the proxy rewrites a team's roster whole
without a lock (Release.rosters_locked false), the users of one team are still created in parallel,
and the members the roster lost meanwhile are put back afterwards, 100 a request (proxy.rejoin).
Each create is noted in the run's journal before it is sent, and settled once the script has
recorded its outcome, unless the user may exist with a key nobody saw: the next run in the same
folder finishes it (a new key, in its result file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from common.journal import Journal
from common.runner import Interrupted, Runner
from litellm_client import LiteLLMClient, NewUser, NewUserSpec, ProxyError, User, chunks

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
    batch_size: int | None = None,
    label: str = "users created",
) -> None:
    """Create every user, recording each outcome as soon as it is known. batch_size: at most this
    many a request (default: as many as the proxy takes). If the run stops, the Interrupted raised
    names the items never started."""

    racing = proxy.parallel_creates_lose_members  # then each shared team's lost members rejoin afterwards
    joined: list[tuple[Creation[T], NewUser]] = []  # created in parallel, their rosters not checked yet

    def settle(creation: Creation[T], outcome: NewUser | ProxyError) -> None:
        record(creation.item, outcome)
        if not _unfinished(outcome):
            journal.settled([str(creation.spec.user_id)])

    def created(creation: Creation[T], outcome: NewUser | ProxyError) -> None:
        if racing and isinstance(outcome, NewUser) and creation.spec.team_ids:
            joined.append((creation, outcome))
        else:
            settle(creation, outcome)

    def rejoin() -> None:
        """Once no create is in flight: each team's lost members back on its roster, then the
        outcomes recorded (a user that could not be put back, with why)."""
        teams: dict[str, list[str]] = {}
        for creation, outcome in joined:
            for team_id in creation.spec.team_ids:
                teams.setdefault(team_id, []).append(outcome.user_id)
        shared = {team_id: ids for team_id, ids in teams.items() if len(ids) > 1}  # one write alone loses nothing
        try:
            problems = proxy.rejoin(shared) if shared else {}
        except ProxyError as exc:  # not a row's failure: the proxy went away; each row says so
            problems = {outcome.user_id: f"its teams' rosters not checked: {exc}" for _, outcome in joined}
        for creation, outcome in joined:
            why = "; ".join(p for p in (outcome.problem, problems.get(outcome.user_id, "")) if p)
            settle(creation, replace(outcome, problem=why))

    def finish(creation: Creation[T]) -> None:
        assert creation.unfinished is not None
        journal.sending([(str(creation.spec.user_id), creation.spec.email)])
        try:
            outcome: NewUser | ProxyError = proxy.reissue_key_and_join(creation.spec, creation.unfinished)
        except ProxyError as exc:
            outcome = exc
        settle(creation, outcome)

    def batch(creations: Sequence[Creation[T]]) -> None:
        journal.sending([(str(c.spec.user_id), c.spec.email) for c in creations])
        outcomes = proxy.create_many([c.spec for c in creations], hold_teams=not racing)
        for creation, outcome in zip(creations, outcomes, strict=True):
            created(creation, outcome)

    fresh = [c for c in creations if not c.unfinished]
    unfinished = [c for c in creations if c.unfinished]
    size = min(batch_size or proxy.create_batch_size, proxy.create_batch_size)
    try:
        runner.parallel(list(chunks(fresh, size)), batch, label, size=len)
    except Interrupted as stop:
        stop.not_started = [c.item for b in stop.not_started for c in b] + [c.item for c in unfinished]
        raise
    finally:
        rejoin()
    try:
        runner.parallel(unfinished, finish, label)
    except Interrupted as stop:
        stop.not_started = [c.item for c in stop.not_started]
        raise


def _unfinished(outcome: NewUser | ProxyError) -> bool:
    """A user that exists, or may, with a key nobody has seen (the answer was lost, or replacing
    its key failed): it stays in the journal, and the next run in this folder finishes it."""
    return isinstance(outcome, ProxyError) and bool(outcome.user_id or outcome.answer_lost)
