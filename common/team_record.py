"""Teams as code: the teams file (--teams-file), a team's columns, and the plan that compares the
file with the proxy's teams. Pure: no request is made here.

A team's columns read and write as the users' access columns do (user_record): an empty cell
leaves a value alone, `none` clears it, anything else is the value, checked before any change.
Only the sending differs: /team/update clears max_budget, budget_duration, tpm_limit and
rpm_limit with null on every release the contract tests run, models with [] (a team
without models may use every model), and replaces metadata whole (so it is sent merged).

A row names its team by team_id where it has one (as an undo file or an export does), else by
its alias; a team the file does not name is never changed, and no team is ever deleted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from common import csv_input, user_record
from common.csv_input import METADATA_PREFIX, Row
from common.user_record import CLEARED, Field, FieldChange
from litellm_client import Release, Team

TEAM_NAME, TEAM_ID = "team_name", "team_id"
SETTINGS = ("max_budget", "budget_duration", "models", "tpm_limit", "rpm_limit")
COLUMNS = (TEAM_NAME, TEAM_ID, *SETTINGS, user_record.METADATA)  # and metadata.<name>; metadata: the whole object
NONE_SHOWN = "-"  # how the plan writes "no alias", "admin of no team"


def read(path: str, encoding: str) -> list[Row]:
    """The teams file's rows (header names in any case, as the users file; other columns ignored)."""
    return csv_input.read_rows(path, COLUMNS, encoding=encoding, required=(TEAM_NAME, TEAM_ID), metadata=True)


def field(column: str) -> Field:
    """A team column's field: the users' (the same cells and text), but a team's models are cleared with []."""
    base = user_record.field(column)
    return replace(base, clear_with=[]) if column == "models" else base


def is_setting(column: str) -> bool:
    return column in (*SETTINGS, user_record.METADATA) or (
        column.startswith(METADATA_PREFIX) and column != METADATA_PREFIX
    )


def refusal(column: str, value: Any, rules: Release | None) -> str | None:
    """Why this release would not take a team's value: /team/update takes null and 0 on every
    release seen, so only how a release reads a duration can stand in the way."""
    return None if value is CLEARED else field(column).refusal(value, rules, creating=True)


def differences(values: Mapping[str, Any], team: Team, rules: Release | None) -> list[FieldChange]:
    return user_record.differences(values, team, rules, field_of=field, refusal_of=refusal)


def export(column: str, team: Team) -> str:
    """A team's value as list_user.py --teams writes it: a file of these cells syncs back as no change."""
    value = field(column).current(team)
    return "" if value is None else field(column).text(value)


@dataclass(frozen=True)
class TeamChange:
    """One team a teams file names, and what the run does to it."""

    row: Row
    team_id: str  # a new team's id is chosen here, so that users can join it in the same plan
    alias: str | None  # as the team has it after the run
    team: Team | None = None  # as the proxy has it (None: created by this run)
    values: dict[str, Any] = dataclasses.field(default_factory=dict)  # a new team's settings
    changes: tuple[FieldChange, ...] = ()  # an existing team's settings that differ
    renames: bool = False  # the file gives an existing team (named by team_id) another alias

    @property
    def name(self) -> str:
        return self.alias or self.team_id

    def what(self) -> str:
        """What the change does: a new team's settings, or each changed setting `old -> new`."""
        if self.team is None:
            return ", ".join(f"{column}: {user_record.show(column, v)}" for column, v in self.values.items())
        parts = [f"team_name: {self.team.alias or NONE_SHOWN} -> {self.alias}"] if self.renames else []
        return ", ".join([*parts, *(c.describe() for c in self.changes)])

    def describe(self) -> str:
        what = self.what()
        return f"  {'+' if self.team is None else '~'} team {self.name}" + (f" ({what})" if what else "")

    @property
    def changes_anything(self) -> bool:
        return self.team is None or bool(self.changes) or self.renames

    def after(self) -> Team:
        """The team as it is once the run has made this change (what the users' plan reads)."""
        if self.team is None:
            return Team(self.team_id, self.alias, frozenset())
        return replace(self.team, alias=self.alias)


def update_body(change: TeamChange) -> dict[str, Any]:
    """The one /team/update a change sends: exactly the settings that differ, metadata merged
    (the proxy replaces it whole; {} clears it), the alias where the file renames the team."""
    assert change.team is not None
    body = user_record.update_fields(list(change.changes), change.team, field_of=field, empty_metadata=True)
    return body | ({"team_alias": change.alias} if change.renames else {})


