"""add_user.py's plan and its application: each row checked against the file and the proxy (its
user, role, teams, key name and access columns), then the users created, in bulk where the proxy
takes it, with one result or error row per row."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from common import addresses, csv_input, options, team_apply, user_record
from common.creation import Creation, create
from common.csv_input import Row
from common.journal import Journal
from common.results import Report, plural
from common.runner import Interrupted, Runner
from common.snapshot import Snapshot
from common.team_record import TeamPlan
from litellm_client import LiteLLMClient, NewUser, NewUserSpec, ProxyError, User

# user_state in an error file: the row's user exists (created) or may (unknown), its key unseen
UNFINISHED = ("created", "unknown")


@dataclass(frozen=True)
class Addition:
    row: Row
    spec: NewUserSpec
    teams: list[str]  # as the file names them
    values: dict[str, Any]  # the access columns the row sets
    unfinished: User | None = None  # created by an earlier run whose answer was lost: finish it
    admin_of: tuple[str, ...] = ()  # the ids of the teams it is made an admin of, once created


@dataclass
class AddPlan:
    additions: list[Addition] = field(default_factory=list)
    skipped: list[tuple[Row, User]] = field(default_factory=list)
    failures: list[tuple[Row, str]] = field(default_factory=list)
    new_teams: list[str] = field(default_factory=list)
    default_role_rows: int = 0

    def counts(self, teams: TeamPlan | None = None) -> dict[str, int]:
        """What the plan would do, in the words of the run's summary (the run report of a dry run);
        teams: a teams file's plan."""
        return {
            "created": len(self.additions),
            "skipped": len(self.skipped),
            "failed": len(self.failures),
            "teams_created": len(self.new_teams) + (len(teams.creates) if teams else 0),
            "teams_failed": len(teams.failures) if teams else 0,
        }

    def describe(self, csv_file: str, default_role: str, teams: TeamPlan | None = None, teams_file: str = "") -> str:
        """teams: a teams file's plan (the teams it creates), shown first."""
        lines = [f"Plan for {csv_file}:", *(teams.lines(teams_file, updates=False) if teams else [])]
        lines += [f"  + team {alias}" for alias in self.new_teams]
        for add in self.additions:
            key = (add.spec.key_alias or "(no alias)") if add.spec.with_key else "none"
            if add.spec.with_key and add.spec.key_duration:
                key += f", expires after {add.spec.key_duration}"
            values = "".join(f", {column}: {user_record.show(column, v)}" for column, v in add.values.items())
            if add.admin_of:
                names = [
                    name for name, team_id in zip(add.teams, add.spec.team_ids, strict=True) if team_id in add.admin_of
                ]
                values = f", admin_of: {';'.join(names)}" + values
            finish = f", finishing user_id {add.unfinished.user_id}" if add.unfinished else ""
            lines.append(
                f"  + {add.spec.email} (Role: {add.spec.role or 'default'}, Teams: {';'.join(add.teams) or '-'}, "
                f"Key: {key}{values}{finish})"
            )
        lines += [f"  = {row['email']} (exists: skipped)" for row, _ in self.skipped]
        lines += [f"  ! line {row.line} {row['email']}: {reason}" for row, reason in self.failures]
        new_teams = len(self.new_teams) + (len(teams.creates) if teams else 0)
        lines.append(
            f"Users to create: {len(self.additions)}, teams to create: {new_teams}, "
            f"skipped: {len(self.skipped)}, rows with errors: {len(self.failures)}."
        )
        if self.default_role_rows:
            lines.append(
                f"{plural(self.default_role_rows, 'row')} have no role and get the default role {default_role}."
            )
        return "\n".join(lines)


