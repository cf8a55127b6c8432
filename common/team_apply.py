"""Applying a teams plan (team_record.TeamPlan), before any user is changed: the teams the file
names that do not exist are created with their settings, those whose settings differ are updated
(one request each), and each team gets one result row. A team the file does not name is never
touched, and none is ever deleted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common import team_record, undo, user_record
from common.results import Report
from common.runner import Interrupted, Runner
from common.team_record import TeamChange, TeamPlan
from litellm_client import LiteLLMClient, ProxyError, Team

RESULT_COLUMNS = ("action", "team_name", "team_id", "status", "error_reason", "line", "detail")
UNDO_COLUMNS = team_record.COLUMNS


def report(output_dir: Path, name: str) -> Report:
    """The teams' result file, <name>_teams_result.csv, beside the users'."""
    return Report(
        output_dir,
        f"{name}_teams",
        result_columns=RESULT_COLUMNS,
        words=("teams created", "teams updated"),
        failed_word="teams failed",
    )


def apply_teams(
    plan: TeamPlan, proxy: LiteLLMClient, runner: Runner, teams: Report, *, update: bool = True
) -> dict[str, str]:
    """Create the plan's new teams, then (unless not update) change the others that differ.
    Returns, for each team the run was to create and did not, why: the users who were to join
    it fail with that reason."""
    broken: dict[str, str] = {}
    for row, why in plan.failures:
        teams.fail(row, why, action="FAILED", team_name=row[team_record.TEAM_NAME], team_id=row[team_record.TEAM_ID],
                   status="FAILED", line=row.line)  # fmt: skip
    for change in plan.changes:
        if not change.changes_anything or (change.team is not None and not update):
            teams.done("SUCCESS", tally="teams unchanged", **_cells(change, "UNCHANGED"))

    def create(change: TeamChange) -> None:
        settings = user_record.new_fields(change.values)
        metadata = settings.pop("metadata", None)
        try:
            proxy.create_team(change.alias, team_id=change.team_id, metadata=metadata, settings=settings)
        except ProxyError as exc:
            broken[change.team_id] = f"team {change.alias} could not be created: {exc}"
            teams.fail(change.row, str(exc), **_cells(change, "CREATED"), status="FAILED")
            return
        teams.done("SUCCESS", tally="teams created", **_cells(change, "CREATED", detail=change.what()))

    def change_team(change: TeamChange) -> None:
        assert change.team is not None
        try:
            proxy.update_team(change.team_id, team_record.update_body(change))
        except ProxyError as exc:
            teams.fail(change.row, str(exc), **_cells(change, "UPDATED"), status="FAILED")
            return
        teams.done("SUCCESS", tally="teams updated", **_cells(change, "UPDATED", detail=change.what()))

    updates = plan.updates if update else []
    try:
        try:
            runner.parallel(plan.creates, create, "teams created")
        except Interrupted as stop:
            stop.not_started = [*stop.not_started, *updates]
            raise
        runner.parallel(updates, change_team, "teams updated")
    except Interrupted as stop:
        for change in stop.not_started:
            teams.not_started(change.row, stop.reason, **_cells(change, "FAILED"), status="FAILED")
        stop.not_started = []  # recorded: the users' phases record their own
        raise
    return broken


def set_role(proxy: LiteLLMClient, team_id: str, label: str, user_id: str, *, admin: bool) -> tuple[str, str]:
    """Make a member a team admin or an ordinary member (/team/member_update, the proxy's own way
    on every release): (what was done, "") or ("", why not). Newer releases make team admins only
    with an Enterprise licence (ProxyError.needs_licence); the tools say so rather than go around it."""
    try:
        proxy.set_team_role(team_id, user_id, admin=admin)
    except ProxyError as exc:
        why = str(exc)
        if exc.needs_licence:
            why = f"LiteLLM {proxy.rules.label} makes team admins only with an Enterprise licence ({exc})"
        return "", f"not made {'an admin' if admin else 'an ordinary member'} of team {label}: {why}"
    return (f"admin of {label}" if admin else f"ordinary member of {label}"), ""


def write_undo(output_dir: Path, name: str, changes: Sequence[TeamChange]) -> Path | None:
    """<name>_teams_undo.csv: the teams a run is about to change, as they are (each setting, `none`
    where unset), so that feeding it back as --teams-file puts them back. Teams it creates are
    not in it: a sync never deletes a team."""
    before = [change.team for change in changes if change.team is not None and change.changes_anything]
    if not before:
        return None
    return undo.write_rows(output_dir / f"{name}_teams_undo.csv", UNDO_COLUMNS, [_undo_row(team) for team in before])


def _undo_row(team: Team) -> dict[str, str]:
    row = {column: user_record.show(column, team_record.field(column).current(team)) for column in team_record.SETTINGS}
    metadata = user_record.field(user_record.METADATA).text({k: v for k, v in team.metadata.items() if v is not None})
    return {
        **row,
        team_record.TEAM_NAME: team.alias or "",
        team_record.TEAM_ID: team.team_id,
        user_record.METADATA: metadata,
    }


def _cells(change: TeamChange, action: str, detail: str = "") -> dict[str, object]:
    return {
        "action": action,
        "team_name": change.alias or "",
        "team_id": change.team_id,
        "line": change.row.line,
        "detail": detail,
    }
