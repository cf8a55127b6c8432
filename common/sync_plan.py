"""What a sync would change: pure, from the file's rows and a snapshot of the proxy. No request is
made here; sync_apply.py applies the plan, and the plan's text is exactly what it applies."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from common import addresses, csv_input, options, removal, user_record
from common.actions import CHANGES, Action
from common.csv_input import Row
from common.options import DeleteLimit
from common.results import plural
from common.snapshot import Snapshot
from common.team_record import TeamPlan
from common.user_record import CLEARED, OFFBOARDED_AT, FieldChange
from litellm_client import Key, User

DEFAULT_SHARE = 10.0  # --max-delete default: 10% of the managed users...
DEFAULT_FLOOR = 5  # ...but never fewer than 5


@dataclass(frozen=True)
class SyncOptions:
    """What sync_user.py's flags ask of a plan."""

    default_role: str = "proxy_admin"
    add: bool = True
    update: bool = True
    delete: bool = True
    remove: Action = Action.DELETE  # what happens to a managed user the file does not list: DELETE or BLOCK
    purge_after: str | None = None  # a user blocked longer ago than this is deleted
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One user the run looked at, and what it does to it."""

    action: Action
    email: str
    row: Row | None  # None for users the file does not list
    user: User | None = None  # as the proxy has it; for ADD, a user a killed run left to finish
    user_id: str = ""  # the user's id (ADD: the id the file asks for, or "")
    role: str | None = None  # the role after the run (None: none, the proxy's default)
    role_changes: bool = False
    teams: tuple[str, ...] = ()  # team ids after the run
    joins: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()
    keys_lost: int = 0  # keys the proxy deletes with the user, or with the teams it leaves
    field_changes: tuple[FieldChange, ...] = ()  # access columns to change (UPDATE, REINSTATE)
    team_roles: tuple[tuple[str, bool], ...] = ()  # (team id, admin?) for each team where its role changes
    admin_of: tuple[str, ...] | None = None  # the teams it is an admin of after the run (None: roles left alone)
    new_values: dict[str, Any] = field(default_factory=dict)  # the access columns a new user gets (ADD)
    offboarded_since: str = ""  # ADD: created offboarded (state offboarded), marked since this time

    @property
    def updates_user(self) -> bool:
        """The change needs one /user/update (role, access columns, the offboarding mark)."""
        return self.role_changes or bool(self.field_changes) or self.action is Action.REINSTATE


@dataclass
class SyncPlan:
    changes: dict[Action, list[Change]] = field(default_factory=lambda: defaultdict(list))
    left_out: list[tuple[Change, str]] = field(default_factory=list)  # by --no-add/--no-update/--no-delete
    failures: list[tuple[Row, str, Change]] = field(default_factory=list)
    managed: int = 0

    def __getitem__(self, action: Action) -> list[Change]:
        return self.changes[action]

    @property
    def removals(self) -> list[Change]:
        return [c for action in CHANGES if action.removes for c in self[action]]

    def changes_anything(self) -> bool:
        return any(self[action] for action in CHANGES)

    def counts(self) -> dict[str, int]:
        """What the plan would do, in the words of the run's summary (the run report of a dry run)."""
        words = {action.word.lower(): 0 for action in (Action.ADD, Action.UPDATE, Action.DELETE, Action.KEEP)}
        for action in (*CHANGES, Action.KEEP):
            words[action.word.lower()] = words.get(action.word.lower(), 0) + len(self[action])
        return words | {"purged": len(self[Action.PURGE]), "skipped": len(self.left_out), "failed": len(self.failures)}

    def leaving(self) -> list[Change]:
        """The changes that take a user off a team: the proxy deletes its keys for that team (and
        the tools do, on releases that keep them)."""
        return [c for action in (Action.UPDATE, Action.REINSTATE) for c in self[action] if c.leaves]

    def count_team_keys(self, keys: Mapping[str, Sequence[Key]]) -> None:
        """Note how many keys each leaving user loses with its teams, from its keys as listed."""
        for action in (Action.UPDATE, Action.REINSTATE):
            self.changes[action] = [
                replace(c, keys_lost=len(team_keys(keys, c.user_id, c.leaves))) if c.leaves else c for c in self[action]
            ]

    def describe(
        self, snapshot: Snapshot, keys: Mapping[str, Sequence[Key]], teams: TeamPlan | None = None, teams_file: str = ""
    ) -> str:
        """The plan, in the words of Terraform's: one line a change; keys: the users' keys, so that
        a block and a reinstatement count the keys they really block and unblock; teams: a teams
        file's plan, shown first."""
        deletions = [*self[Action.DELETE], *self[Action.PURGE]]
        lines = [
            "Synchronization Plan:",
            *(teams.lines(teams_file) if teams else []),
            f"  Users to add: {len(self[Action.ADD])}",
            f"  Users to delete: {len(deletions)}",
            f"  Users to update: {len(self[Action.UPDATE])}",
            f"  Users unchanged: {len(self[Action.KEEP])}",
        ]
        if self[Action.BLOCK]:
            lines.append(f"  Users to block: {len(self[Action.BLOCK])}")
        if self[Action.REINSTATE]:
            lines.append(f"  Users to reinstate: {len(self[Action.REINSTATE])}")
        for c in self[Action.ADD]:
            if c.user:
                lines.append(f"  + {c.email} (finish user_id {c.user_id}: a killed run never recorded its key)")
                continue
            restore = f"restore user_id {c.user_id}, " if c.row and c.row["user_id"] else ""
            restore += f"offboarded since {c.offboarded_since}, no key, " if c.offboarded_since else ""
            values = "".join(f", {column}: {user_record.show(column, v)}" for column, v in c.new_values.items())
            values = (f", admin_of: {_teams(snapshot, c.admin_of)}" if c.admin_of else "") + values
            lines.append(
                f"  + {c.email} ({restore}Role: {c.role or 'default'}, Team: {_teams(snapshot, c.teams)}{values})"
            )
        for c in [*deletions, *self[Action.BLOCK]]:
            assert c.user is not None
            if c.action is Action.DELETE:
                lines.append(f"  - {c.email} (Role: {c.role}, Team: {_teams(snapshot, c.teams)}, keys: {c.keys_lost})")
            else:
                lines.append(f"  - {c.email} ({removal.Removal(c.user, c.action).describe(keys.get(c.user_id, []))})")
        lines += [f"  ~ {c.email} ({', '.join(_update_words(c, snapshot))})" for c in self[Action.UPDATE]]
        for c in self[Action.REINSTATE]:
            assert c.user is not None
            held = keys.get(c.user_id, [])
            unblock = f"unblock: {plural(len(removal.keys_to_unblock(c.user, held)), 'key')}"
            more = "".join(
                f", {part}" for part in [*_update_words(c, snapshot), removal.left_blocked(c.user, held)] if part
            )
            lines.append(f"  ^ {c.email} ({unblock}{more})")
        lines += [f"  ! line {row.line} {row['email']}: {reason}" for row, reason, _ in self.failures]
        if self.left_out:
            lines.append(f"  Left out by --no-add/--no-update/--no-delete: {len(self.left_out)}")
        if not self.changes_anything() and not (teams and teams.changes_anything()):
            lines.append(
                "No changes: the proxy already matches the file." if not self.failures else "No changes to make."
            )
        return "\n".join(lines)


