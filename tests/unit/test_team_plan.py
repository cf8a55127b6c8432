"""Teams as code as plain functions: plan_teams (a teams file against the proxy's teams) and the
admin_of column of a users file (plan_sync's team roles). Generated teams and files, no server.

The tiny proxy model here (apply_team_plan) sends what team_apply.py sends (user_record.new_fields
for /team/new; update_fields with team_record.field, and team_alias on a rename, for /team/update)
to team rows that /team/update treats as every release seen does (null clears a budget, limit or
duration and leaves models and team_alias alone, models [] clears, metadata is replaced whole), and
reads them back with Team.from_api: planning again against that must change nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import team_record, user_record
from common.actions import Action
from common.csv_input import METADATA_PREFIX, Row
from common.snapshot import Snapshot
from common.sync_plan import SyncOptions, SyncPlan, plan_sync
from common.team_record import TeamPlan, plan_teams
from common.user_record import ALL_MODELS, CLEARED, FieldChange
from litellm_client import Release, Team, User
from tests.unit.test_planners import all_changes, apply_sync, sync_options, worlds

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SERVED = frozenset({"gpt-4o", "claude-3"})
R1658, R1807, R11102 = Release((1, 65, 8)), Release((1, 80, 7)), Release((1, 110, 2))


def row(line: int = 2, **cells: str) -> Row:
    """A teams file row as the reader gives it: team_name and team_id always (the required columns)."""
    return Row(line, {"team_name": "", "team_id": "", **cells})


def ids(prefix: str = "new") -> Callable[[], str]:
    """new_id for plan_teams: new-0, new-1, ... (a real run draws uuids)."""
    counter = iter(range(1000))
    return lambda: f"{prefix}-{next(counter)}"


def plan(rows: Sequence[Row], teams: Sequence[Team], **options: Any) -> TeamPlan:
    return plan_teams(rows, teams, new_id=ids(), **options)


def failures(plan: TeamPlan) -> dict[int, str]:
    return {row.line: why for row, why in plan.failures}


update_body = team_record.update_body  # what team_apply.py sends to /team/update for a change


ENG = Team(
    "t-eng",
    "eng",
    frozenset({"u-ann"}),
    metadata={"owner": "ann", "n": 5},
    max_budget=10.5,
    budget_duration="30d",
    models=("claude-3", "gpt-4o"),
    tpm_limit=1000,
    rpm_limit=10,
)
OPS = Team("t-ops", "ops", frozenset())
EXPORTED = (*team_record.SETTINGS, "metadata.owner", "metadata.n")


def exported(team: Team, columns: Sequence[str] = EXPORTED) -> dict[str, str]:
    """A team's cells as list_user.py --teams writes them."""
    return {column: team_record.export(column, team) for column in columns}


# -- creating ----------------------------------------------------------------------------------------


def test_a_new_team_is_created_with_every_setting_as_sent() -> None:
    cells = {
        "max_budget": "10.5",
        "budget_duration": "30d",
        "models": "gpt-4o;claude-3",
        "tpm_limit": "1000",
        "rpm_limit": "10",
        "metadata.owner": "ann",
    }
    made = plan([row(team_name="eng", **cells)], [OPS], models=SERVED, rules=R11102)
    assert made.failures == []
    (change,) = made.creates
    assert (change.team_id, change.alias, change.team, change.renames) == ("new-0", "eng", None, False)
    assert user_record.new_fields(change.values) == {
        "max_budget": 10.5,
        "budget_duration": "30d",
        "models": ["claude-3", "gpt-4o"],
        "tpm_limit": 1000,
        "rpm_limit": 10,
        "metadata": {"owner": "ann"},
    }
    assert change.describe() == (
        "  + team eng (max_budget: 10.5, budget_duration: 30d, models: claude-3;gpt-4o, tpm_limit: 1000, "
        "rpm_limit: 10, metadata.owner: ann)"
    )
    assert made.counts() == {"teams_created": 1, "teams_updated": 0, "teams_failed": 0}
    assert [(t.team_id, t.alias) for t in made.teams_after([OPS])] == [("t-ops", "ops"), ("new-0", "eng")]


def test_a_new_team_takes_the_whole_metadata_object_and_the_rows_team_id() -> None:
    made = plan([row(team_name="eng", team_id="t-restored", metadata='{"owner": "ann", "n": 5}')], [])
    (change,) = made.creates
    assert change.team_id == "t-restored"  # an undo file's team comes back under its id
    assert user_record.new_fields(change.values) == {"metadata": {"owner": "ann", "n": 5}}


def test_none_on_a_new_team_sends_nothing_the_proxys_default_applies() -> None:
    cells = dict.fromkeys((*team_record.SETTINGS, "metadata.owner"), "none")
    (change,) = plan([row(team_name="eng", **cells)], []).creates
    assert change.values == {}
    assert change.describe() == "  + team eng"


# -- comparing -----------------------------------------------------------------------------------------


