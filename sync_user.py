#!/usr/bin/env python3
"""Make the LiteLLM proxy's users match a CSV file: add, update, and delete or block, with a plan first.

Manual: docs/sync_user_manual.md
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from common import csv_input, exits, lease, options, removal, user_record
from common.creation import Creation, create
from common.csv_input import Row
from common.exits import Exit, SafetyStop, UsageError
from common.options import DeleteLimit
from common.removal import BLOCK, DELETE, PURGE
from common.results import Journal, Report, plural
from common.runner import Interrupted, Runner
from common.snapshot import Snapshot
from common.user_record import CLEARED, OFFBOARDED_AT, FieldChange
from litellm_client import BULK_SIZE, Key, LiteLLMClient, NewUser, NewUserSpec, ProxyError, User, chunks

COLUMNS = ("email", "role", "team_name", "user_id", *user_record.ACCESS_COLUMNS)
RESULT_COLUMNS = (
    "action",
    "email",
    "user_id",
    "role",
    "team_name",
    "api_keys",
    "status",
    "error_reason",
    "line",
    "detail",
)
ADDED, UPDATED, REINSTATED, DELETED, BLOCKED, UNCHANGED = (
    "ADDED",
    "UPDATED",
    "REINSTATED",
    "DELETED",
    "BLOCKED",
    "UNCHANGED",
)
CHANGES = (ADDED, UPDATED, REINSTATED, DELETED, BLOCKED)
DEFAULT_SHARE = 10.0  # --max-delete default: 10% of the managed users...
DEFAULT_FLOOR = 5  # ...but never fewer than 5
EXAMPLES = """\
  python sync_user.py --dry-run                         # print the plan for user_list.csv, change nothing
  python sync_user.py --remove block                    # apply it; users not in the file are blocked, not deleted
  python sync_user.py --check --quiet                   # exit 5 if the proxy drifted from the file (monitoring)
"""


@dataclass(frozen=True)
class SyncOptions:
    """What sync_user.py's flags ask of a plan."""

    default_role: str = "proxy_admin"
    add: bool = True
    update: bool = True
    delete: bool = True
    remove: str = DELETE  # what happens to a managed user the file does not list: DELETE or BLOCK
    purge_after: str | None = None  # a user blocked longer ago than this is deleted
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass(frozen=True, slots=True)
class Change:
    """One user the run looked at, and what it does to it."""

    action: str  # ADDED, UPDATED, REINSTATED, DELETED, BLOCKED or UNCHANGED
    email: str
    row: Row | None  # None for users the file does not list
    user: User | None = None  # as the proxy has it; for ADDED, a user a killed run left to finish
    role: str | None = None  # the role after the run (None: none, the proxy's default)
    role_changes: bool = False
    teams: tuple[str, ...] = ()  # team ids after the run
    joins: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()
    keys_lost: int = 0  # keys the proxy deletes with the user, or with the teams it leaves
    fields: tuple[FieldChange, ...] = ()  # access columns to change (UPDATED, REINSTATED)
    values: dict[str, Any] = field(default_factory=dict)  # the access columns a new user gets (ADDED)
    how: str = ""  # DELETED or BLOCKED: DELETE, BLOCK or PURGE
    user_id: str = ""  # the user's id (ADDED: the id the file asks for, or "")

    @property
    def updates_user(self) -> bool:
        """The change needs one /user/update (role, access columns, the offboarding mark)."""
        return self.role_changes or bool(self.fields) or self.action == REINSTATED