def plan_additions(
    rows: Sequence[Row],
    snapshot: Snapshot,
    *,
    default_role: str,
    skip_existing: bool = False,
    create_teams: bool = False,
    with_key: bool = True,
    key_duration: str | None = None,
    inflight: Mapping[str, str] = {},
) -> AddPlan:
    """Check every row against the file and the proxy's snapshot; no request is made here.
    inflight: user_id -> email of creates a killed run sent and never recorded (their users, if
    they exist, are finished: their keys were never seen)."""
    plan = AddPlan()
    repeats = csv_input.Repeats()
    key_line: dict[str, int] = {}
    for row in rows:
        new_teams: list[str] = []
        try:
            if row.problem:
                raise ValueError(row.problem)
            email_key = addresses.key(row["email"])
            email = addresses.parse(
                row["email"], held=[user.email or "" for user in snapshot.users_by_email.get(email_key, [])]
            )
            repeats.check(row, email_key)
            existing = snapshot.users_by_email.get(email_key, [])
            unfinished = _unfinished(row, existing, snapshot, inflight)
            if existing and not unfinished:
                if skip_existing:
                    plan.skipped.append((row, existing[0]))
                    continue
                raise ValueError(user_record.USER_EXISTS)
            if not existing and not row["user_id"]:  # a row with a user_id restores what a proxy held
                addresses.check_new(email)
            role, used_default = user_record.parse_role(row["role"], default_role)
            teams = user_record.team_names(row["team_name"]) or []
            team_ids = []
            for name in teams:
                team = snapshot.team_named(name)
                if team is None and not create_teams:
                    raise ValueError(f"team '{name}' does not exist (--create-teams creates it)")
                if team is None:
                    new_teams.append(name)
                team_ids.append(team.team_id if team else name)  # a new team's name, until it has an id
            key_alias = row["key_name"] or None if with_key else None
            if key_alias in key_line:
                raise ValueError(f"duplicate key name in the file (first on line {key_line[key_alias]})")
            if key_alias:
                key_line[key_alias] = row.line
            if key_alias in snapshot.key_aliases and not unfinished:
                raise ValueError(f"key name '{key_alias}' is already used on the proxy")
            duration = _key_duration(row["key_duration"]) if row["key_duration"] else key_duration
            if with_key and duration:
                problem = user_record.duration_refusal("key_duration", duration, snapshot.rules)
                if problem:
                    raise ValueError(problem)
            values = user_record.wanted(row.cells, snapshot.models)
            user_record.check_new(values, snapshot.rules)
            admin_of = _admin_of(row, teams, team_ids)
        except (ValueError, argparse.ArgumentTypeError) as problem:
            plan.failures.append((row, str(problem)))
            continue
        plan.default_role_rows += used_default
        plan.new_teams += [name for name in new_teams if name not in plan.new_teams]
        spec = NewUserSpec(
            email,
            role,
            tuple(team_ids),
            key_alias,
            with_key,
            duration,
            user_record.new_fields(values),
            user_id=unfinished.user_id if unfinished else row["user_id"] or _sent_before(email_key, inflight),
        )
        plan.additions.append(Addition(row, spec, teams, values, unfinished, admin_of))
    return plan


def _admin_of(row: Row, teams: list[str], team_ids: list[str]) -> tuple[str, ...]:
    """The ids of the row's teams its admin_of names (each must be one of them), or ValueError."""
    names = user_record.admin_names(row.cells) or []
    strays = [name for name in names if name not in teams and name not in team_ids]
    if strays:
        raise ValueError(f"admin_of names team '{strays[0]}', which is not one of the row's teams")
    return tuple(team_id for name, team_id in zip(teams, team_ids, strict=True) if name in names or team_id in names)


def _sent_before(email_key: str, inflight: Mapping[str, str]) -> str | None:
    """The id a killed run sent this email's create with, which never made a user: sent again
    under that id, so that its journal entry is settled (and a late create is not doubled)."""
    return next((user_id for user_id, email in inflight.items() if addresses.key(email) == email_key), None)


def _key_duration(cell: str) -> str:
    try:
        return options.litellm_duration(cell)
    except argparse.ArgumentTypeError as problem:
        raise ValueError(f"key_duration {problem}") from None


def _unfinished(row: Row, existing: list[User], snapshot: Snapshot, inflight: Mapping[str, str]) -> User | None:
    """The user an earlier run created without handing out its key: one a killed run had in
    flight, or one whose error row is fed back (user_id, and user_state created or unknown).
    That user is finished (a new key, its teams), not refused.
    A user_id that belongs to another email is an error; one not on the proxy is the id the user
    is created with; an existing user on any other row exists, as for a row without user_id."""
    in_flight = [user for user in existing if user.user_id in inflight]
    if in_flight:
        return in_flight[0]
    user_id = row["user_id"]
    if not user_id:
        return None
    user = snapshot.users_by_id.get(user_id)
    if user is None:
        if existing:
            raise ValueError(user_record.USER_EXISTS)
        user_record.new_user_id(user_id)
        return None
    if user not in existing:
        raise ValueError(f"user_id {user_id} belongs to {user.email or 'a user without email'}, not {row['email']}")
    return user if row["user_state"] in UNFINISHED else None