def test_an_unchanged_team_plans_no_change() -> None:
    for cells in (exported(ENG), {}, {"max_budget": "10.50", "models": "gpt-4o;claude-3;gpt-4o"}):
        made = plan([row(team_name="eng", **cells)], [ENG, OPS], models=SERVED, rules=R11102)
        (change,) = made.changes
        assert (change.team, change.changes, change.renames, change.changes_anything) == (ENG, (), False, False)
        assert (made.updates, made.creates, made.changes_anything()) == ([], [], False)
        assert made.lines("teams.csv") == ["  Teams (teams.csv): to create 0, to update 0, unchanged 1"]


def test_a_team_named_by_its_id_and_its_own_alias_is_unchanged() -> None:
    made = plan([row(team_name="eng", team_id="t-eng", **exported(ENG))], [ENG])
    assert [c.changes_anything for c in made.changes] == [False]


@pytest.mark.parametrize(
    ("column", "cell", "old", "new", "sent"),
    [
        ("max_budget", "20", 10.5, 20.0, {"max_budget": 20.0}),
        ("max_budget", "0", 10.5, 0.0, {"max_budget": 0.0}),
        ("budget_duration", "1mo", "30d", "1mo", {"budget_duration": "1mo"}),
        ("models", "gpt-4o", ("claude-3", "gpt-4o"), ("gpt-4o",), {"models": ["gpt-4o"]}),
        ("tpm_limit", "2000", 1000, 2000, {"tpm_limit": 2000}),
        ("rpm_limit", "0", 10, 0, {"rpm_limit": 0}),
        ("metadata.owner", "bob", "ann", "bob", {"metadata": {"owner": "bob", "n": 5}}),
        ("metadata.n", "6", "5", "6", {"metadata": {"owner": "ann", "n": "6"}}),
        ("metadata.cost", "cc1", None, "cc1", {"metadata": {"owner": "ann", "n": 5, "cost": "cc1"}}),
    ],
)
def test_one_edited_cell_is_exactly_that_change(column: str, cell: str, old: Any, new: Any, sent: Any) -> None:
    cells = exported(ENG) | {column: cell}
    made = plan([row(team_name="eng", **cells)], [ENG], models=SERVED, rules=R11102)
    (change,) = made.updates
    assert change.changes == (FieldChange(column, old, new),)
    assert update_body(change) == sent
    assert made.counts() == {"teams_created": 0, "teams_updated": 1, "teams_failed": 0}


@pytest.mark.parametrize(
    ("column", "sent"),
    [
        ("max_budget", {"max_budget": None}),
        ("budget_duration", {"budget_duration": None}),
        ("models", {"models": []}),  # null would leave a team's models alone; [] is every model
        ("tpm_limit", {"tpm_limit": None}),
        ("rpm_limit", {"rpm_limit": None}),
        ("metadata.owner", {"metadata": {"n": 5}}),  # the other keys kept: metadata is replaced whole
    ],
)
@pytest.mark.parametrize("rules", [None, R1658, R1807, R11102], ids=["any", "1.65.8", "1.80.7", "1.110.2"])
def test_none_clears_each_setting_on_every_release(column: str, sent: Any, rules: Release | None) -> None:
    """/team/update takes null (and []) on every release seen, unlike /user/update."""
    made = plan([row(team_name="eng", **{column: "None"})], [ENG], rules=rules)
    (change,) = made.updates
    assert change.changes == (FieldChange(column, team_record.field(column).current(ENG), CLEARED),)
    assert update_body(change) == sent
    assert change.describe().endswith(f"{column}: {user_record.show(column, change.changes[0].old)} -> none)")
    unset = Team("t-eng", "eng", frozenset())
    assert plan([row(team_name="eng", **{column: "none"})], [unset], rules=rules).updates == []  # unset already


def test_models_are_cleared_with_an_empty_list_for_a_team_and_every_model_for_a_user() -> None:
    assert team_record.field("models").update(CLEARED) == []
    assert user_record.field("models").update(CLEARED) == [ALL_MODELS]
    everything = Team("t-all", "all", frozenset(), models=(ALL_MODELS,))
    assert plan([row(team_name="all", models="none")], [everything]).updates == []  # every model already


def test_a_metadata_column_changes_only_its_key_and_the_whole_object_exactly_the_files() -> None:
    made = plan([row(team_name="eng", **{"metadata.owner": "bob"})], [ENG])
    assert update_body(made.updates[0]) == {"metadata": {"owner": "bob", "n": 5}}
    whole = plan([row(team_name="eng", metadata='{"owner": "bob"}')], [ENG])
    (change,) = whole.updates
    assert change.changes == (FieldChange("metadata", {"owner": "ann", "n": 5}, {"owner": "bob"}),)
    assert update_body(change) == {"metadata": {"owner": "bob"}}
    assert plan([row(team_name="eng", metadata='{"n": 5, "owner": "ann"}')], [ENG]).updates == []


