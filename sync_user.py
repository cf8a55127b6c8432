#!/usr/bin/env python3
"""Make the LiteLLM proxy's users match a CSV file: add, update and delete, with a plan first.

Manual: docs/sync_user_manual.md
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cli_common as cli
from litellm_client import LiteLLMClient, ProxyError, User, chunks

COLUMNS = ("email", "role", "team_name")
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
LEAVE_OUT = {"ADDED": "no_add", "UPDATED": "no_update", "DELETED": "no_delete"}  # the flag per kind
DEFAULT_SHARE = 10.0  # --max-delete default: 10% of the managed users...
DEFAULT_FLOOR = 5  # ...but never fewer than 5
EXAMPLES = """\
  python sync_user.py --dry-run                         # print the plan for user_list.csv, change nothing
  python sync_user.py                                   # apply it (stops if it deletes over 10% of the users)
  python sync_user.py --no-delete --csv-file hr.csv     # add and update only
"""


@dataclass(frozen=True, slots=True)
class Change:
    """One user the run looked at, and what it does to it."""

    action: str  # ADDED, UPDATED, DELETED or UNCHANGED
    email: str
    row: cli.Row | None  # None for users the file does not list
    user: User | None = None  # as the proxy has it; None for ADDED
    role: str | None = None  # the role after the run (None: none, the proxy's default)
    role_changes: bool = False
    teams: tuple[str, ...] = ()  # team ids after the run
    joins: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()
    keys_lost: int = 0  # keys the proxy deletes with the user, or with the teams it leaves

    @property
    def user_id(self) -> str:
        return self.user.user_id if self.user else ""


@dataclass
class Plan:
    changes: dict[str, list[Change]] = field(default_factory=lambda: defaultdict(list))
    left_out: list[tuple[Change, str]] = field(default_factory=list)  # by --no-add/--no-update/--no-delete
    failures: list[tuple[cli.Row, str, Change]] = field(default_factory=list)
    managed: int = 0

    def __getitem__(self, action: str) -> list[Change]:
        return self.changes[action]

    def describe(self, state: cli.ProxyState) -> str:
        def names(ids: tuple[str, ...]) -> str:
            return ";".join(sorted(state.team_label(team) for team in ids)) or "-"

        lines = [
            "Synchronization Plan:",
            f"  Users to add: {len(self['ADDED'])}",
            f"  Users to delete: {len(self['DELETED'])}",
            f"  Users to update: {len(self['UPDATED'])}",
            f"  Users unchanged: {len(self['UNCHANGED'])}",
        ]
        lines += [f"  + {c.email} (Role: {c.role or 'default'}, Team: {names(c.teams)})" for c in self["ADDED"]]
        lines += [
            f"  - {c.email} (Role: {c.role}, Team: {names(c.teams)}, keys: {c.keys_lost})" for c in self["DELETED"]
        ]
        for c in self["UPDATED"]:
            assert c.user is not None
            parts = [f"Role: {c.user.role or 'none'} -> {c.role}"] if c.role_changes else []
            if c.joins or c.leaves:
                parts.append(f"Teams: {names(c.user.teams)} -> {names(c.teams)}")
            if c.keys_lost:
                parts.append(f"leaving {names(c.leaves)} deletes {c.keys_lost} key(s)")
            lines.append(f"  ~ {c.email} ({', '.join(parts)})")
        lines += [f"  ! line {row.line} {row['email']}: {reason}" for row, reason, _ in self.failures]
        if self.left_out:
            lines.append(f"  Left out by --no-add/--no-update/--no-delete: {len(self.left_out)}")
        if not (self["ADDED"] or self["DELETED"] or self["UPDATED"]):
            lines.append(
                "No changes: the proxy already matches the file." if not self.failures else "No changes to make."
            )
        return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.parser(__doc__.splitlines()[0], examples=EXAMPLES, csv_default="user_list.csv")
    cli.add_role_option(p)
    p.add_argument("--no-add", action="store_true", help="do not add users missing from the proxy")
    p.add_argument("--no-update", action="store_true", help="do not change roles or team memberships")
    p.add_argument("--no-delete", action="store_true", help="do not delete users missing from the file")
    p.add_argument(
        "--max-delete",
        metavar="N|N%",
        help="stop (exit 4, nothing changed) if the plan deletes more users than this: a count, or a share "
        f"of the managed users (default: {DEFAULT_SHARE:g}%%, but never fewer than {DEFAULT_FLOOR})",
    )
    return p.parse_args(argv)


def delete_limit(text: str | None, managed: int) -> tuple[int, str]:
    """The most users this run may delete, and how that was worked out (for the message)."""
    if text is None:
        limit = max(DEFAULT_FLOOR, math.floor(managed * DEFAULT_SHARE / 100))
        return limit, f"the default: {DEFAULT_SHARE:g}% of {managed} managed users, at least {DEFAULT_FLOOR}"
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            return math.floor(managed * share / 100), f"--max-delete {text} of {managed} managed users"
        return int(text), f"--max-delete {text}"
    except ValueError:
        raise cli.UsageError(f"ERROR: --max-delete '{text}' is not a count (25) or a share (10%).") from None


def plan_sync(rows: list[cli.Row], state: cli.ProxyState, args: argparse.Namespace) -> Plan:
    """Compare the file with the proxy; no request is made here.

    Every email in the file, even on a bad row, keeps its user from deletion. Only managed users
    (an email and one of the four roles) are ever deleted. An empty role or team_name cell leaves
    that attribute of an existing user as it is.
    """
    plan = Plan()
    listed: set[str] = {row["email"].strip().lower() for row in rows}
    first_line: dict[str, int] = {}
    for row in rows:
        email = cli.parse_email(row["email"])
        users = state.users_by_email.get(email.lower(), []) if email else []
        try:
            if not email:
                raise ValueError(f"invalid email '{row['email']}'")
            if email.lower() in first_line:
                raise ValueError(f"duplicate email in the file (first on line {first_line[email.lower()]})")
            first_line[email.lower()] = row.line
            if len(users) > 1:
                ids = ", ".join(user.user_id for user in users)
                raise ValueError(f"{len(users)} users have this email ({ids}); none was changed")
            teams = tuple(state.find_team(alias).team_id for alias in cli.split_teams(row["team_name"]))
            change = _compare(row, email, users[0] if users else None, teams, state, args)
        except ValueError as problem:
            failed = Change("UPDATED" if users else "ADDED", row["email"], row, users[0] if users else None)
            plan.failures.append((row, str(problem), failed))
            continue
        _add(plan, change, args)
    for user in state.users:
        if user.is_managed and (user.email or "").strip().lower() not in listed:
            _add(
                plan,
                Change("DELETED", user.email or "", None, user, user.role, teams=user.teams, keys_lost=user.key_count),
                args,
            )
    plan.managed = sum(1 for user in state.users if user.is_managed)
    return plan


def _compare(
    row: cli.Row, email: str, user: User | None, teams: tuple[str, ...], state: cli.ProxyState, args: argparse.Namespace
) -> Change:
    if user is None:
        role, _ = cli.parse_role(row["role"], args.user_role)
        return Change("ADDED", email, row, role=role, teams=teams)
    wanted = row["role"].strip().lower()
    role = user.role if wanted in ("", "default") else cli.parse_role(wanted, args.user_role)[0]
    current = tuple(team for team in user.teams if team in state.teams_by_id)
    if not row["team_name"]:
        teams = current  # an empty cell never overwrites the proxy
    joins = tuple(team for team in teams if team not in current)
    leaves = tuple(team for team in current if team not in teams)
    keys_lost = sum(state.teams_by_id[team].keys_by_user.get(user.user_id, 0) for team in leaves)
    action = "UPDATED" if role != user.role or joins or leaves else "UNCHANGED"
    return Change(action, user.email or email, row, user, role, role != user.role, teams, joins, leaves, keys_lost)


def _add(plan: Plan, change: Change, args: argparse.Namespace) -> None:
    flag = LEAVE_OUT.get(change.action)
    if flag and getattr(args, flag):
        plan.left_out.append((change, f"left out by --{flag.replace('_', '-')}"))
    else:
        plan[change.action].append(change)


class Sync:
    """Applies a plan: adds, then role and team changes (joins before leaves), then deletions.
    Each user's result row is written as soon as everything for that user is done."""

    def __init__(
        self, plan: Plan, state: cli.ProxyState, proxy: LiteLLMClient, args: argparse.Namespace, report: cli.Report
    ):
        self.plan, self.state, self.proxy, self.args, self.report = plan, state, proxy, args, report

    def values(self, change: Change, **overrides: object) -> dict[str, object]:
        return {
            "action": change.action,
            "email": change.email,
            "user_id": change.user_id,
            "role": change.role or ("default" if change.action == "ADDED" else ""),
            "team_name": ";".join(sorted(self.state.team_label(team) for team in change.teams)),
            "line": change.row.line if change.row else "",
            "detail": _detail(change, self.state),
            **overrides,
        }

    def ok(self, change: Change, **overrides: object) -> None:
        self.report.done("SUCCESS", **self.values(change, **overrides))

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
        for change in self.plan["UNCHANGED"]:
            self.ok(change)
        adds, updates, deletes = self.plan["ADDED"], self.plan["UPDATED"], self.plan["DELETED"]
        try:
            self.parallel(adds, self.add, "users added")
        except cli.Interrupted as stop:
            self.not_started([*stop.not_started, *updates, *deletes], stop)
            raise
        try:
            self.update(updates)
        except cli.Interrupted as stop:
            self.not_started(deletes, stop)
            raise
        try:
            self.parallel([list(batch) for batch in chunks(deletes)], self.delete, "batches deleted")
        except cli.Interrupted as stop:
            self.not_started([change for batch in stop.not_started for change in batch], stop)
            raise

    def parallel(self, items: list[Any], work: Callable[[Any], None], label: str) -> None:
        progress = cli.Progress(len(items), label, quiet=self.args.quiet)
        cli.run_parallel(items, work, workers=self.args.workers, progress=progress, proxy=self.proxy)

    def not_started(self, changes: list[Change], stop: cli.Interrupted) -> None:
        for change in changes:
            self.failed(change, f"not started: {stop.reason}")

    def add(self, change: Change) -> None:
        try:
            new = self.proxy.create_user(change.email, role=change.role, team_ids=change.teams, with_key=True)
        except ProxyError as exc:
            self.failed(change, cli.USER_EXISTS if exc.already_exists else str(exc), user_id=exc.user_id or "")
            return
        if new.problem:
            self.failed(change, new.problem, user_id=new.user_id, api_keys=new.key)
        else:
            self.ok(change, user_id=new.user_id, api_keys=new.key)

    def update(self, changes: list[Change]) -> None:
        """Roles in parallel; then each team's joins in one batched request, teams in parallel;
        then each team's leaves in turn. A user whose join failed leaves no team."""
        lock = threading.Lock()
        problems: dict[str, list[str]] = defaultdict(list)
        attempted: Counter[str] = Counter()

        def note(user_id: str, problem: str = "") -> None:
            with lock:
                attempted[user_id] += 1
                if problem:
                    problems[user_id].append(problem)

        def set_role(change: Change) -> None:
            try:
                self.proxy.update_user_role(change.user_id, change.role or "")
                note(change.user_id)
            except ProxyError as exc:
                note(change.user_id, f"role not changed: {exc}")

        def join(team_and_users: tuple[str, list[str]]) -> None:
            team, user_ids = team_and_users
            try:
                self.proxy.add_team_members(team, user_ids)
                problem = ""
            except ProxyError as exc:
                problem = f"not added to team {self.state.team_label(team)}: {exc}"
            for user_id in user_ids:
                note(user_id, problem)

        def leave(team_and_users: tuple[str, list[str]]) -> None:
            team, user_ids = team_and_users
            for user_id in user_ids:
                if any(problem.startswith("not added") for problem in problems.get(user_id, ())):
                    note(user_id, f"kept in team {self.state.team_label(team)}, since joining a team failed")
                    continue
                try:
                    self.proxy.remove_team_member(team, user_id)
                    note(user_id)
                except ProxyError as exc:
                    note(user_id, f"not removed from team {self.state.team_label(team)}: {exc}")

        joins: dict[str, list[str]] = defaultdict(list)
        leaves: dict[str, list[str]] = defaultdict(list)
        for change in changes:
            for team in change.joins:
                joins[team].append(change.user_id)
            for team in change.leaves:
                leaves[team].append(change.user_id)
        stopped: cli.Interrupted | None = None
        try:
            self.parallel([c for c in changes if c.role_changes], set_role, "roles changed")
            self.parallel(list(joins.items()), join, "teams joined")
            self.parallel(list(leaves.items()), leave, "teams left")
        except cli.Interrupted as stop:
            stopped = stop
        for change in changes:
            expected = change.role_changes + len(change.joins) + len(change.leaves)
            reasons = problems.get(change.user_id, [])
            if stopped and attempted[change.user_id] < expected:
                reasons = [*reasons, f"not all of this user's changes were made: {stopped.reason}"]
            if reasons:
                self.failed(change, "; ".join(reasons))
            else:
                self.ok(change)
        if stopped:
            raise stopped

    def delete(self, batch: list[Change]) -> None:
        by_id = {change.user_id: change for change in batch}
        try:
            outcome = self.proxy.delete_user_batch([change.user for change in batch if change.user])
        except ProxyError as exc:
            for change in batch:
                self.failed(change, str(exc))
            return
        for user in outcome.deleted:
            self.ok(by_id[user.user_id])
        for user in outcome.missing:
            self.failed(by_id[user.user_id], f"{cli.USER_NOT_FOUND} (deleted by someone else during this run)")