def _teams(snapshot: Snapshot, team_ids: Sequence[str]) -> str:
    return snapshot.team_cell(team_ids) or "-"


def _update_words(c: Change, snapshot: Snapshot) -> list[str]:
    """What an update changes, old -> new, in the words of the plan."""
    assert c.user is not None
    parts = [f"Role: {c.user.role or 'none'} -> {c.role}"] if c.role_changes else []
    if c.joins or c.leaves:
        parts.append(f"Teams: {_teams(snapshot, snapshot.teams_of(c.user))} -> {_teams(snapshot, c.teams)}")
    if c.team_roles:
        parts.append(f"admin_of: {_teams(snapshot, snapshot.admin_of(c.user))} -> {_teams(snapshot, c.admin_of or ())}")
    parts += [change.describe() for change in c.field_changes]
    if c.keys_lost:
        parts.append(f"leaving {_teams(snapshot, c.leaves)} deletes {plural(c.keys_lost, 'key')}")
    return parts


def delete_limit(limit: DeleteLimit | None, managed: int) -> tuple[int, str]:
    """The most users this run may delete or block, and how that was worked out (for the message)."""
    if limit is None:
        most = max(DEFAULT_FLOOR, int(managed * DEFAULT_SHARE // 100))
        return most, f"the default: {DEFAULT_SHARE:g}% of {managed} managed users, at least {DEFAULT_FLOOR}"
    if limit.share is not None:
        return limit.limit(managed), f"--max-delete {limit.share:g}% of {managed} managed users"
    return limit.limit(managed), f"--max-delete {limit.count}"


def plan_sync(
    rows: Sequence[Row], snapshot: Snapshot, opts: SyncOptions, inflight: Mapping[str, str] | None = None
) -> SyncPlan:
    """Compare the file with the proxy. inflight: user_id -> email of creates a killed run sent
    and never recorded: their users are finished (a new key).

    Every email in the file, even on a bad row, keeps its user from removal (a bad row's cell is
    read for every address it plausibly holds). Only managed users (an email and one of the four
    roles) are ever removed. An empty cell leaves that attribute of an existing user as it is.
    """
    inflight = inflight or {}
    if opts.delete and not snapshot.complete:
        raise RuntimeError("a plan that removes users needs every user of the proxy, not only those a file names")
    plan = SyncPlan()
    listed = set().union(*(addresses.protected(row["email"]) for row in rows))
    repeats = csv_input.Repeats()
    for row in rows:
        key = addresses.key(row["email"])
        users = snapshot.users_by_email.get(key, [])
        try:
            if row.problem:
                raise ValueError(row.problem)
            email = addresses.parse(row["email"], held=[user.email or "" for user in users])
            repeats.check(row, key)
            if len(users) > 1:
                ids = ", ".join(user.user_id for user in users)
                raise ValueError(f"{len(users)} users have this email ({ids}); none was changed")
            user = _by_id(row, users[0] if users else None, snapshot)
            names = user_record.team_names(row["team_name"])
            teams = None if names is None else tuple(snapshot.find_team(name).team_id for name in names)
            values = user_record.wanted(row.cells, snapshot.models)
            state = _state(row["state"])
            change = _compare(row, email, user, teams, values, snapshot, opts, state)
            change = _roles(change, user_record.admin_names(row.cells), snapshot)
            if user is not None and user.user_id in inflight:
                change = replace(change, action=Action.ADD, new_values={}, user=user)
            elif user is None and not change.user_id:
                sent = [user_id for user_id, sent_to in inflight.items() if addresses.key(sent_to) == key]
                change = replace(change, user_id=sent[0]) if sent else change
        except ValueError as problem:
            failed = Change(
                action=Action.UPDATE if users else Action.ADD,
                email=row["email"],
                row=row,
                user=users[0] if users else None,
            )
            plan.failures.append((row, str(problem), failed))
            continue
        _add(plan, change, opts)
    if opts.delete:  # without deletions the users the file does not list are not looked at (nor read)
        for user in snapshot.managed():
            if addresses.key(user.email or "") not in listed:
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


ACTIVE, OFFBOARDED = "active", "offboarded"  # a state cell; empty leaves the user's state as it is


def _state(cell: str) -> str:
    state = cell.strip().lower()
    if state not in ("", ACTIVE, OFFBOARDED):
        raise ValueError(f"state '{cell.strip()}' is not {ACTIVE} or {OFFBOARDED} (or empty: left as it is)")
    return state


def _compare(
    row: Row,
    email: str,
    user: User | None,
    teams: tuple[str, ...] | None,
    values: dict[str, Any],
    snapshot: Snapshot,
    opts: SyncOptions,
    state: str,
) -> Change:
    if user is None:
        if not row["user_id"]:  # a row with a user_id restores what a proxy held, whatever its shape
            addresses.check_new(email)
        role, _ = user_record.parse_role(row["role"], opts.default_role)
        fresh = {column: value for column, value in values.items() if value is not CLEARED}
        user_record.check_new(fresh, snapshot.rules)
        user_id = user_record.new_user_id(row["user_id"])
        since = (_mark_in(row["metadata"]) or removal.now_mark(opts.now)) if state == OFFBOARDED else ""
        return Change(
            action=Action.ADD,
            email=email,
            row=row,
            role=role,
            teams=teams or (),
            new_values=fresh,
            user_id=user_id,
            offboarded_since=since,
        )
    wanted = row["role"].strip().lower()
    role = user.role if wanted in ("", "default") else user_record.parse_role(wanted, opts.default_role)[0]
    current = snapshot.teams_of(user)
    after = current if teams is None else teams  # an empty cell never overwrites the proxy
    joins = tuple(team for team in after if team not in current)
    leaves = tuple(team for team in current if team not in after)
    unknown = [column for column in values if not snapshot.knows(user, column)]
    if unknown:
        raise ValueError(f"{unknown[0]} of this user is not known (the proxy's listing leaves it out)")
    field_changes = tuple(user_record.differences(values, user, snapshot.rules))
    changes = role != user.role or joins or leaves or field_changes
    blocked = removal.offboarded_at(user) is not None
    if blocked and state == ACTIVE:  # reinstating takes the file's word for it, never a row alone
        action = Action.REINSTATE
    elif not blocked and state == OFFBOARDED:
        if changes:
            raise ValueError(
                "to offboard a user, change only its state: the row's other changes would go to a blocked user"
            )
        action = Action.BLOCK
    else:
        action = Action.UPDATE if changes else Action.KEEP
    return Change(
        action=action,
        email=user.email or email,
        row=row,
        user=user,
        user_id=user.user_id,
        role=role,
        role_changes=role != user.role,
        teams=after,
        joins=joins,
        leaves=leaves,
        field_changes=field_changes,
    )


def _roles(change: Change, names: list[str] | None, snapshot: Snapshot) -> Change:
    """The team roles a row's admin_of asks for (names None: the file has no admin_of column, and
    roles are left as they are): admin in those teams, an ordinary member in the row's others."""
    if names is None:
        return change
    admins = tuple(snapshot.find_team(name).team_id for name in names)
    strays = [name for name, team_id in zip(names, admins, strict=True) if team_id not in change.teams]
    if strays:
        raise ValueError(f"admin_of names team '{strays[0]}', which is not one of the row's teams")
    current = set(snapshot.admin_of(change.user)) if change.user else set()
    roles = tuple((team, team in admins) for team in change.teams if (team in admins) != (team in current))
    action = Action.UPDATE if roles and change.action is Action.KEEP else change.action
    if roles and change.action is Action.BLOCK:
        raise ValueError("to offboard a user, change only its state: its admin_of change would go to a blocked user")
    return replace(change, action=action, team_roles=roles, admin_of=admins)


def _removal(user: User, snapshot: Snapshot, opts: SyncOptions) -> Change:
    """What happens to a managed user the file does not list."""
    base = Change(
        action=Action.DELETE,
        email=user.email or "",
        row=None,
        user=user,
        user_id=user.user_id,
        role=user.role,
        teams=snapshot.teams_of(user),
    )
    if opts.remove is Action.DELETE:
        return replace(base, keys_lost=user.key_count)
    blocked_for = removal.blocked_for(user, opts.now)
    if blocked_for is None:
        return replace(base, action=Action.BLOCK)
    if opts.purge_after and blocked_for >= options.duration_seconds(opts.purge_after):
        return replace(base, action=Action.PURGE, keys_lost=user.key_count)
    return replace(base, action=Action.KEEP)  # blocked already, and not for long enough to purge


LEFT_OUT_BY = {
    Action.ADD: "add",
    Action.UPDATE: "update",
    Action.REINSTATE: "update",
    Action.DELETE: "delete",
    Action.BLOCK: "delete",
    Action.PURGE: "delete",
}


def _add(plan: SyncPlan, change: Change, opts: SyncOptions) -> None:
    flag = LEFT_OUT_BY.get(change.action)
    if flag and not getattr(opts, flag):
        plan.left_out.append((change, f"left out by --no-{flag}"))
    else:
        plan[change.action].append(change)


def _mark_in(cell: str) -> str:
    """The offboarded_at of a metadata cell (an undo file's: when the user was offboarded), or ""."""
    try:
        value = json.loads(cell) if cell else {}
    except ValueError:
        return ""
    return str(value.get(OFFBOARDED_AT) or "") if isinstance(value, dict) else ""


def team_keys(keys: Mapping[str, Sequence[Key]], user_id: str, team_ids: Sequence[str]) -> list[Key]:
    """A user's keys that belong to these teams."""
    return [key for key in keys.get(user_id, ()) if key.team_id in team_ids]


def keys_lost(change: Change, keys: Mapping[str, Sequence[Key]]) -> list[Key]:
    """The keys a change deletes: all of a deleted user's, a leaving user's team keys."""
    if change.action.deletes:
        return list(keys.get(change.user_id, []))
    return team_keys(keys, change.user_id, change.leaves)