@pytest.mark.parametrize(
    ("cells", "team"),
    [
        ({"metadata": "none"}, ENG),
        ({"metadata.owner": "none"}, Team("t-eng", "eng", frozenset(), metadata={"owner": "ann"})),
    ],
    ids=["whole", "last-key"],
)
def test_clearing_a_teams_metadata_sends_an_empty_object(cells: dict[str, str], team: Team) -> None:
    (change,) = plan([row(team_name="eng", **cells)], [team]).updates
    assert update_body(change) == {"metadata": {}}


def test_a_new_team_named_by_its_id_alone_is_described_by_its_id() -> None:
    made = plan([row(team_id="t-restored", max_budget="5")], [])
    assert made.lines("teams.csv")[1] == "  + team t-restored (max_budget: 5)"


def test_the_note_on_a_team_add_user_leaves_alone_names_its_changes() -> None:
    old = Team("t-1", "eng (old)", frozenset(), max_budget=1.0)
    (note,) = plan([row(team_name="eng (old)", max_budget="2")], [old]).left_alone("teams.csv")
    assert note.startswith("NOTE: team eng (old) differs from teams.csv (max_budget: 1 -> 2): ")


# -- bad values ----------------------------------------------------------------------------------------


BAD_CELLS = [
    ({"max_budget": "-1"}, {}, "max_budget '-1' is not a number of 0 or more"),
    ({"max_budget": "ten"}, {}, "max_budget 'ten' is not a number"),
    ({"tpm_limit": "lots"}, {}, "tpm_limit 'lots' is not a whole number"),
    ({"rpm_limit": "1.5"}, {}, "rpm_limit '1.5' is not a whole number"),
    ({"models": "gpt-4o;gpt-5x"}, {"models": SERVED}, "model 'gpt-5x' is not served by this proxy"),
    (
        {"budget_duration": "3mo"},
        {"rules": R11102},
        "budget_duration '3mo': LiteLLM resets budgets monthly only as 1mo",
    ),
    ({"budget_duration": "2w"}, {"rules": R1807}, "budget_duration '2w': LiteLLM 1.80.7 reads a duration in weeks"),
    ({"budget_duration": "24hr"}, {"rules": R1807}, "budget_duration '24hr': LiteLLM 1.80.7 reads it as 'every mid"),
    ({"budget_duration": "daily"}, {"rules": R1658}, "budget_duration 'daily' is not a duration"),
    ({"metadata": "[1]"}, {}, "metadata '[1]' is not a JSON object"),
    ({"metadata": "{}", "metadata.owner": "x"}, {}, "metadata and metadata.<name> cells on one row"),
]


@pytest.mark.parametrize(("cells", "options", "why"), BAD_CELLS)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_a_bad_value_is_that_rows_error_and_the_others_go_ahead(
    cells: dict[str, str], options: dict[str, Any], why: str, existing: bool
) -> None:
    teams = [ENG, OPS] if existing else [OPS]
    made = plan(
        [
            row(2, team_name="eng", **cells),
            row(3, team_name="data", max_budget="5"),
            row(4, team_name="ops", rpm_limit="7"),
        ],
        teams,
        **options,
    )
    assert list(failures(made)) == [2]
    assert failures(made)[2].startswith(why)
    assert [(c.row.line, c.alias) for c in made.creates] == [(3, "data")]
    assert [(c.row.line, c.changes) for c in made.updates] == [(4, (FieldChange("rpm_limit", None, 7),))]
    assert f"  ! teams.csv line 2 team eng: {failures(made)[2]}" in made.lines("teams.csv")


def test_models_are_not_checked_when_the_proxys_models_were_not_read() -> None:
    (change,) = plan([row(team_name="eng", models="gpt-5x")], []).creates
    assert change.values == {"models": ("gpt-5x",)}


@pytest.mark.parametrize(
    ("cell", "rules", "refused"),
    [
        ("2w", R1807, True),
        ("2w", R11102, False),
        ("2w", R1658, False),
        ("daily", R11102, False),
        ("daily", R1807, True),
        ("3mo", R1658, True),  # 1.65.8 takes it, and resets it in a month (research Q3): refused everywhere
        ("60min", R1807, True),
        ("60min", R11102, False),
        ("30d", R1658, False),
    ],
)
def test_a_duration_is_checked_against_the_proxys_release(cell: str, rules: Release, refused: bool) -> None:
    made = plan(
        [row(team_name="new", budget_duration=cell), row(3, team_name="eng", budget_duration=cell)], [ENG], rules=rules
    )
    assert sorted(failures(made)) == ([2, 3] if refused else [])


def test_a_duration_the_team_holds_already_is_never_refused() -> None:
    """A value the proxy holds reads back as it is, whatever the release would say of it now."""
    weekly = Team("t-w", "weekly", frozenset(), budget_duration="2w")
    made = plan([row(team_name="weekly", budget_duration="2w")], [weekly], rules=R1807)
    assert (made.failures, made.updates) == ([], [])