@dataclass
class Plan:
    changes: dict[str, list[Change]] = field(default_factory=lambda: defaultdict(list))
    left_out: list[tuple[Change, str]] = field(default_factory=list)  # by --no-add/--no-update/--no-delete
    failures: list[tuple[Row, str, Change]] = field(default_factory=list)
    managed: int = 0

    def __getitem__(self, action: str) -> list[Change]:
        return self.changes[action]

    @property
    def removals(self) -> int:
        return len(self[DELETED]) + len(self[BLOCKED])

    def changes_anything(self) -> bool:
        return any(self[action] for action in CHANGES)

    def leaving(self) -> list[Change]:
        """The changes that take a user off a team: the proxy deletes its keys for that team (and
        the tools do, on releases that keep them)."""
        return [c for action in (UPDATED, REINSTATED) for c in self[action] if c.leaves]

    def count_team_keys(self, keys: Mapping[str, Sequence[Key]]) -> None:
        """Note how many keys each leaving user loses with its teams, from its keys as listed."""
        for action in (UPDATED, REINSTATED):
            self.changes[action] = [
                replace(c, keys_lost=len(_team_keys(keys, c.user_id, c.leaves))) if c.leaves else c
                for c in self[action]
            ]

    def describe(self, snapshot: Snapshot) -> str:
        lines = [
            "Synchronization Plan:",
            f"  Users to add: {len(self[ADDED])}",
            f"  Users to delete: {len(self[DELETED])}",
            f"  Users to update: {len(self[UPDATED])}",
            f"  Users unchanged: {len(self[UNCHANGED])}",
        ]
        if self[BLOCKED]:
            lines.append(f"  Users to block: {len(self[BLOCKED])}")
        if self[REINSTATED]:
            lines.append(f"  Users to reinstate: {len(self[REINSTATED])}")
        for c in self[ADDED]:
            if c.user:
                lines.append(f"  + {c.email} (finish user_id {c.user_id}: a killed run never recorded its key)")
                continue
            restore = f"restore user_id {c.user_id}, " if c.row and c.row["user_id"] else ""
            values = "".join(f", {column}: {user_record.show(column, v)}" for column, v in c.values.items())
            lines.append(
                f"  + {c.email} ({restore}Role: {c.role or 'default'}, Team: {_teams(snapshot, c.teams)}{values})"
            )
        for c in [*self[DELETED], *self[BLOCKED]]:
            assert c.user is not None
            if c.how == DELETE:
                lines.append(f"  - {c.email} (Role: {c.role}, Team: {_teams(snapshot, c.teams)}, keys: {c.keys_lost})")
            else:
                lines.append(f"  - {c.email} ({removal.Removal(c.user, c.how).describe()})")
        lines += [f"  ~ {c.email} ({', '.join(_parts(c, snapshot))})" for c in self[UPDATED]]
        for c in self[REINSTATED]:
            assert c.user is not None
            more = "".join(f", {part}" for part in _parts(c, snapshot))
            lines.append(f"  ^ {c.email} (unblock: {plural(c.user.key_count, 'key')}{more})")
        lines += [f"  ! line {row.line} {row['email']}: {reason}" for row, reason, _ in self.failures]
        if self.left_out:
            lines.append(f"  Left out by --no-add/--no-update/--no-delete: {len(self.left_out)}")
        if not self.changes_anything():
            lines.append(
                "No changes: the proxy already matches the file." if not self.failures else "No changes to make."
            )
        return "\n".join(lines)


def _teams(snapshot: Snapshot, team_ids: Sequence[str]) -> str:
    return snapshot.team_cell(team_ids) or "-"