def _detail(change: Change, state: cli.ProxyState) -> str:
    if change.action == "DELETED":
        return f"deleted with {change.keys_lost} key(s)"
    if change.action != "UPDATED" or change.user is None:
        return ""
    parts = [f"role {change.user.role or 'none'} -> {change.role}"] if change.role_changes else []
    parts += [f"joined {state.team_label(team)}" for team in change.joins]
    parts += [f"left {state.team_label(team)}" for team in change.leaves]
    if change.keys_lost:
        parts.append(f"{change.keys_lost} team key(s) deleted")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = cli.Settings.from_args(args)
    rows = cli.read_rows(args.csv_file, COLUMNS, encoding=args.encoding)
    if not rows:
        raise cli.UsageError(
            f"ERROR: {args.csv_file} lists no users: a sync would delete every managed user. Nothing was changed "
            "(to delete users, list them for del_user.py)."
        )
    with (
        settings.connect(read_only=args.dry_run) as proxy,
        cli.exclusive_run("sync_user", settings.base_url, args.dry_run),
    ):
        state = cli.ProxyState.load(proxy)
        plan = plan_sync(rows, state, args)
        cli.stop_if_strict(args, [(row, reason) for row, reason, _ in plan.failures])
        print(plan.describe(state), flush=True)
        limit, why = delete_limit(args.max_delete, plan.managed)
        if len(plan["DELETED"]) > limit:
            raise cli.SafetyStop(
                f"STOPPED: the plan deletes {len(plan['DELETED'])} users, more than the limit of {limit} ({why}). "
                f"Nothing was changed. Check {args.csv_file}; if these deletions are intended, rerun with "
                f"--max-delete {len(plan['DELETED'])}."
            )
        if args.dry_run:
            return cli.Exit.ROW_FAILED if plan.failures else cli.Exit.OK
        with cli.Report(args.output_dir, "user_sync", result_columns=RESULT_COLUMNS) as report:
            code = report.run(lambda: Sync(plan, state, proxy, args, report).run())
    counts = ", ".join(
        f"{action.lower()} {len(plan[action])}" for action in ("ADDED", "UPDATED", "DELETED", "UNCHANGED")
    )
    print(f"Sync done: {counts}; failed {report.failed}; {report.files()}.")
    return code


if __name__ == "__main__":
    sys.exit(cli.run(main))