def test_a_row_without_a_name_or_of_the_wrong_shape_is_an_error() -> None:
    made = plan([row(2, max_budget="5"), Row(3, {"team_name": "x", "team_id": ""}, "the row has 9 fields")], [])
    assert failures(made) == {2: "no team_name", 3: "the row has 9 fields"}
    assert made.changes == []


# -- names ---------------------------------------------------------------------------------------------


def test_a_team_name_on_two_rows_is_refused_on_both() -> None:
    made = plan([row(2, team_name="eng"), row(3, team_name="ops"), row(4, team_name="eng", max_budget="3")], [ENG, OPS])
    assert failures(made) == {
        2: "team eng is named by 2 rows: one row per team",
        4: "team eng is named by 2 rows: one row per team",
    }
    assert [c.row.line for c in made.changes] == [3]


def test_a_team_id_on_two_rows_is_refused_on_both() -> None:
    made = plan([row(2, team_id="t-eng", team_name="eng"), row(3, team_id="t-eng", team_name="x")], [ENG])
    assert set(failures(made)) == {2, 3}
    assert all("team eng is named by 2 rows" in why for why in failures(made).values())


def test_an_alias_two_teams_share_needs_the_team_id() -> None:
    twin = Team("t-eng-2", "eng", frozenset(), max_budget=1.0)
    refused = plan([row(team_name="eng", max_budget="3"), row(3, team_name="ops")], [ENG, twin, OPS])
    assert failures(refused) == {
        2: "team alias 'eng' is shared by 2 teams (t-eng, t-eng-2); name the team by team_id",
    }
    assert [c.row.line for c in refused.changes] == [3]

    by_id = plan([row(team_name="eng", team_id="t-eng-2", max_budget="3")], [ENG, twin, OPS])
    (change,) = by_id.updates
    assert (change.team, change.renames, change.changes) == (twin, False, (FieldChange("max_budget", 1.0, 3.0),))
    # an export of such a proxy (both rows by id) syncs back as no change
    both = [row(2, team_name="eng", team_id="t-eng", **exported(ENG)), row(3, team_name="eng", team_id="t-eng-2")]
    exported_twins = plan(both, [ENG, twin])
    assert (failures(exported_twins), exported_twins.changes_anything()) == ({}, False)


def test_a_team_id_row_with_another_alias_renames_the_team() -> None:
    made = plan([row(team_id="t-eng", team_name="platform", max_budget="20")], [ENG, OPS])
    (change,) = made.updates
    assert (change.team_id, change.alias, change.renames) == ("t-eng", "platform", True)
    assert change.describe() == "  ~ team platform (team_name: eng -> platform, max_budget: 10.5 -> 20)"
    assert update_body(change) == {"max_budget": 20.0, "team_alias": "platform"}
    assert {t.team_id: t.alias for t in made.teams_after([ENG, OPS])} == {"t-eng": "platform", "t-ops": "ops"}

    nameless = Team("t-x", None, frozenset())
    (change,) = plan([row(team_id="t-x", team_name="x")], [nameless]).updates
    assert change.describe() == "  ~ team x (team_name: - -> x)"
    (kept,) = plan([row(team_id="t-eng")], [ENG]).changes  # no team_name: the alias is left alone
    assert (kept.alias, kept.renames, kept.changes_anything) == ("eng", False, False)


def test_renaming_a_team_to_another_teams_alias_is_refused() -> None:
    made = plan([row(2, team_id="t-eng", team_name="ops"), row(3, team_id="t-new", team_name="ops")], [ENG, OPS])
    assert failures(made) == {
        2: "team_name 'ops' is team t-ops's: two teams would share it",
        3: "team_name 'ops' is team t-ops's: two teams would share it",
    }
    swap = plan([row(2, team_id="t-eng", team_name="ops"), row(3, team_id="t-ops", team_name="eng")], [ENG, OPS])
    assert sorted(failures(swap)) == [2, 3]  # a swap would share a name half way through


@pytest.mark.parametrize(
    "rows",
    [
        [row(2, team_id="t-eng", team_name="platform"), row(3, team_id="t-ops", team_name="platform")],
        [row(2, team_id="t-eng", team_name="platform"), row(3, team_name="platform")],
        [row(2, team_id="t-new", team_name="platform"), row(3, team_name="platform")],
    ],
    ids=["rename-rename", "rename-create", "create-by-id-create"],
)
def test_two_rows_never_give_two_teams_one_alias(rows: list[Row]) -> None:
    made = plan(rows, [ENG, OPS])
    after = apply_team_plan(made, [ENG, OPS])
    assert Counter(t.alias for t in after)["platform"] <= 1, [c.describe() for c in made.changes]