def _parts(c: Change, snapshot: Snapshot) -> list[str]:
    """What an update changes, old -> new, in the words of the plan."""
    assert c.user is not None
    parts = [f"Role: {c.user.role or 'none'} -> {c.role}"] if c.role_changes else []
    if c.joins or c.leaves:
        parts.append(f"Teams: {_teams(snapshot, snapshot.teams_of(c.user))} -> {_teams(snapshot, c.teams)}")
    parts += [change.describe() for change in c.fields]
    if c.keys_lost:
        parts.append(f"leaving {_teams(snapshot, c.leaves)} deletes {plural(c.keys_lost, 'key')}")
    return parts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = options.parser(__doc__.splitlines()[0], examples=EXAMPLES, csv_default="user_list.csv")
    options.add_role_option(p)
    p.add_argument("--no-add", action="store_true", help="do not add users missing from the proxy")
    p.add_argument(
        "--no-update", action="store_true", help="do not change roles, teams or access columns, or reinstate"
    )
    p.add_argument("--no-delete", action="store_true", help="do not delete or block users missing from the file")
    p.add_argument(
        "--remove",
        choices=(DELETE, BLOCK),
        default=DELETE,
        help="what happens to managed users the file does not list: delete them with their keys, or block "
        "their keys and mark them offboarded (reversible) (default: %(default)s)",
    )
    p.add_argument(
        "--purge-after",
        metavar="DURATION",
        type=options.duration,
        help="with --remove block: delete the users blocked at least this long ago (30d, 1mo, ...)",
    )
    options.add_max_delete_option(p, default_text=f"{DEFAULT_SHARE:g}%%, but never fewer than {DEFAULT_FLOOR}")
    p.add_argument(
        "--check",
        action="store_true",
        help="only compare: print the plan, change nothing, exit 0 if the proxy matches the file, 5 if not",
    )
    return p.parse_args(argv)


