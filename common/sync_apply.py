"""Applies a sync plan: adds; then each user's update (role, access columns, reinstating) and its
team joins before its leaves; then blocks and deletions. Each user has a Step: what was planned
for it, what was done, what failed; its result row is written from that, once the run is done
with the user."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from common import removal, team_apply, user_record
from common.actions import Action
from common.creation import Creation, create
from common.journal import Journal
from common.removal import Outcome, Removal
from common.results import Report, plural
from common.runner import Interrupted, Runner
from common.snapshot import Snapshot
from common.sync_plan import Change, SyncPlan, team_keys
from common.team_record import TeamPlan
from common.user_record import OFFBOARDED_AT, OFFBOARDED_KEYS
from litellm_client import Key, LiteLLMClient, NewUser, NewUserSpec, ProxyError, chunks


class Part(Enum):
    """One request (or batch) of a user's update."""

    UNBLOCK = "unblock"
    UPDATE = "update"
    JOIN = "join"
    ROLE = "role"
    LEAVE = "leave"


@dataclass
class Step:
    """One user's update: the parts planned and not yet settled, what was done, what failed."""

    change: Change
    pending: set[tuple[Part, str]]  # (part, team id: "" but for joins and leaves)
    done: list[str] = field(default_factory=list)
    problems: list[tuple[Part, str]] = field(default_factory=list)

    @classmethod
    def of(cls, change: Change) -> Step:
        parts = {(Part.UNBLOCK, "")} if change.action is Action.REINSTATE else set()
        parts |= {(Part.UPDATE, "")} if change.updates_user else set()
        parts |= {(Part.JOIN, team) for team in change.joins} | {(Part.LEAVE, team) for team in change.leaves}
        parts |= {(Part.ROLE, team) for team, _ in change.team_roles}
        return cls(change, parts)

    def settle(self, part: Part, team: str = "", *, did: str = "", problem: str = "") -> None:
        self.pending.discard((part, team))
        if did:
            self.done.append(did)
        if problem:
            self.problems.append((part, problem))

    @property
    def failed_to_join(self) -> bool:
        return any(part is Part.JOIN for part, _ in self.problems)

    def joined(self, team: str) -> bool:
        return team not in self.change.joins or ((Part.JOIN, team) not in self.pending and not self.failed_to_join)