@pytest.mark.parametrize(
    "rows",
    [
        [row(2, team_id="t-eng", team_name="eng", max_budget="1"), row(3, team_name="eng", max_budget="2")],
        [row(2, team_id="t-eng", team_name="platform"), row(3, team_name="eng", max_budget="2")],
    ],
    ids=["same-alias", "old-alias-of-a-renamed-team"],
)
def test_two_rows_never_change_one_team(rows: list[Row]) -> None:
    made = plan(rows, [ENG, OPS])
    changed = Counter(c.team_id for c in made.changes)
    assert max(changed.values(), default=0) <= 1, [c.describe() for c in made.changes]


# -- the tiny proxy model: what a successful run of a teams plan leaves ----------------------------


def _stored(team: Team) -> dict[str, Any]:
    """A team as /team/list's row holds it."""
    return {
        "team_id": team.team_id,
        "team_alias": team.alias,
        "members_with_roles": [
            {"user_id": u, "role": "admin" if u in team.admin_ids else "user"} for u in team.member_ids
        ],
        "metadata": dict(team.metadata),
        "max_budget": team.max_budget,
        "budget_duration": team.budget_duration,
        "models": list(team.models),
        "tpm_limit": team.tpm_limit,
        "rpm_limit": team.rpm_limit,
    }


def apply_team_plan(plan: TeamPlan, teams: Sequence[Team]) -> list[Team]:
    """The teams once team_apply.py has sent the plan's requests, each as the proxy applies it."""
    rows = {team.team_id: _stored(team) for team in teams}
    for change in plan.changes:
        if change.team is None:  # /team/new: the settings as sent, metadata apart (create_team)
            body = user_record.new_fields(change.values)
            assert change.team_id not in rows
            rows[change.team_id] = _stored(Team(change.team_id, change.alias, frozenset())) | body
        elif change.changes_anything:  # /team/update: null clears, but for models and team_alias
            stored = rows[change.team_id]
            for name, value in update_body(change).items():
                if value is not None or name not in ("models", "team_alias"):
                    stored[name] = value
    return [Team.from_api(stored) for stored in rows.values()]


def test_the_model_applies_what_a_plan_sends() -> None:
    made = plan(
        [
            row(2, team_name="data", max_budget="5", metadata='{"k": 1}'),
            row(3, team_id="t-eng", team_name="platform", models="none", tpm_limit="none", **{"metadata.n": "none"}),
        ],
        [ENG, OPS],
    )
    after = {t.team_id: t for t in apply_team_plan(made, [ENG, OPS])}
    assert (after["new-0"].alias, after["new-0"].max_budget, after["new-0"].metadata) == ("data", 5.0, {"k": 1})
    eng = after["t-eng"]
    assert (eng.alias, eng.models, eng.tpm_limit, eng.metadata) == ("platform", (), None, {"owner": "ann"})
    assert (eng.max_budget, eng.rpm_limit, eng.member_ids) == (10.5, 10, ENG.member_ids)
    assert after["t-ops"] == OPS


# -- generated teams and teams files -------------------------------------------------------------------


ALIASES = ("eng", "ops", "eng", "data", None)
TEAM_CELLS: dict[str, tuple[str, ...]] = {
    "max_budget": ("", "none", "10", "2.5", "0", "-1", "ten"),
    "budget_duration": ("", "none", "30d", "1mo", "2w", "daily", "3mo", "soon"),
    "models": ("", "none", "gpt-4o", "gpt-4o;claude-3", ALL_MODELS, "gpt-5x"),
    "tpm_limit": ("", "none", "100", "1.5"),
    "rpm_limit": ("", "none", "5", "0"),
    "metadata.owner": ("", "none", "ann", "bob"),
    "metadata.n": ("", "none", "5"),
    "metadata": ("", "none", "{}", '{"owner": "ann"}', '{"n": 5, "owner": "bob"}', "[1]"),
}
BAD = {"-1", "ten", "3mo", "soon", "gpt-5x", "1.5", "[1]"}  # refused on every release
TIDY_CELLS = {column: tuple(cell for cell in cells if cell not in BAD) for column, cells in TEAM_CELLS.items()}


@st.composite
def proxy_teams(draw: st.DrawFn) -> list[Team]:
    teams = []
    for i in range(draw(st.integers(0, 4))):
        teams.append(
            Team(
                f"t-{i}",
                draw(st.sampled_from(ALIASES)),
                frozenset(),
                metadata=draw(
                    st.sampled_from([{}, {"owner": "ann"}, {"owner": "bob", "n": 5}, {"owner": None}, {"n": "5"}])
                ),
                max_budget=draw(st.sampled_from([None, 0.0, 10.0, 2.5])),
                budget_duration=draw(st.sampled_from([None, "30d", "1mo", "2w"])),
                models=draw(st.sampled_from([(), ("gpt-4o",), ("claude-3", "gpt-4o"), (ALL_MODELS,)])),
                tpm_limit=draw(st.sampled_from([None, 100])),
                rpm_limit=draw(st.sampled_from([None, 0, 5])),
            )
        )
    return teams