def delete_limit(limit: DeleteLimit | None, managed: int) -> tuple[int, str]:
    """The most users this run may delete or block, and how that was worked out (for the message)."""
    if limit is None:
        most = max(DEFAULT_FLOOR, int(managed * DEFAULT_SHARE // 100))
        return most, f"the default: {DEFAULT_SHARE:g}% of {managed} managed users, at least {DEFAULT_FLOOR}"
    if limit.share is not None:
        return limit.limit(managed), f"--max-delete {limit.share:g}% of {managed} managed users"
    return limit.limit(managed), f"--max-delete {limit.count}"


def plan_sync(rows: Sequence[Row], snapshot: Snapshot, opts: SyncOptions, inflight: Mapping[str, str] = {}) -> Plan:
    """Compare the file with the proxy; no request is made here. inflight: user_id -> email of
    creates a killed run sent and never recorded: their users are finished (a new key).

    Every email in the file, even on a bad row, keeps its user from removal (a bad row's cell is
    read for the address it plausibly holds). Only managed users (an email and one of the four
    roles) are ever removed. An empty cell leaves that attribute of an existing user as it is.
    """
    plan = Plan()
    listed = {key for row in rows if (key := user_record.plausible_email(row["email"]))}
    repeats = csv_input.Repeats()
    for row in rows:
        key = user_record.plausible_email(row["email"]) or ""
        users = snapshot.users_by_email.get(key, [])
        try:
            if row.problem:
                raise ValueError(row.problem)
            email = user_record.parse_email(row["email"])
            repeats.check(row, key)
            if len(users) > 1:
                ids = ", ".join(user.user_id for user in users)
                raise ValueError(f"{len(users)} users have this email ({ids}); none was changed")
            user = _by_id(row, users[0] if users else None, snapshot)
            names = user_record.team_names(row["team_name"])
            teams = None if names is None else tuple(snapshot.find_team(name).team_id for name in names)
            values = user_record.wanted(row.cells, snapshot.models, snapshot.release)
            values.pop(user_record.METADATA_PREFIX + OFFBOARDED_AT, None)  # the tools' own mark, never a file's
            change = _compare(row, email, user, teams, values, snapshot, opts)
            if user is not None and user.user_id in inflight:
                change = replace(change, action=ADDED, values={}, user=user)
            elif user is None and not change.user_id:
                sent = [user_id for user_id, sent_to in inflight.items() if user_record.email_key(sent_to) == key]
                change = replace(change, user_id=sent[0]) if sent else change
        except ValueError as problem:
            failed = Change(UPDATED if users else ADDED, row["email"], row, users[0] if users else None)
            plan.failures.append((row, str(problem), failed))
            continue
        _add(plan, change, opts)
    for user in snapshot.managed():
        if user_record.email_key(user.email or "") not in listed:
            _add(plan, _removal(user, snapshot, opts), opts)
    plan.managed = len(snapshot.managed())
    return plan


def _by_id(row: Row, user: User | None, snapshot: Snapshot) -> User | None:
    """A row's user_id (an undo file has one): it must be the id of the user with the row's email;
    a user_id that is not on the proxy is the id a new user is created with."""
    user_id = row["user_id"]
    if not user_id:
        return user
    if user is not None and user.user_id != user_id:
        raise ValueError(f"{row['email']} is user_id {user.user_id} on the proxy, not {user_id}")
    holder = snapshot.users_by_id.get(user_id)
    if holder is not None and holder is not user:
        raise ValueError(f"user_id {user_id} belongs to {holder.email or 'a user without email'}, not {row['email']}")
    return user


def _compare(
    row: Row,
    email: str,
    user: User | None,
    teams: tuple[str, ...] | None,
    values: dict[str, Any],
    snapshot: Snapshot,
    opts: SyncOptions,
) -> Change:
    if user is None:
        role, _ = user_record.parse_role(row["role"], opts.default_role)
        fresh = {column: value for column, value in values.items() if value is not CLEARED}
        user_id = user_record.new_user_id(row["user_id"])
        return Change(ADDED, email, row, role=role, teams=teams or (), values=fresh, user_id=user_id)
    wanted = row["role"].strip().lower()
    role = user.role if wanted in ("", "default") else user_record.parse_role(wanted, opts.default_role)[0]
    current = snapshot.teams_of(user)
    after = current if teams is None else teams  # an empty cell never overwrites the proxy
    joins = tuple(team for team in after if team not in current)
    leaves = tuple(team for team in current if team not in after)
    unknown = [column for column in values if not snapshot.knows(user, column)]
    if unknown:
        raise ValueError(f"{unknown[0]} of this user is not known (the proxy's listing leaves it out)")
    fields = tuple(user_record.differences(values, user, snapshot.release))
    blocked = removal.offboarded_at(user) is not None
    action = REINSTATED if blocked else UPDATED if (role != user.role or joins or leaves or fields) else UNCHANGED
    return Change(
        action, user.email or email, row, user, role, role != user.role, after, joins, leaves, fields=fields,
        user_id=user.user_id,
    )  # fmt: skip


def _removal(user: User, snapshot: Snapshot, opts: SyncOptions) -> Change:
    """What happens to a managed user the file does not list."""
    base = Change(DELETED, user.email or "", None, user, user.role, teams=snapshot.teams_of(user), user_id=user.user_id)
    if opts.remove == DELETE:
        return replace(base, keys_lost=user.key_count, how=DELETE)
    blocked_for = removal.blocked_for(user, opts.now)
    if blocked_for is None:
        return replace(base, action=BLOCKED, how=BLOCK)
    if opts.purge_after and blocked_for >= options.duration_seconds(opts.purge_after):
        return replace(base, keys_lost=user.key_count, how=PURGE)
    return replace(base, action=UNCHANGED)  # blocked already, and not for long enough to purge


LEAVE_OUT = {ADDED: "add", UPDATED: "update", REINSTATED: "update", DELETED: "delete", BLOCKED: "delete"}


def _add(plan: Plan, change: Change, opts: SyncOptions) -> None:
    flag = LEAVE_OUT.get(change.action)
    if flag and not getattr(opts, flag):
        plan.left_out.append((change, f"left out by --no-{flag}"))
    else:
        plan[change.action].append(change)


class Sync:
    """Applies a plan: adds; then each user's update (role, access columns, reinstating) and its
    team joins before its leaves; then blocks and deletions. Each user's result row is written as
    soon as everything for that user is done."""

    def __init__(
        self,
        plan: Plan,
        snapshot: Snapshot,
        proxy: LiteLLMClient,
        runner: Runner,
        report: Report,
        keys: dict[str, list[Key]],
        now: datetime,
        journal: Journal,
    ):
        self.plan, self.snapshot, self.proxy, self.runner, self.report = plan, snapshot, proxy, runner, report
        self.keys, self.now, self.journal = keys, now, journal

    def values(self, change: Change, **overrides: object) -> dict[str, Any]:
        return {
            "action": change.action,
            "email": change.email,
            "user_id": change.user_id,
            "role": change.role or ("default" if change.action == ADDED else ""),
            "team_name": self.snapshot.team_cell(change.teams),
            "line": change.row.line if change.row else "",
            **overrides,
        }

    def ok(self, change: Change, **overrides: object) -> None:
        self.report.done("SUCCESS", tally=change.action, **self.values(change, **overrides))

    def failed(self, change: Change, reason: str, **overrides: object) -> None:
        if overrides.get("api_keys"):  # a user was created with a key: it belongs in the result file
            self.report.partly("FAILED", reason, change.row, **self.values(change, **overrides))
        else:
            self.report.fail(change.row, reason, **self.values(change, status="FAILED", **overrides))

    def run(self) -> None:
        for _, reason, change in self.plan.failures:
            self.failed(change, reason)
        for change, why in self.plan.left_out:
            self.report.done("SKIPPED", **self.values(change, detail=why))
        for change in self.plan[UNCHANGED]:
            blocked = removal.offboarded_at(change.user) if change.user and not change.row else None
            self.ok(change, detail=f"blocked on {blocked}" if blocked else "")
        updates = [*self.plan[UPDATED], *self.plan[REINSTATED]]
        removals = [*self.plan[BLOCKED], *self.plan[DELETED]]
        self.phase(self.adds, later=[*updates, *removals])
        self.phase(lambda: self.update(updates), later=removals)
        self.phase(
            lambda: self.runner.parallel(self.plan[BLOCKED], self.block, "users blocked"), later=self.plan[DELETED]
        )
        batches = list(chunks(self.plan[DELETED], self.proxy.delete_batch_size))
        self.phase(lambda: self.runner.parallel(batches, self.delete, "users deleted", size=len), later=[])

    def phase(self, work: Callable[[], None], *, later: list[Change]) -> None:
        """One phase; if the run stops in it, the changes it never started, and every later
        phase's, are recorded as not started."""
        try:
            work()
        except Interrupted as stop:
            flat = [c for item in stop.not_started for c in (item if isinstance(item, Sequence) else [item])]
            for change in [*flat, *later]:
                self.failed(change, f"not started: {stop.reason}")
            raise

    def adds(self) -> None:
        creations = [Creation(change, self.spec(change), change.user) for change in self.plan[ADDED]]
        create(creations, self.proxy, self.runner, self.journal, self.added, bulk=self.proxy.release.bulk_users)

    def spec(self, change: Change) -> NewUserSpec:
        """The user a change creates, with its user_id (noted in the journal before it is sent)."""
        fields = user_record.new_user_fields(change.values)
        user_id = change.user_id or str(uuid.uuid4())
        return NewUserSpec(change.email, change.role, change.teams, fields=fields, user_id=user_id)

    def added(self, change: Change, outcome: NewUser | ProxyError) -> None:
        if isinstance(outcome, ProxyError):
            reason = user_record.USER_EXISTS if outcome.already_exists else str(outcome)
            self.failed(change, reason, user_id=outcome.user_id or "")
            return
        restored = bool(change.row and change.row["user_id"])
        if change.user:
            detail = "finished: a killed run created it and never recorded its key; this is a new key"
        else:
            detail = f"restored under user_id {outcome.user_id}" if restored else ""
        self.report.tally("restored", restored and not outcome.problem)
        if outcome.problem:
            self.failed(change, outcome.problem, user_id=outcome.user_id, api_keys=outcome.key, detail=detail)
        else:
            self.ok(change, user_id=outcome.user_id, api_keys=outcome.key, detail=detail)

    def update(self, changes: list[Change]) -> None:
        """Each user's one /user/update (and, to reinstate, its keys unblocked) in parallel; then
        each team's joins in one batched request, teams in parallel; then each team's leaves in
        turn. A user whose join failed leaves no team."""
        lock = threading.Lock()
        problems: dict[str, list[str]] = defaultdict(list)
        done: dict[str, list[str]] = defaultdict(list)
        attempted: Counter[str] = Counter()

        def note(user_id: str, problem: str = "", did: str = "") -> None:
            with lock:
                attempted[user_id] += 1
                if problem:
                    problems[user_id].append(problem)
                if did:
                    done[user_id].append(did)

        def unblock(change: Change) -> None:
            try:
                count = removal.unblock_keys(self.proxy, self.keys.get(change.user_id, []))
                note(change.user_id, did=f"unblocked {plural(count, 'key')}")
                self.report.tally("keys unblocked", count)
            except ProxyError as exc:
                note(change.user_id, f"keys not unblocked: {exc}")

        def body(change: Change) -> dict[str, Any]:
            assert change.user is not None
            mark = {OFFBOARDED_AT: None} if change.action == REINSTATED else None
            fields = user_record.update_fields(list(change.fields), change.user, metadata=mark)
            return {**fields, "user_role": change.role} if change.role_changes else fields

        def set_fields(change: Change) -> None:
            try:
                self.proxy.update_user(change.user_id, body(change))
                note(change.user_id)
            except ProxyError as exc:
                note(change.user_id, f"not updated: {exc}")

        def set_fields_batch(batch: Sequence[Change]) -> None:
            try:
                outcomes = self.proxy.update_users([(change.user_id, body(change)) for change in batch])
            except ProxyError as exc:
                outcomes = {change.user_id: exc for change in batch}
            for change in batch:
                problem = outcomes.get(change.user_id)
                note(change.user_id, f"not updated: {problem}" if problem else "")

        def join(team_and_users: tuple[str, list[str]]) -> None:
            team, user_ids = team_and_users
            try:
                ghosts = self.proxy.add_team_members(team, user_ids)
            except ProxyError as exc:
                for user_id in user_ids:
                    note(user_id, f"not added to team {self.snapshot.team_label(team)}: {exc}")
                return
            for user_id in user_ids:
                gone = f"{user_record.USER_NOT_FOUND} (deleted by someone else during this run)"
                note(
                    user_id,
                    gone if user_id in ghosts else "",
                    "" if user_id in ghosts else f"joined {self.snapshot.team_label(team)}",
                )

        def leave(team_and_users: tuple[str, list[str]]) -> None:
            team, user_ids = team_and_users
            label = self.snapshot.team_label(team)
            for user_id in user_ids:
                if any(
                    problem.startswith(("not added", user_record.USER_NOT_FOUND))
                    for problem in problems.get(user_id, ())
                ):
                    note(user_id, f"kept in team {label}, since joining a team failed")
                    continue
                expected = len(_team_keys(self.keys, user_id, (team,)))
                try:
                    self.proxy.remove_team_member(team, user_id)
                    kept = len(self.proxy.user_keys(user_id, team_id=team)) if expected else 0
                except ProxyError as exc:
                    note(user_id, f"not removed from team {label}: {exc}")
                    continue
                keys = f", {plural(expected - kept, 'team key')} deleted" if expected - kept else ""
                keys += f", {plural(kept, 'team key')} kept by the proxy" if kept else ""
                note(user_id, did=f"left {label}{keys}")

        joins: dict[str, list[str]] = defaultdict(list)
        leaves: dict[str, list[str]] = defaultdict(list)
        for change in changes:
            for team in change.joins:
                joins[team].append(change.user_id)
            for team in change.leaves:
                leaves[team].append(change.user_id)
        updating = [c for c in changes if c.updates_user]
        stopped: Interrupted | None = None
        try:
            self.runner.parallel([c for c in changes if c.action == REINSTATED], unblock, "users' keys unblocked")
            if self.proxy.release.bulk_user_update:
                batches = list(chunks(updating, BULK_SIZE))
                self.runner.parallel(batches, set_fields_batch, "users updated", size=len)
            else:
                self.runner.parallel(updating, set_fields, "users updated")
            self.runner.parallel(list(joins.items()), join, "teams joined")
            self.runner.parallel(list(leaves.items()), leave, "teams left")
        except Interrupted as stop:
            stopped = stop
        for change in changes:
            expected = change.updates_user + (change.action == REINSTATED) + len(change.joins) + len(change.leaves)
            reasons = problems.get(change.user_id, [])
            if stopped and attempted[change.user_id] < expected:
                reasons = [*reasons, f"not all of this user's changes were made: {stopped.reason}"]
            detail = "; ".join([*_field_details(change), *done.get(change.user_id, [])])
            if reasons:
                self.failed(change, "; ".join(reasons), detail=detail)
            else:
                self.ok(change, detail=detail)
        if stopped:
            stopped.not_started = []
            raise stopped

    def block(self, change: Change) -> None:
        assert change.user is not None
        try:
            count = removal.block(self.proxy, change.user, self.keys.get(change.user_id, []), self.now)
        except ProxyError as exc:
            self.failed(change, f"not blocked: {exc}")
            return
        self.ok(change, detail=f"blocked {plural(count, 'key')}; offboarded_at {removal.now_mark(self.now)}")
        self.report.tally("keys blocked", count)

    def delete(self, batch: Sequence[Change]) -> None:
        by_id = {change.user_id: change for change in batch}
        try:
            outcome = self.proxy.delete_user_batch([change.user for change in batch if change.user])
        except ProxyError as exc:
            for change in batch:
                self.failed(change, str(exc))
            return
        for user in [*outcome.deleted, *outcome.unconfirmed]:
            change = by_id[user.user_id]
            detail = f"deleted with {plural(change.keys_lost, 'key')}"
            if change.how == PURGE:
                detail = f"purged (blocked on {removal.offboarded_at(user)}), {detail}"
            if user in outcome.unconfirmed:
                detail += "; the proxy's answer was lost and the user was gone afterwards (this run, or someone else)"
            self.ok(change, detail=detail)
            self.report.tally("purged", change.how == PURGE)
            self.report.tally("keys deleted", change.keys_lost)
        for user in outcome.missing:
            self.failed(by_id[user.user_id], f"{user_record.USER_NOT_FOUND} (deleted by someone else during this run)")
        for user_id, reason in outcome.failed.items():
            self.failed(by_id[user_id], reason)


def _field_details(change: Change) -> list[str]:
    assert change.user is not None
    details = [f"role {change.user.role or 'none'} -> {change.role}"] if change.role_changes else []
    return details + [field_change.describe() for field_change in change.fields]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.purge_after and args.remove != BLOCK:
        raise UsageError("ERROR: --purge-after deletes users blocked long enough: it needs --remove block.")
    settings = options.Settings.from_args(args)
    rows = csv_input.read_rows(args.csv_file, COLUMNS, encoding=args.encoding, metadata=True)
    if not rows:
        raise UsageError(
            f"ERROR: {args.csv_file} lists no users: a sync would delete every managed user. Nothing was changed "
            "(to delete users, list them for del_user.py)."
        )
    opts = SyncOptions(
        args.user_role, not args.no_add, not args.no_update, not args.no_delete, args.remove, args.purge_after
    )
    writes = not (args.dry_run or args.check)
    with (
        settings.connect(read_only=not writes) as proxy,
        lease.hold(proxy, "sync_user.py", writes=writes) as held,
    ):
        snapshot = Snapshot.load(proxy, models=any(row["models"] for row in rows))
        # before 1.108 the listing leaves max_parallel_requests out: read the users whose rows set it
        named = [user.user_id for row in rows if row["max_parallel_requests"] for user in _named(row, snapshot)]
        snapshot.add_details(proxy, named)
        journal = Journal(args.output_dir, "user_sync")
        plan = plan_sync(rows, snapshot, opts, journal.leftovers)
        csv_input.stop_if_strict(args.strict, args.csv_file, [(row, reason) for row, reason, _ in plan.failures])
        keys = snapshot.keys_of(proxy, [c.user for c in plan.leaving() if c.user])
        plan.count_team_keys(keys)
        print(plan.describe(snapshot), flush=True)
        limit, why = delete_limit(args.max_delete, plan.managed)
        if plan.removals > limit:
            raise SafetyStop(
                f"STOPPED: the plan deletes or blocks {plural(plan.removals, 'user')}, more than the limit of {limit} "
                f"({why}). Nothing was changed. Check {args.csv_file}; if this is intended, rerun with "
                f"--max-delete {plan.removals}."
            )
        if args.check:
            return Exit.ROW_FAILED if plan.failures else Exit.DRIFT if plan.changes_anything() else Exit.OK
        if args.dry_run:
            return Exit.ROW_FAILED if plan.failures else Exit.OK
        touched = [c for action in (UPDATED, REINSTATED, BLOCKED, DELETED) for c in plan[action]]
        unlisted = [c.user for c in touched if c.user and c.action != UPDATED and c.user_id not in keys]
        keys |= snapshot.keys_of(proxy, unlisted)
        undo = None
        if touched:
            lost = {c.user_id: _keys_lost(c, keys) for c in touched}
            snapshot.add_details(
                proxy, [c.user_id for c in plan[DELETED]]
            )  # what only /user/info shows, before it goes
            users = [snapshot.users_by_id[c.user_id] for c in touched]
            undo = removal.undo_file(args.output_dir, "user_sync", users, snapshot, lost)
        with (
            Report(args.output_dir, "user_sync", result_columns=RESULT_COLUMNS, holds_keys=bool(plan[ADDED])) as report,
            Runner(workers=args.workers, quiet=args.quiet, watched=[proxy, *([held] if held else [])]) as runner,
        ):
            try:
                code = report.run(lambda: Sync(plan, snapshot, proxy, runner, report, keys, opts.now, journal).run())
            finally:
                journal.close()
    print(f"Sync done: {summary(report.counts)}; failed {report.failed}; {report.files()}.")
    if undo:
        print(f"Undo file: {undo} (to restore: python sync_user.py --csv-file {undo} --no-delete)")
    return code


def _named(row: Row, snapshot: Snapshot) -> list[User]:
    return snapshot.users_by_email.get(user_record.plausible_email(row["email"]) or "", [])


def summary(counts: Counter[str]) -> str:
    """What the run did, with key counts: 'added 2 (1 restored), ..., blocked 1 (2 keys), ...'."""
    notes = {
        ADDED: f"{counts['restored']} restored" if counts["restored"] else "",
        REINSTATED: f"{plural(counts['keys unblocked'], 'key')} unblocked",
        BLOCKED: f"{plural(counts['keys blocked'], 'key')} blocked",
        DELETED: f"{counts['purged']} purged, " * bool(counts["purged"]) + f"{plural(counts['keys deleted'], 'key')}",
    }
    return ", ".join(
        f"{action.lower()} {counts[action]}" + (f" ({notes[action]})" if counts[action] and notes.get(action) else "")
        for action in (ADDED, UPDATED, REINSTATED, BLOCKED, DELETED, UNCHANGED)
        if counts[action] or action in (ADDED, UPDATED, DELETED, UNCHANGED)
    )


def _keys_lost(change: Change, keys: Mapping[str, Sequence[Key]]) -> list[str]:
    """The aliases of the keys a change deletes: all of a deleted user's, a leaving user's team keys."""
    lost = keys.get(change.user_id, []) if change.action == DELETED else _team_keys(keys, change.user_id, change.leaves)
    return [key.alias or "" for key in lost]


def _team_keys(keys: Mapping[str, Sequence[Key]], user_id: str, team_ids: Sequence[str]) -> list[Key]:
    return [key for key in keys.get(user_id, ()) if key.team_id in team_ids]


if __name__ == "__main__":
    sys.exit(exits.run(main))