@dataclass
class TeamPlan:
    changes: list[TeamChange] = dataclasses.field(default_factory=list)  # every team the file names, row by row
    failures: list[tuple[Row, str]] = dataclasses.field(default_factory=list)

    @property
    def creates(self) -> list[TeamChange]:
        return [c for c in self.changes if c.team is None]

    @property
    def updates(self) -> list[TeamChange]:
        return [c for c in self.changes if c.team is not None and c.changes_anything]

    def changes_anything(self) -> bool:
        return any(c.changes_anything for c in self.changes)

    def with_creates(self, teams: Sequence[Team]) -> list[Team]:
        """The proxy's teams and the new ones: what add_user.py makes of the plan (it changes no team)."""
        return [*teams, *(c.after() for c in self.creates)]

    def teams_after(self, teams: Sequence[Team]) -> list[Team]:
        """The proxy's teams as they are once the plan is applied: renamed, and the new ones."""
        after = {c.team_id: c.after() for c in self.changes if c.changes_anything}
        return [after.pop(team.team_id, team) for team in teams] + list(after.values())

    def drop_creates(self, why: str) -> None:
        """Make the teams the plan would create its failures (add_user.py without --create-teams)."""
        self.failures += [(c.row, why) for c in self.creates]
        self.changes = [c for c in self.changes if c.team is not None]

    def left_alone(self, csv_file: str) -> list[str]:
        """What add_user.py says of the existing teams whose settings differ from the file: it
        changes no team (sync_user.py does)."""
        return [
            f"NOTE: team {c.name} differs from {csv_file} ({c.what()}): "
            "add_user.py leaves existing teams as they are; sync_user.py --teams-file changes them."
            for c in self.updates
        ]

    def lines(self, csv_file: str, *, updates: bool = True) -> list[str]:
        """The plan's lines, teams first in a sync's plan (add_user.py: updates=False, it only creates)."""
        changed = self.updates if updates else []
        unchanged = len(self.changes) - len(self.creates) - len(changed)
        return [
            f"  Teams ({csv_file}): to create {len(self.creates)}"
            + (f", to update {len(changed)}" if updates else "")
            + f", unchanged {unchanged}",
            *(c.describe() for c in [*self.creates, *changed]),
            *(f"  ! {csv_file} line {row.line} team {_label(row)}: {why}" for row, why in self.failures),
        ]

    def counts(self) -> dict[str, int]:
        return {
            "teams_created": len(self.creates),
            "teams_updated": len(self.updates),
            "teams_failed": len(self.failures),
        }


def plan_teams(
    rows: Sequence[Row],
    teams: Sequence[Team],
    *,
    models: frozenset[str] | None = None,
    rules: Release | None = None,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> TeamPlan:
    """Compare a teams file with the proxy's teams (the lease's left out). A bad row is that
    team's error, before any change; the other rows go ahead. A name that two rows give, or that
    two teams on the proxy have (for a row without team_id), is refused."""
    plan = TeamPlan()
    by_id = {team.team_id: team for team in teams}
    by_alias: dict[str, list[Team]] = {}
    for team in teams:
        if team.alias:
            by_alias.setdefault(team.alias, []).append(team)
    changes = []
    for row in rows:
        try:
            changes.append(_compare(row, by_id, by_alias, models, rules, new_id))
        except ValueError as problem:
            plan.failures.append((row, str(problem)))
    # one row per team, and one team per alias: rows that would change one team twice, or give
    # two teams one alias, are refused together (which row meant what cannot be told). Teams that
    # share an alias on the proxy already, each named by its team_id, are left sharing it.
    rows_per_team = Counter(change.team_id for change in changes)
    aliases = Counter(change.alias for change in changes if change.alias)
    given = {change.alias for change in changes if change.team is None or change.renames}
    for change in changes:
        if rows_per_team[change.team_id] > 1:
            named = (change.team.alias or change.team_id) if change.team else change.name
            plan.failures.append(
                (change.row, f"team {named} is named by {rows_per_team[change.team_id]} rows: one row per team")
            )
        elif change.alias and change.alias in given and aliases[change.alias] > 1:
            plan.failures.append(
                (change.row, f"team_name '{change.alias}' is on {aliases[change.alias]} rows: one team per name")
            )
        else:
            plan.changes.append(change)
    plan.failures.sort(key=lambda failure: failure[0].line)
    return plan


def _label(row: Row) -> str:
    return row[TEAM_NAME] or row[TEAM_ID]


def _compare(
    row: Row,
    by_id: Mapping[str, Team],
    by_alias: Mapping[str, list[Team]],
    models: frozenset[str] | None,
    rules: Release | None,
    new_id: Callable[[], str],
) -> TeamChange:
    if row.problem:
        raise ValueError(row.problem)
    alias, team_id = row[TEAM_NAME], row[TEAM_ID]
    if not alias and not team_id:
        raise ValueError("no team_name")
    holders = by_alias.get(alias, []) if alias else []
    if team_id:
        team = by_id.get(team_id)
        others = [holder.team_id for holder in holders if holder.team_id != team_id]
        if others and (team is None or team.alias != alias):
            raise ValueError(f"team_name '{alias}' is team {others[0]}'s: two teams would share it")
    elif len(holders) > 1:
        ids = ", ".join(holder.team_id for holder in holders)
        raise ValueError(f"team alias '{alias}' is shared by {len(holders)} teams ({ids}); name the team by team_id")
    else:
        team = holders[0] if holders else None
    values = user_record.wanted({c: v for c, v in row.cells.items() if is_setting(c)}, models)
    if team is None:
        fresh = {column: value for column, value in values.items() if value is not CLEARED}
        for column, value in fresh.items():
            problem = refusal(column, value, rules)
            if problem:
                raise ValueError(problem)
        return TeamChange(row, team_id or new_id(), alias or None, values=fresh)
    return TeamChange(
        row,
        team.team_id,
        alias or team.alias,
        team,
        changes=tuple(differences(values, team, rules)),
        renames=bool(alias) and alias != team.alias,
    )