@st.composite
def team_worlds(draw: st.DrawFn, *, tidy: bool = False) -> tuple[list[Row], list[Team], dict[str, Any]]:
    """The proxy's teams, a teams file and the planner's options. A file names its teams either
    all by alias or all by team_id (renames, restores), as an edited file or an export does; the
    two mixed are test_two_rows_never_change_one_team's and test_two_rows_never_give_two_teams_one_alias's.
    tidy: values every release takes, each name once, so that most plans go through."""
    teams = draw(proxy_teams())
    by_id = draw(st.booleans())
    cells_of = TIDY_CELLS if tidy else TEAM_CELLS
    columns = draw(st.lists(st.sampled_from(list(cells_of)), unique=True, max_size=4))
    rows: list[Row] = []
    named: set[str] = set()
    for line in range(2, 2 + draw(st.integers(0, 6))):
        if by_id:
            team_id = draw(st.sampled_from([*(t.team_id for t in teams), f"t-new-{line}", *([] if tidy else [""])]))
            own = [t.alias for t in teams if t.team_id == team_id and t.alias]
            others = [] if tidy else [t.alias for t in teams if t.team_id != team_id and t.alias]
            name = draw(st.sampled_from(["", *own, *others, f"renamed-{line}"]))
        else:
            held = [t.alias for t in teams if t.alias]
            team_id, name = "", draw(st.sampled_from([*held, "eng", "data", "new-a", "new-b", *([] if tidy else [""])]))
        if tidy and (team_id or name) in named:
            continue  # each team named once
        named.add(team_id or name)
        cells = {"team_name": name, "team_id": team_id}
        cells |= {column: draw(st.sampled_from(cells_of[column])) for column in columns}
        problem = "" if tidy else draw(st.sampled_from(["", "", "", "", "the row has 9 fields"]))
        rows.append(Row(line, cells, problem))
    options = {
        "models": draw(st.sampled_from([None, SERVED])),
        "rules": draw(st.sampled_from([None, R1658, R1807, R11102])),
    }
    return rows, teams, options


@FAST
@given(world=st.one_of(team_worlds(tidy=True), team_worlds()))
def test_every_row_has_exactly_one_outcome(world: tuple[list[Row], list[Team], dict[str, Any]]) -> None:
    rows, teams, options = world
    made = plan(rows, teams, **options)
    outcomes = Counter(c.row.line for c in made.changes) + Counter(row.line for row, _ in made.failures)
    assert outcomes == Counter(row.line for row in rows)
    assert made.counts()["teams_failed"] == len(made.failures)
    existing = {t.team_id for t in teams}
    for change in made.changes:  # a team only the file names is created, with an id of its own
        assert (change.team is None) == (change.team_id not in existing)
        named = change.row["team_id"] or change.row["team_name"]
        assert named in (change.team_id, change.alias)
    new = [c.team_id for c in made.creates]
    assert len(new) == len(set(new))


@FAST
@given(world=st.one_of(team_worlds(tidy=True), team_worlds()))
def test_teams_against_what_their_plan_leaves_change_nothing(
    world: tuple[list[Row], list[Team], dict[str, Any]],
) -> None:
    """The rows the first plan took plan no change the second time (the others may go ahead once
    the teams changed: a renamed team's old alias is free, say)."""
    rows, teams, options = world
    first = plan(rows, teams, **options)
    after = apply_team_plan(first, teams)
    taken = [c.row for c in first.changes]
    second = plan_teams(taken, after, new_id=ids("again"), **options)
    assert second.failures == [], second.lines("teams.csv")
    assert not second.changes_anything(), second.lines("teams.csv")
    assert {c.team_id for c in second.changes} == {c.team_id for c in first.changes}
    untouched = {t.team_id for t in teams} - {c.team_id for c in first.changes if c.changes_anything}
    assert [t for t in after if t.team_id in untouched] == [t for t in teams if t.team_id in untouched]


@st.composite
def any_teams(draw: st.DrawFn) -> Team:
    text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
    return Team(
        "t-1",
        "eng",
        frozenset(),
        metadata=draw(
            st.dictionaries(
                text.filter(lambda name: name == name.strip()),
                st.one_of(st.none(), text.filter(lambda v: v.strip().lower() != "none"), st.integers(-5, 5)),
                max_size=3,
            )
        ),
        max_budget=draw(st.one_of(st.none(), st.floats(0, 1e12, allow_nan=False))),
        budget_duration=draw(st.one_of(st.none(), st.sampled_from(["30s", "24h", "30d", "2w", "1mo", "daily"]))),
        models=draw(st.lists(st.sampled_from(["gpt-4o", "claude-3", "openai/*", ALL_MODELS]), unique=True).map(tuple)),
        tpm_limit=draw(st.one_of(st.none(), st.integers(0, 10**9))),
        rpm_limit=draw(st.one_of(st.none(), st.integers(0, 10**9))),
    )