class Sync:
    """Applies one plan, writing each user's result row as soon as the run is done with it."""

    def __init__(
        self,
        plan: SyncPlan,
        snapshot: Snapshot,
        proxy: LiteLLMClient,
        runner: Runner,
        report: Report,
        keys: dict[str, list[Key]],
        now: datetime,
        journal: Journal,
        teams: tuple[TeamPlan, Report] | None = None,
    ):
        """teams: a teams file's plan, applied first, and its result file."""
        self.plan, self.snapshot, self.proxy, self.runner, self.report = plan, snapshot, proxy, runner, report
        self.keys, self.now, self.journal, self.teams = keys, now, journal, teams
        self.broken: dict[str, str] = {}  # team id -> why it was not created
        self._lock = threading.Lock()

    # -- result rows -----------------------------------------------------------------------------

    def result_cells(self, change: Change, **overrides: object) -> dict[str, Any]:
        return {
            "action": change.action.word,
            "email": change.email,
            "user_id": change.user_id,
            "role": change.role or ("default" if change.action is Action.ADD else ""),
            "team_name": self.snapshot.team_cell(change.teams),
            "line": change.row.line if change.row else "",
            **overrides,
        }

    def ok(self, change: Change, **overrides: object) -> None:
        self.report.done("SUCCESS", tally=change.action.word, **self.result_cells(change, **overrides))

    def failed(self, change: Change, reason: str, **overrides: object) -> None:
        if overrides.get("api_keys"):  # a user was created with a key: it belongs in the result file
            self.report.partly("FAILED", reason, change.row, **self.result_cells(change, **overrides))
        else:
            self.report.fail(change.row, reason, **self.result_cells(change, status="FAILED", **overrides))

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> None:
        for _, reason, change in self.plan.failures:
            self.failed(change, reason)
        for change, why in self.plan.left_out:
            self.report.done("SKIPPED", **self.result_cells(change, detail=why))
        for change in self.plan[Action.KEEP]:
            blocked = removal.offboarded_at(change.user) if change.user else None
            self.ok(change, detail=f"blocked on {blocked}" if blocked else "")
        adds = self.plan[Action.ADD]
        updates = [*self.plan[Action.UPDATE], *self.plan[Action.REINSTATE]]
        removals = self.plan.removals
        if self.teams:
            team_plan, team_results = self.teams
            self.phase(lambda: self.apply_teams(team_plan, team_results), later=[*adds, *updates, *removals])
            adds, updates = self.without_broken_teams(adds), self.without_broken_teams(updates)
        self.phase(lambda: self.add(adds), later=[*updates, *removals])
        self.phase(lambda: self.update(updates), later=removals)
        self.phase(self.remove, later=[])

    def apply_teams(self, plan: TeamPlan, teams: Report) -> None:
        self.broken = team_apply.apply_teams(plan, self.proxy, self.runner, teams)

    def without_broken_teams(self, changes: list[Change]) -> list[Change]:
        """The changes whose teams all exist; the others fail, with why their team does not."""
        kept = []
        for change in changes:
            missing = [self.broken[team] for team in (*change.teams, *change.joins) if team in self.broken]
            if missing:
                self.failed(change, missing[0])
            else:
                kept.append(change)
        return kept

    def phase(self, work: Callable[[], None], *, later: list[Change]) -> None:
        """One phase; if the run stops in it, the changes it never started, and every later
        phase's, are recorded as not started."""
        try:
            work()
        except Interrupted as stop:
            for change in [*stop.not_started, *later]:
                self.report.not_started(change.row, stop.reason, **self.result_cells(change, status="FAILED"))
            raise

    # -- adding ------------------------------------------------------------------------------------

    def add(self, adds: list[Change]) -> None:
        creations = [Creation(change, self.new_user(change), change.user) for change in adds]
        create(creations, self.proxy, self.runner, self.journal, self.record_added)

    def new_user(self, change: Change) -> NewUserSpec:
        """The user a change creates, with its user_id (noted in the journal before it is sent).
        One restored offboarded comes back marked, without a key (any key would have to be blocked)."""
        fields = user_record.new_fields(change.new_values)
        if change.offboarded_since:
            mark = {OFFBOARDED_AT: change.offboarded_since, OFFBOARDED_KEYS: []}
            fields["metadata"] = {**fields.get("metadata", {}), **mark}
        user_id = change.user_id or str(uuid.uuid4())
        return NewUserSpec(
            change.email,
            change.role,
            change.teams,
            with_key=not change.offboarded_since,
            fields=fields,
            user_id=user_id,
        )

    def record_added(self, change: Change, outcome: NewUser | ProxyError) -> None:
        if isinstance(outcome, ProxyError):
            reason = user_record.USER_EXISTS if outcome.already_exists else str(outcome)
            self.failed(change, reason, user_id=outcome.user_id or "")
            return
        restored = bool(change.row and change.row["user_id"])
        if change.user:
            detail = "finished: a killed run created it and never recorded its key; this is a new key"
        else:
            detail = f"restored under user_id {outcome.user_id}" if restored else ""
            detail += f", offboarded since {change.offboarded_since}, without a key" if change.offboarded_since else ""
        problems = [outcome.problem] if outcome.problem else []
        if not outcome.problem:
            for team, admin in change.team_roles:
                done, problem = self.role(team, outcome.user_id, admin)
                detail = ", ".join(part for part in (detail, done) if part)
                problems += [problem] if problem else []
        self.report.tally("restored", restored and not problems)
        if problems:
            self.failed(change, "; ".join(problems), user_id=outcome.user_id, api_keys=outcome.key, detail=detail)
        else:
            self.ok(change, user_id=outcome.user_id, api_keys=outcome.key, detail=detail)

    # -- updating ----------------------------------------------------------------------------------

    def update(self, changes: list[Change]) -> None:
        """Reinstated users' keys unblocked; each user's one update, in batches; then each team's
        joins in one batched request, teams in parallel; then each team's leaves in turn. A user
        whose join failed leaves no team."""
        steps = {change.user_id: Step.of(change) for change in changes}
        joins: dict[str, list[str]] = defaultdict(list)
        leaves: dict[str, list[str]] = defaultdict(list)
        for change in changes:
            for team in change.joins:
                joins[team].append(change.user_id)
            for team in change.leaves:
                leaves[team].append(change.user_id)
        updating = [change for change in changes if change.updates_user]
        reinstating = [change for change in changes if change.action is Action.REINSTATE]
        stopped: Interrupted | None = None
        try:
            self.runner.parallel(reinstating, lambda c: self.unblock(steps[c.user_id]), "users' keys unblocked")
            batches = list(chunks(updating, self.proxy.update_batch_size))
            self.runner.parallel(batches, lambda batch: self.send_updates(batch, steps), "users updated", size=len)
            self.runner.parallel(list(joins.items()), lambda item: self.join(*item, steps), "teams joined")
            roles = [(change.user_id, team, admin) for change in changes for team, admin in change.team_roles]
            self.runner.parallel(roles, lambda item: self.set_role(*item, steps), "team roles set")
            self.runner.parallel(list(leaves.items()), lambda item: self.leave(*item, steps), "teams left")
        except Interrupted as stop:
            stopped = stop
        for step in steps.values():
            self.record_step(step, stopped)
        if stopped:
            stopped.not_started = []
            raise stopped

    def record_step(self, step: Step, stopped: Interrupted | None) -> None:
        reasons = [problem for _, problem in step.problems]
        if step.pending and stopped:
            reasons.append(f"not all of this user's changes were made: {stopped.reason}")
        detail = "; ".join([*_field_details(step.change), *step.done])
        if reasons:
            self.failed(step.change, "; ".join(reasons), detail=detail)
        else:
            self.ok(step.change, detail=detail)

    def unblock(self, step: Step) -> None:
        user, held = step.change.user, self.keys.get(step.change.user_id, [])
        assert user is not None
        try:
            count = removal.unblock_keys(self.proxy, user, held)
        except ProxyError as exc:
            with self._lock:
                step.settle(Part.UNBLOCK, problem=f"keys not unblocked: {exc}")
            return
        left = removal.left_blocked(user, held)
        with self._lock:
            step.settle(Part.UNBLOCK, did=f"unblocked {plural(count, 'key')}" + (f", {left}" if left else ""))
        self.report.tally("keys unblocked", count)

    def send_updates(self, batch: Sequence[Change], steps: dict[str, Step]) -> None:
        outcomes = self.proxy.update_many([(change.user_id, _update_body(change)) for change in batch])
        with self._lock:
            for change in batch:
                problem = outcomes.get(change.user_id)
                steps[change.user_id].settle(Part.UPDATE, problem=f"not updated: {problem}" if problem else "")

    def join(self, team: str, user_ids: list[str], steps: dict[str, Step]) -> None:
        label = self.snapshot.team_label(team)
        try:
            ghosts = self.proxy.add_team_members(team, user_ids)
        except ProxyError as exc:
            with self._lock:
                for user_id in user_ids:
                    steps[user_id].settle(Part.JOIN, team, problem=f"not added to team {label}: {exc}")
            return
        with self._lock:
            for user_id in user_ids:
                if user_id in ghosts:
                    steps[user_id].settle(Part.JOIN, team, problem=removal.GONE_MEANWHILE)
                else:
                    steps[user_id].settle(Part.JOIN, team, did=f"joined {label}")

    def set_role(self, user_id: str, team: str, admin: bool, steps: dict[str, Step]) -> None:
        step = steps[user_id]
        if not step.joined(team):
            with self._lock:
                step.settle(
                    Part.ROLE, team, problem=f"role in team {self.snapshot.team_label(team)} not set: not in it"
                )
            return
        done, problem = self.role(team, user_id, admin)
        with self._lock:
            step.settle(Part.ROLE, team, did=done, problem=problem)

    def role(self, team: str, user_id: str, admin: bool) -> tuple[str, str]:
        return team_apply.set_role(self.proxy, team, self.snapshot.team_label(team), user_id, admin=admin)

    def leave(self, team: str, user_ids: list[str], steps: dict[str, Step]) -> None:
        label = self.snapshot.team_label(team)
        for user_id in user_ids:
            step = steps[user_id]
            if step.failed_to_join:
                with self._lock:
                    step.settle(Part.LEAVE, team, problem=f"kept in team {label}, since joining a team failed")
                continue
            expected = len(team_keys(self.keys, user_id, (team,)))
            try:
                self.proxy.remove_team_member(team, user_id)
                kept = len(self.proxy.user_keys(user_id, team_id=team)) if expected else 0
            except ProxyError as exc:
                with self._lock:
                    step.settle(Part.LEAVE, team, problem=f"not removed from team {label}: {exc}")
                continue
            keys = f", {plural(expected - kept, 'team key')} deleted" if expected - kept else ""
            keys += f", {plural(kept, 'team key')} kept by the proxy" if kept else ""
            with self._lock:
                step.settle(Part.LEAVE, team, did=f"left {label}{keys}")

    # -- blocking and deleting ---------------------------------------------------------------------

    def remove(self) -> None:
        changes = {change.user_id: change for change in self.plan.removals}
        removals = [Removal(change.user, change.action, change.row) for change in changes.values() if change.user]

        def record(r: Removal, outcome: Outcome) -> None:
            change = changes[r.user.user_id]
            if not outcome.done:
                self.failed(change, outcome.reason)
                return
            if outcome.reason:  # done, with something left undone
                self.report.partly(
                    "FAILED", outcome.reason, change.row, **self.result_cells(change, detail=outcome.detail)
                )
                self.report.tally(change.action.word, 1)
            else:
                self.ok(change, detail=outcome.detail)
            self.report.tally("keys blocked" if change.action is Action.BLOCK else "keys deleted", outcome.keys)
            self.report.tally("purged", change.action is Action.PURGE)

        try:
            removal.remove(removals, self.proxy, self.runner, self.keys, self.now, record)
        except Interrupted as stop:
            stop.not_started = [changes[r.user.user_id] for r in stop.not_started]
            raise


def _update_body(change: Change) -> dict[str, Any]:
    """The one /user/update a change needs: its access columns, its role, the mark it removes."""
    assert change.user is not None
    mark = {OFFBOARDED_AT: None, OFFBOARDED_KEYS: None} if change.action is Action.REINSTATE else None
    fields = user_record.update_fields(list(change.field_changes), change.user, metadata=mark)
    return {**fields, "user_role": change.role} if change.role_changes else fields


def _field_details(change: Change) -> list[str]:
    assert change.user is not None
    details = [f"role {change.user.role or 'none'} -> {change.role}"] if change.role_changes else []
    return details + [field_change.describe() for field_change in change.field_changes]