def apply_additions(
    plan: AddPlan,
    proxy: LiteLLMClient,
    runner: Runner,
    report: Report,
    journal: Journal,
    *,
    with_key: bool,
    invitations: str | None,
    broken: Mapping[str, str] = {},
) -> None:
    """invitations: the URL invitation links start with (None: no invitations); broken: why each
    team a teams file was to create was not (by id: its rows fail)."""
    for row, reason in plan.failures:
        report.fail(row, reason)
    for row, user in plan.skipped:
        report.done("skipped", email=row["email"], role=user.role, user_id=user.user_id)
    new_team_ids: dict[str, str] = {}
    broken = {**broken}

    def create_team(alias: str) -> None:
        try:
            new_team_ids[alias] = proxy.create_team(alias).team_id
        except ProxyError as exc:
            broken[alias] = f"team '{alias}' could not be created: {exc}"

    def prepared(addition: Addition) -> Creation[Addition] | None:
        """The row's user with its new teams' ids and its user_id, or None (recorded) if one of
        its teams could not be made."""
        problems = [broken[name] for name in (*addition.teams, *addition.spec.team_ids) if name in broken]
        if problems:
            report.fail(addition.row, problems[0])
            return None
        team_ids = tuple(new_team_ids.get(t, t) for t in addition.spec.team_ids)
        spec = replace(addition.spec, team_ids=team_ids, user_id=addition.spec.user_id or str(uuid.uuid4()))
        return Creation(addition, spec, addition.unfinished)

    def record(addition: Addition, outcome: NewUser | ProxyError) -> None:
        if isinstance(outcome, ProxyError):
            reason = user_record.USER_EXISTS if outcome.already_exists else str(outcome)
            state = ("unknown" if outcome.answer_lost else "created") if outcome.user_id else ""
            if state:
                reason += ": feed this error file back to add_user.py to finish this user"
            report.fail(addition.row, reason, user_id=outcome.user_id or "", user_state=state)
            return
        problems = [outcome.problem] if outcome.problem else []
        if not outcome.problem:  # made an admin where its admin_of says, once on the team
            for name, team_id in zip(addition.teams, addition.spec.team_ids, strict=True):
                if team_id in addition.admin_of:
                    team = new_team_ids.get(team_id, team_id)
                    _, problem = team_apply.set_role(proxy, team, name, outcome.user_id, admin=True)
                    problems += [problem] if problem else []
        invitation = ""
        if invitations:
            try:
                invitation = f"{invitations}/ui/onboarding?id={proxy.create_invitation(outcome.user_id)}"
            except ProxyError as exc:
                problems.append(f"invitation failed: {exc}")
        result = _result(addition, outcome, invitation, with_key)
        if problems:
            report.partly("created", "; ".join(problems), addition.row, **result)
        else:
            report.done("created", **result)

    try:
        runner.parallel(plan.new_teams, create_team, "teams created", workers=1)
    except Interrupted as stop:
        for addition in plan.additions:
            report.not_started(addition.row, stop.reason)
        raise
    creations = [ready for addition in plan.additions if (ready := prepared(addition))]
    try:
        # one user a request with invitations: each needs one more request anyway
        create(creations, proxy, runner, journal, record, batch_size=1 if invitations else None)
    except Interrupted as stop:
        for addition in stop.not_started:
            report.not_started(addition.row, stop.reason)
        raise


def _result(addition: Addition, new: NewUser, invitation: str, with_key: bool) -> dict[str, Any]:
    return {
        **{column: user_record.show(column, value) for column, value in addition.values.items()},
        "email": addition.spec.email,
        "role": addition.spec.role or "default",
        "user_id": new.user_id,
        "team_name": ";".join(addition.teams),
        "models": new.models,
        "api_keys": new.key if with_key else "",
        "key_duration": addition.spec.key_duration if with_key else "",
        "invitation_url": invitation,
    }


def invitation_base(settings: options.Settings, proxy: LiteLLMClient) -> tuple[str, str]:
    """Where invitation links point, and why that URL: the public URL if set, else the one the
    proxy reports (its PROXY_BASE_URL), else the URL these tools reach it at."""
    if settings.public_url:
        return settings.public_url, "LITELLM_PUBLIC_URL"
    reported = proxy.public_url()
    if reported:
        return reported, "the proxy's PROXY_BASE_URL"
    return (
        settings.base_url,
        "the URL these tools reach the proxy at; set LITELLM_PUBLIC_URL if users reach it elsewhere",
    )