@FAST
@given(team=any_teams(), rules=st.sampled_from([None, R1658, R1807, R11102]))
def test_an_exported_team_syncs_back_as_no_change(team: Team, rules: Release | None) -> None:
    columns = [*team_record.SETTINGS, *(METADATA_PREFIX + name for name in team.metadata)]
    made = plan([row(team_name="eng", team_id="t-1", **exported(team, columns))], [team], rules=rules)
    assert (made.failures, made.updates) == ([], [])


# -- admin_of: team roles in a users file ----------------------------------------------------------------


ANN = User("u-ann", "ann@example.com", "internal_user", ("t-eng", "t-ops"), 0)
BOB = User("u-bob", "bob@example.com", "internal_user", ("t-eng",), 0)
ROLE_TEAMS = [
    Team("t-eng", "eng", frozenset({"u-ann", "u-bob"}), admin_ids=frozenset({"u-ann"})),
    Team("t-ops", "ops", frozenset({"u-ann"})),
    Team("t-data", "data", frozenset()),
]
KEEP_ALL = SyncOptions(delete=False)


def user_row(line: int, email: str, team_name: str = "", **cells: str) -> Row:
    return Row(line, {"email": email, "role": "", "team_name": team_name, "key_name": "", **cells})


def sync(*rows: Row) -> tuple[Any, Snapshot]:
    snapshot = Snapshot([ANN, BOB], ROLE_TEAMS)
    return plan_sync(list(rows), snapshot, KEEP_ALL), snapshot


def test_without_an_admin_of_column_roles_are_left_alone() -> None:
    made, _ = sync(user_row(2, "ann@example.com", "eng;ops"), user_row(3, "bob@example.com", "eng"))
    assert [(c.email, c.team_roles, c.admin_of) for c in made[Action.KEEP]] == [
        ("ann@example.com", (), None),
        ("bob@example.com", (), None),
    ]


@pytest.mark.parametrize("cell", ["", "none", "NONE"])
def test_an_empty_admin_of_makes_an_ordinary_member_of_every_team(cell: str) -> None:
    made, snapshot = sync(user_row(2, "ann@example.com", "eng;ops", admin_of=cell))
    (change,) = made[Action.UPDATE]
    assert (change.team_roles, change.admin_of, change.field_changes, change.role_changes) == (
        (("t-eng", False),),
        (),
        (),
        False,
    )
    assert "  ~ ann@example.com (admin_of: eng -> -)" in made.describe(snapshot, {})


def test_a_keep_whose_team_role_changes_becomes_an_update() -> None:
    made, snapshot = sync(user_row(2, "bob@example.com", "eng", admin_of="eng"))
    (change,) = made[Action.UPDATE]
    assert (change.team_roles, change.admin_of, change.joins, change.leaves) == ((("t-eng", True),), ("t-eng",), (), ())
    assert not change.updates_user  # no /user/update: /team/member_update alone
    assert "  ~ bob@example.com (admin_of: - -> eng)" in made.describe(snapshot, {})
    assert made.counts()["updated"] == 1


def test_admin_of_as_the_proxy_has_it_is_no_change() -> None:
    made, _ = sync(
        user_row(2, "ann@example.com", "eng;ops", admin_of="eng"), user_row(3, "bob@example.com", "", admin_of="")
    )
    assert [(c.email, c.team_roles) for c in made[Action.KEEP]] == [("ann@example.com", ()), ("bob@example.com", ())]
    assert made[Action.KEEP][0].admin_of == ("t-eng",)


def test_admin_of_with_an_empty_team_name_reads_the_users_teams_on_the_proxy() -> None:
    made, _ = sync(user_row(2, "ann@example.com", "", admin_of="ops"))
    (change,) = made[Action.UPDATE]
    assert (change.teams, change.team_roles) == (("t-eng", "t-ops"), (("t-eng", False), ("t-ops", True)))


def test_admin_of_moves_with_a_team_change() -> None:
    """Joining data as its admin and leaving ops: the role is set in the team joined, never in the one left."""
    made, snapshot = sync(user_row(2, "ann@example.com", "eng;data", admin_of="data;eng"))
    (change,) = made[Action.UPDATE]
    assert (change.joins, change.leaves, change.team_roles) == (("t-data",), ("t-ops",), (("t-data", True),))
    assert "admin_of: eng -> data;eng" in made.describe(snapshot, {})


@pytest.mark.parametrize(
    ("team_name", "admin_of", "why"),
    [
        ("eng", "ops", "admin_of names team 'ops', which is not one of the row's teams"),
        ("none", "eng", "admin_of names team 'eng', which is not one of the row's teams"),
        ("eng", "ghost", "team 'ghost' does not exist"),
    ],
)
def test_an_admin_of_team_that_is_not_one_of_the_rows_teams_is_a_row_error(
    team_name: str, admin_of: str, why: str
) -> None:
    made, _ = sync(
        user_row(2, "ann@example.com", team_name, admin_of=admin_of),
        user_row(3, "bob@example.com", "eng", admin_of="eng"),
    )
    assert [(row.line, reason) for row, reason, _ in made.failures] == [(2, why)]
    assert [c.email for c in made[Action.UPDATE]] == ["bob@example.com"]  # the other row goes ahead


def test_a_new_user_is_made_admin_of_the_teams_admin_of_names() -> None:
    made, snapshot = sync(user_row(2, "carol@example.com", "eng;ops", role="internal_user", admin_of="ops"))
    (change,) = made[Action.ADD]
    assert (change.teams, change.team_roles, change.admin_of) == (("t-eng", "t-ops"), (("t-ops", True),), ("t-ops",))
    assert "  + carol@example.com (Role: internal_user, Team: eng;ops, admin_of: ops)" in made.describe(snapshot, {})
    plain, _ = sync(user_row(2, "carol@example.com", "eng", admin_of=""))
    assert (plain[Action.ADD][0].team_roles, plain[Action.ADD][0].admin_of) == ((), ())


def test_admin_of_names_teams_by_id_too() -> None:
    made, _ = sync(user_row(2, "bob@example.com", "t-eng", admin_of="t-eng"))
    assert made[Action.UPDATE][0].team_roles == (("t-eng", True),)


def test_admin_of_reads_the_teams_a_teams_plan_creates() -> None:
    """sync_user.py plans users against the teams as the teams plan leaves them: a new team's
    admin is named in the same run."""
    teams = plan_teams([row(team_name="ml")], ROLE_TEAMS, new_id=lambda: "t-ml")
    snapshot = Snapshot([ANN, BOB], ROLE_TEAMS).with_teams(teams.teams_after(ROLE_TEAMS))
    made = plan_sync([user_row(2, "bob@example.com", "eng;ml", admin_of="ml")], snapshot, KEEP_ALL)
    (change,) = made[Action.UPDATE]
    assert (change.joins, change.team_roles) == (("t-ml",), (("t-ml", True),))


# -- admin_of on generated proxies and users files (test_planners.py's worlds) --------------------------


def _admin_cell(row: Row, names: Sequence[str]) -> st.SearchStrategy[str]:
    """An admin_of cell: empty, none, some of the row's teams, or a team that is not one of them."""
    own = [part.strip() for part in row["team_name"].split(";") if part.strip() and part.strip().lower() != "none"]
    some = st.lists(st.sampled_from(own), min_size=1, max_size=2).map(";".join) if own else st.just("")
    return st.one_of(st.sampled_from(["", "none", "ghost", *names[:1]]), some, some)


def _with_roles(plan: SyncPlan, snapshot: Snapshot) -> Snapshot:
    """The snapshot with the plan's team roles set (/team/member_update for each)."""
    admins = {team.team_id: set(team.admin_ids) for team in snapshot.teams}
    for action in (Action.ADD, Action.UPDATE, Action.REINSTATE):
        for n, change in enumerate(plan[action]):
            user_id = change.user_id or f"added-{n}"  # as apply_sync names a new user
            for team_id, admin in change.team_roles:
                (admins[team_id].add if admin else admins[team_id].discard)(user_id)
    teams = [replace(team, admin_ids=frozenset(admins[team.team_id])) for team in snapshot.teams]
    return Snapshot(snapshot.users, teams, snapshot.key_aliases, snapshot.models)


@FAST
@given(world=st.one_of(worlds(tidy=True), worlds()), opts=sync_options, data=st.data())
def test_admin_of_against_what_its_plan_leaves_changes_no_role(
    world: tuple[list[Row], Snapshot], opts: SyncOptions, data: st.DataObject
) -> None:
    rows, snapshot = world
    teams = [
        replace(team, admin_ids=frozenset(data.draw(st.lists(st.sampled_from(sorted(team.member_ids)), unique=True))))
        if team.member_ids
        else team
        for team in snapshot.teams
    ]
    snapshot = Snapshot(snapshot.users, teams, snapshot.key_aliases, snapshot.models)
    names = [snapshot.team_label(team.team_id) for team in teams]
    rows = [Row(r.line, {**r.cells, "admin_of": data.draw(_admin_cell(r, names))}, r.problem) for r in rows]
    first = plan_sync(rows, snapshot, opts)
    outcomes = Counter(c.row.line for c in all_changes(first) if c.row)
    outcomes.update(row.line for row, _, _ in first.failures)
    assert outcomes == Counter(row.line for row in rows)
    for change in all_changes(first):
        if change.row is not None:
            assert change.admin_of is not None
            assert set(change.admin_of) <= set(change.teams)
            assert {team for team, _ in change.team_roles} <= set(change.teams)
            assert all(admin == (team in change.admin_of) for team, admin in change.team_roles)
    after = _with_roles(first, apply_sync(first, snapshot, opts))
    second = plan_sync(rows, after, opts)
    skipped = {row.line for row, _, _ in first.failures} | {c.row.line for c, _ in first.left_out if c.row}
    again = [(c.email, c.team_roles) for c in all_changes(second) if c.team_roles and c.row.line not in skipped]
    assert again == [], second.describe(after, {})
