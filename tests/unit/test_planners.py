"""The planners (plan_additions, plan_deletions, plan_sync) and the user record as plain functions:
generated files and proxy states, no server. (tests/scripts/test_sync_user.py runs sync_user.py twice
against the stand-in, to check for real that a second sync plans nothing.)

The tiny proxy model here (apply_sync, apply_additions, apply_deletions) is what a successful run
of a plan leaves behind: planning again against it must change nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import addresses, removal, user_record
from common.actions import CHANGES, Action
from common.additions import AddPlan, plan_additions
from common.csv_input import METADATA_PREFIX, Row
from common.deletions import DelPlan, plan_deletions
from common.snapshot import Snapshot
from common.sync_plan import Change, SyncOptions, SyncPlan, plan_sync
from common.user_record import ALL_MODELS, CLEARED, OFFBOARDED_AT, TOOL_KEYS
from litellm_client import ROLES, Key, Release, Team, User

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
LONG_AGO = (NOW - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
LATELY = (NOW - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
ZOE_NFC = unicodedata.normalize("NFC", "zoé@example.com")
ZOE_NFD = unicodedata.normalize("NFD", "zoé@example.com")
SERVED = frozenset({"gpt-4o", "claude-3"})

# -- what a proxy holds ----------------------------------------------------------------------------

PROXY_EMAILS = (
    "o'brien@example.com",
    "jdoe",  # an SSO user: no @
    "first:last@example.com",
    '"john doe"@example.com',
    "ann@example.com",
    "Ann@Example.com",  # the same address as ann's, another spelling: a duplicate on the proxy
    "bob@example.com",
    ZOE_NFC,
    "cy@example.com",
    "root@localhost",
    None,
)
PROXY_ROLES = (*ROLES, None, "team", "customer")
ALIASES = ("eng", "ops", "eng", "a;b", " eng ", "none", "NONE", "t-1", None)


@st.composite
def proxy_users(draw: st.DrawFn, *, unique: bool = False) -> list[User]:
    """unique: no two users share an email (older proxies allow it)."""
    users = []

    def same(email: str | None) -> str:
        return addresses.key(email or "")

    emails = draw(st.lists(st.sampled_from(PROXY_EMAILS), max_size=6, unique_by=same if unique else None))
    for i, email in enumerate(emails):
        metadata: dict[str, Any] = draw(
            st.sampled_from(
                [
                    {},
                    {"cost_center": "cc1"},
                    {"cost_center": 7, "other": "x"},
                    {OFFBOARDED_AT: LONG_AGO},
                    {OFFBOARDED_AT: LATELY, "cost_center": "cc2"},
                    {OFFBOARDED_AT: "someday"},
                ]
            )
        )
        users.append(
            User(
                f"u-{i}",
                email,
                draw(st.sampled_from(PROXY_ROLES)),
                (),
                draw(st.integers(0, 2)),
                user_alias=draw(st.sampled_from([None, "", "Ann", "Bob"])),
                max_budget=draw(st.sampled_from([None, 0.0, 10.0, 2.5])),
                budget_duration=draw(st.sampled_from([None, "30d", "1mo"])),
                models=draw(st.sampled_from([(), ("gpt-4o",), ("claude-3", "gpt-4o"), (ALL_MODELS,)])),
                tpm_limit=draw(st.sampled_from([None, 100])),
                rpm_limit=draw(st.sampled_from([None, 5])),
                max_parallel_requests=draw(st.sampled_from([None, 4])),
                metadata=metadata,
            )
        )
    return users


@st.composite
def proxy_teams(draw: st.DrawFn, user_ids: Sequence[str]) -> list[Team]:
    teams = []
    for i in range(draw(st.integers(0, 4))):
        members = frozenset(draw(st.lists(st.sampled_from(user_ids), unique=True)) if user_ids else ())
        teams.append(Team(f"t-{i}", draw(st.sampled_from(ALIASES)), members))
    return teams


# -- what a file asks for ----------------------------------------------------------------------------

VALID_EMAILS = (
    "O'Brien@example.com",
    '"john doe"@example.com',
    "ann@example.com",
    "ANN@example.com",
    "bob@example.com",
    " bob@example.com ",
    ZOE_NFC,
    ZOE_NFD,
    "cy@example.com",
    "dee@example.com",
    "eve@example.com",
)
BAD_EMAILS = (  # each a row error; the first three plausibly mean an address, which stays protected
    "Ann Lee <ann@example.com>",
    "bob\u200b@example.com",
    "cy@example.com\u2060",
    "",
    "not-an-email",  # a name the proxy may hold, but no address to create a user with
    "jdoe",
    "first:last@example.com",
    "an n@example.com",
    "ann@example.com;bob@example.com",  # ';' is a team separator, not an email separator: a bad address
)
ROLE_CELLS = ("", "default", *ROLES, "Internal_User", "proxy_admin_view_only", "wizard")
ACCESS_CELLS: dict[str, tuple[str, ...]] = {
    "user_alias": ("", "none", "Ann", "Bob"),
    "max_budget": ("", "none", "10", "2.5", "0", "ten", "-1"),
    "budget_duration": ("", "none", "30d", "1MO", "soon"),
    "models": ("", "none", "gpt-4o", "gpt-4o;claude-3", "gpt-5x", ALL_MODELS),
    "tpm_limit": ("", "none", "100", "1.5"),
    "rpm_limit": ("", "5", "none"),
    "max_parallel_requests": ("", "4", "none"),
    "metadata.cost_center": ("", "none", "cc1", "cc2", "7"),
    "metadata.offboarded_at": ("", "2020-01-01"),  # the tools' own mark: a file's is ignored
    "state": ("", "active", "offboarded", "ACTIVE", "gone"),
    "metadata": ("", '{"cost_center": "cc1"}', "{}", '{"n": 5, "flag": true}', "[1]"),
}
OVERFULL = "the row has 6 fields but the header has 5: check for an unquoted delimiter in a cell"
TIDY_ACCESS_CELLS: dict[str, tuple[str, ...]] = {  # valid values only
    "user_alias": ("", "none", "Ann", "Bob"),
    "max_budget": ("", "none", "10", "2.5", "0"),
    "budget_duration": ("", "none", "30d", "1MO"),
    "models": ("", "none", "gpt-4o", "gpt-4o;claude-3", ALL_MODELS),
    "tpm_limit": ("", "none", "100"),
    "rpm_limit": ("", "5", "none"),
    "max_parallel_requests": ("", "4"),
    "metadata.cost_center": ("", "none", "cc1", "cc2", "7"),
    "metadata.offboarded_at": ("", "2020-01-01"),
    "state": ("", "active", "offboarded"),
}


@st.composite
def worlds(draw: st.DrawFn, *, tidy: bool = False) -> tuple[list[Row], Snapshot]:
    """A proxy (users, teams, models) and a file's rows, mostly naming what the proxy has.
    tidy: fewer bad cells, so that most plans go through."""
    users = draw(proxy_users(unique=tidy))
    teams = draw(proxy_teams([user.user_id for user in users]))
    snapshot = Snapshot(users, teams, models=draw(st.sampled_from([None, SERVED])))
    names = [snapshot.team_label(team.team_id) for team in teams]
    if not tidy:
        names += [team.alias for team in teams if team.alias] + ["ghost"]
    team_cell = st.one_of(
        st.sampled_from(["", "none", "None"]),
        st.lists(st.sampled_from(names), min_size=1, max_size=3).map(";".join) if names else st.just(""),
    )
    access = TIDY_ACCESS_CELLS if tidy else ACCESS_CELLS
    columns = draw(st.lists(st.sampled_from(list(access)), unique=True, max_size=4))
    with_user_id = draw(st.booleans())
    if tidy:  # each address once in the file
        emails = draw(st.lists(st.sampled_from(VALID_EMAILS), max_size=7, unique_by=addresses.key))
    else:
        emails = draw(st.lists(st.sampled_from(VALID_EMAILS + BAD_EMAILS), max_size=7))
    rows = []
    for line, email in enumerate(emails, start=2):
        cells = {
            "email": email.strip(),  # as the reader gives it: trimmed
            "role": draw(st.sampled_from(ROLE_CELLS[:7] if tidy else ROLE_CELLS)),
            "team_name": draw(team_cell),
            "key_name": draw(st.sampled_from(["", "laptop", f"key-{line}"])),
        }
        if with_user_id:
            own = [user.user_id for user in snapshot.users_by_email.get(addresses.key(email), [])]
            others = [] if tidy else [user.user_id for user in users] + ["a,b"]
            user_id = draw(st.sampled_from(["", "fresh", *own, *others]))
            if user_id == "fresh":  # an id for a new user: one per row (see test_two_rows_with_the_same_new_user_id)
                user_id = "" if tidy and own else f"restored-{line}"
            cells["user_id"] = user_id
        cells |= {column: draw(st.sampled_from(access[column])) for column in columns}
        problem = "" if tidy else draw(st.sampled_from(["", "", "", OVERFULL]))  # csv_input flags such rows
        rows.append(Row(line, cells, problem))
    return rows, snapshot


sync_options = st.builds(
    SyncOptions,
    default_role=st.sampled_from([*ROLES, "default"]),
    add=st.booleans(),
    update=st.booleans(),
    delete=st.booleans(),
    remove=st.sampled_from([Action.DELETE, Action.BLOCK]),
    now=st.just(NOW),
).flatmap(lambda o: st.sampled_from([o, replace(o, purge_after="30d")] if o.remove is Action.BLOCK else [o]))


def all_changes(plan: SyncPlan) -> list[Change]:
    return [c for action in (*CHANGES, Action.KEEP) for c in plan[action]] + [c for c, _ in plan.left_out]


# -- the tiny proxy model: what a successful run leaves ----------------------------------------------


def _set_fields(user: User, values: dict[str, Any]) -> User:
    """A user with these access values set (CLEARED: unset), as /user/new and /user/update leave it."""
    metadata = dict(user.metadata or {})
    attributes: dict[str, Any] = {}
    for column, value in values.items():
        if column == "metadata":  # the whole object: exactly this, the tools' own keys kept
            metadata = {k: v for k, v in metadata.items() if k in TOOL_KEYS} | ({} if value is CLEARED else value)
        elif column.startswith(METADATA_PREFIX):
            name = column[len(METADATA_PREFIX) :]
            if value is CLEARED:
                metadata.pop(name, None)
            else:
                metadata[name] = value
        elif column == "models":
            attributes[column] = (ALL_MODELS,) if value is CLEARED else tuple(value)
        else:
            attributes[column] = None if value is CLEARED else value
    return replace(user, metadata=metadata, **attributes)


def _with_rosters(snapshot: Snapshot, users: dict[str, User], rosters: dict[str, set[str]]) -> Snapshot:
    teams = [replace(team, member_ids=frozenset(rosters[team.team_id] & set(users))) for team in snapshot.teams]
    return Snapshot(list(users.values()), teams, snapshot.key_aliases, snapshot.models)


def apply_sync(plan: SyncPlan, snapshot: Snapshot, opts: SyncOptions) -> Snapshot:
    users = {user.user_id: user for user in snapshot.users}
    rosters = {team.team_id: set(team.member_ids) for team in snapshot.teams}
    for n, c in enumerate(plan[Action.ADD]):
        user_id = c.user_id or f"added-{n}"
        assert user_id not in users, f"{c.email}: user_id {user_id} is on the proxy already"
        users[user_id] = _set_fields(User(user_id, c.email, c.role, c.teams, 1), dict(c.new_values))
        if c.offboarded_since:
            user = users[user_id]
            users[user_id] = replace(user, metadata={**user.metadata, OFFBOARDED_AT: c.offboarded_since})
        for team in c.teams:
            rosters[team].add(user_id)
    for c in [*plan[Action.UPDATE], *plan[Action.REINSTATE]]:
        user = users[c.user_id]
        if c.action is Action.REINSTATE:
            user = replace(user, metadata={k: v for k, v in user.metadata.items() if k not in TOOL_KEYS})
        users[c.user_id] = _set_fields(
            replace(user, role=c.role, teams=c.teams), {f.column: f.new for f in c.field_changes}
        )
        for team in c.joins:
            rosters[team].add(c.user_id)
        for team in c.leaves:
            rosters[team].discard(c.user_id)
    for c in plan[Action.BLOCK]:
        user = users[c.user_id]
        users[c.user_id] = replace(user, metadata={**user.metadata, OFFBOARDED_AT: removal.now_mark(opts.now)})
    for c in [*plan[Action.DELETE], *plan[Action.PURGE]]:
        del users[c.user_id]
    return _with_rosters(snapshot, users, rosters)


# -- plan_sync ---------------------------------------------------------------------------------------


@FAST
@given(world=worlds(), opts=sync_options)
def test_sync_never_removes_a_user_the_file_lists_nor_an_unmanaged_user(
    world: tuple[list[Row], Snapshot], opts: SyncOptions
) -> None:
    rows, snapshot = world
    plan = plan_sync(rows, snapshot, opts)
    listed = {addresses.key(row["email"]) for row in rows}  # verbatim, even if bad
    listed |= {addresses.key(inner) for row in rows for inner in re.findall(r"<([^<>]+)>", row["email"])}
    removals = [c for c in all_changes(plan) if c.action.removes]
    for c in removals:
        assert c.user is not None
        assert c.row is None
        assert c.user.is_managed, f"{c.user} is not managed, yet planned {c.action}"
        assert addresses.key(c.user.email or "") not in listed, f"{c.user.email} is in the file"
    if opts.delete:  # without deletions, the users the file does not list are not looked at
        assert plan.managed == len([user for user in snapshot.users if user.email and user.role in ROLES])


@FAST
@given(world=worlds(), opts=sync_options)
def test_sync_gives_every_row_one_outcome_and_plans_no_user_twice(
    world: tuple[list[Row], Snapshot], opts: SyncOptions
) -> None:
    rows, snapshot = world
    plan = plan_sync(rows, snapshot, opts)
    outcomes = Counter(c.row.line for c in all_changes(plan) if c.row)
    outcomes.update(row.line for row, _, _ in plan.failures)
    assert outcomes == Counter(row.line for row in rows)

    planned = [c.user.user_id for c in all_changes(plan) if c.user]
    assert len(planned) == len(set(planned)), Counter(planned).most_common(1)
    added = [c for c in all_changes(plan) if c.action is Action.ADD]
    keys = [addresses.key(c.email) for c in added]
    assert len(keys) == len(set(keys))
    assert not set(keys) & set(snapshot.users_by_email)
    ids = [c.user_id for c in added if c.user_id]
    assert len(ids) == len(set(ids))
    assert not set(ids) & set(snapshot.users_by_id)


@FAST
@given(world=st.one_of(worlds(tidy=True), worlds()), opts=sync_options)
def test_sync_against_what_its_plan_leaves_changes_nothing(
    world: tuple[list[Row], Snapshot], opts: SyncOptions
) -> None:
    """The second plan changes nothing, except on rows the first plan could not do (a row that
    failed may go through once the state changed: its user_id's holder was deleted, say)."""
    rows, snapshot = world
    first = plan_sync(rows, snapshot, opts)
    after = apply_sync(first, snapshot, opts)
    second = plan_sync(rows, after, opts)
    failed = {row.line for row, _, _ in first.failures}
    again = [(c.action, c.email) for action in CHANGES for c in second[action] if not (c.row and c.row.line in failed)]
    assert again == [], second.describe(after, {})
    if not first.failures:
        assert not second.changes_anything()
        assert "No changes: the proxy already matches the file." in second.describe(after, {})


# -- plan_additions ----------------------------------------------------------------------------------


def apply_additions(plan: AddPlan, snapshot: Snapshot) -> Snapshot:
    users = {user.user_id: user for user in snapshot.users}
    rosters = {team.team_id: set(team.member_ids) for team in snapshot.teams}
    new_teams = {name: f"new-team-{n}" for n, name in enumerate(plan.new_teams)}
    teams = list(snapshot.teams) + [Team(team_id, name, frozenset()) for name, team_id in new_teams.items()]
    rosters |= {team_id: set() for team_id in new_teams.values()}
    aliases = set(snapshot.key_aliases)
    for n, add in enumerate(plan.additions):
        spec = add.spec
        user_id = spec.user_id or f"added-{n}"
        team_ids = tuple(new_teams.get(team, team) for team in spec.team_ids)
        users[user_id] = _set_fields(User(user_id, spec.email, spec.role, team_ids, int(spec.with_key)), add.values)
        for team in team_ids:
            rosters[team].add(user_id)
        if spec.key_alias:
            aliases.add(spec.key_alias)
    return _with_rosters(Snapshot([], teams, aliases, snapshot.models), users, rosters)


def _without_comma_ids(row: Row) -> Row:
    return Row(row.line, {**row.cells, "user_id": ""}) if "," in row["user_id"] else row


add_options = st.fixed_dictionaries(
    {
        "default_role": st.sampled_from([*ROLES, "default"]),
        "skip_existing": st.booleans(),
        "create_teams": st.booleans(),
        "with_key": st.booleans(),
    }
)


@FAST
@given(world=worlds(), options=add_options)
def test_add_gives_every_row_one_outcome_and_creates_no_user_twice(
    world: tuple[list[Row], Snapshot], options: dict[str, Any]
) -> None:
    rows, snapshot = world
    rows = [_without_comma_ids(row) for row in rows]  # see test_add_refuses_a_user_id_with_a_comma_as_a_row_error
    plan = plan_additions(rows, snapshot, **options)
    outcomes = Counter(add.row.line for add in plan.additions)
    outcomes.update(row.line for row, _ in plan.skipped)
    outcomes.update(row.line for row, _ in plan.failures)
    assert outcomes == Counter(row.line for row in rows)
    keys = [addresses.key(add.spec.email) for add in plan.additions]
    assert len(keys) == len(set(keys))
    for add in plan.additions:
        existing = snapshot.users_by_email.get(addresses.key(add.spec.email), [])
        assert not existing or add.unfinished in existing
    ids = [add.spec.user_id for add in plan.additions if add.spec.user_id]
    assert len(ids) == len(set(ids))
    aliases = [add.spec.key_alias for add in plan.additions if add.spec.key_alias]
    assert len(aliases) == len(set(aliases))
    assert not set(aliases) & snapshot.key_aliases - {a.spec.key_alias for a in plan.additions if a.unfinished}


@FAST
@given(world=worlds(), options=add_options)
def test_add_against_what_its_plan_leaves_adds_nothing(
    world: tuple[list[Row], Snapshot], options: dict[str, Any]
) -> None:
    """Rerun with --skip-existing (to finish an interrupted run): nothing left to create. Files
    without a user_id column: see test_add_rerun_with_a_user_id_column_adds_nothing."""
    rows, snapshot = world
    rows = [Row(row.line, {k: v for k, v in row.cells.items() if k != "user_id"}) for row in rows]
    first = plan_additions(rows, snapshot, **options)
    after = apply_additions(first, snapshot)
    second = plan_additions(rows, after, **{**options, "skip_existing": True})
    assert second.additions == []
    assert second.new_teams == []
    assert {row.line for row, _ in second.skipped} >= {add.row.line for add in first.additions}


def test_add_rerun_with_a_user_id_column_adds_nothing() -> None:
    rows = [Row(2, {"email": "ann@example.com", "user_id": "restored-1", "key_name": "ann-laptop"})]
    first = plan_additions(rows, Snapshot([], []), default_role="internal_user")
    assert [add.spec.user_id for add in first.additions] == ["restored-1"]
    after = apply_additions(first, Snapshot([], []))
    second = plan_additions(rows, after, default_role="internal_user", skip_existing=True)
    assert second.additions == []


def test_add_refuses_a_user_id_with_a_comma_as_a_row_error() -> None:
    rows = [Row(2, {"email": "ann@example.com", "user_id": "a,b"}), Row(3, {"email": "bob@example.com"})]
    plan = plan_additions(rows, Snapshot([], []), default_role="internal_user")
    assert [row.line for row, _ in plan.failures] == [2]
    assert [add.row.line for add in plan.additions] == [3]


# -- plan_deletions ----------------------------------------------------------------------------------

delete_options = st.fixed_dictionaries(
    {
        "all_matches": st.booleans(),
        "block": st.booleans(),
        "purge_after": st.sampled_from([None, "30d"]),
        "now": st.just(NOW),
    }
)


def apply_deletions(plan: DelPlan, snapshot: Snapshot) -> Snapshot:
    users = {user.user_id: user for user in snapshot.users}
    for r in plan.removals:
        if r.action is Action.BLOCK:
            users[r.user.user_id] = replace(r.user, metadata={**r.user.metadata, OFFBOARDED_AT: removal.now_mark(NOW)})
        else:
            del users[r.user.user_id]
    rosters = {team.team_id: set(team.member_ids) for team in snapshot.teams}
    return _with_rosters(snapshot, users, rosters)


@FAST
@given(world=worlds(), options=delete_options)
def test_del_gives_every_row_one_outcome_and_removes_no_user_twice(
    world: tuple[list[Row], Snapshot], options: dict[str, Any]
) -> None:
    rows, snapshot = world
    plan = plan_deletions(rows, snapshot, **options)
    failed = Counter(row.line for row, _ in plan.failures)
    resolved = Counter(r.row.line for r in plan.removals if r.row) + Counter(row.line for row, _, _ in plan.kept)
    assert not set(failed) & set(resolved)
    assert set(failed) | set(resolved) == {row.line for row in rows}
    assert max(failed.values(), default=1) == 1
    if not options["all_matches"]:
        assert max(resolved.values(), default=1) == 1
    users = [r.user.user_id for r in plan.removals] + [user.user_id for _, user, _ in plan.kept]
    assert len(users) == len(set(users))


@FAST
@given(world=worlds(), options=delete_options)
def test_del_against_what_its_plan_leaves_removes_nothing(
    world: tuple[list[Row], Snapshot], options: dict[str, Any]
) -> None:
    """Nothing is removed twice; only a row the first plan could not do may go through now (an
    email two users shared, one of them removed by its user_id on another row)."""
    rows, snapshot = world
    first = plan_deletions(rows, snapshot, **options)
    second = plan_deletions(rows, apply_deletions(first, snapshot), **options)
    failed = {row.line for row, _ in first.failures}
    assert [r for r in second.removals if not (r.row and r.row.line in failed)] == []
    if not first.failures:
        assert second.removals == []


# -- emails: invisible characters, display names, Unicode spellings ---------------------------------

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u0007"]


@pytest.mark.parametrize("char", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_an_email_with_an_invisible_character_is_refused_and_protects_the_address_it_means(char: str) -> None:
    cell = f"ann{char}@example.com"
    with pytest.raises(ValueError, match=f"invisible characters .*U\\+{ord(char):04X}"):
        addresses.parse(cell)
    assert "ann@example.com" in addresses.protected(cell)
    ann = User("u-ann", "ann@example.com", "internal_user", (), 1)
    snapshot = Snapshot([ann], [])
    row = Row(2, {"email": cell, "role": "internal_user"})

    sync = plan_sync([row], snapshot, SyncOptions(now=NOW))
    assert [(r.line, reason.startswith("email")) for r, reason, _ in sync.failures] == [(2, True)]
    assert not sync.changes_anything()  # ann is neither deleted nor changed
    assert [r for r, _ in plan_additions([row], Snapshot([], []), default_role="internal_user").failures] == [row]
    dele = plan_deletions([row], snapshot)
    assert dele.removals == []
    assert [r for r, _ in dele.failures] == [row]


@pytest.mark.parametrize(
    "cell", ["Ann Lee <ann@example.com>", '"Ann Lee" <ANN@example.com>', "'Lee, Ann' <ann@example.com>"]
)
def test_a_display_name_address_is_refused_but_protects_its_user(cell: str) -> None:
    assert "ann@example.com" in addresses.protected(cell)
    ann = User("u-ann", "ann@example.com", "proxy_admin", (), 0)
    bob = User("u-bob", "bob@example.com", "proxy_admin", (), 0)
    plan = plan_sync([Row(2, {"email": cell})], Snapshot([ann, bob], []), SyncOptions(now=NOW))
    assert [reason for _, reason, _ in plan.failures] == [
        f"invalid email '{cell}': one address, without a name or spaces"
    ]
    assert [c.user_id for c in plan[Action.DELETE]] == ["u-bob"]  # only bob, whom the file does not list


def test_nfc_and_nfd_spellings_are_the_same_email() -> None:
    assert ZOE_NFC != ZOE_NFD
    assert addresses.key(ZOE_NFC) == addresses.key(ZOE_NFD)
    assert addresses.parse(ZOE_NFD) == ZOE_NFC
    zoe = User("u-zoe", ZOE_NFD, "internal_user", (), 1)  # stored decomposed on the proxy
    snapshot = Snapshot([zoe], [])

    sync = plan_sync([Row(2, {"email": ZOE_NFC, "role": "internal_user"})], snapshot, SyncOptions(now=NOW))
    assert [c.user_id for c in sync[Action.KEEP]] == ["u-zoe"]
    assert not sync.changes_anything()
    add = plan_additions([Row(2, {"email": ZOE_NFC})], snapshot, default_role="internal_user")
    assert [reason for _, reason in add.failures] == [user_record.USER_EXISTS]
    dele = plan_deletions([Row(2, {"email": ZOE_NFC})], snapshot)
    assert [r.user.user_id for r in dele.removals] == ["u-zoe"]
    twice = plan_sync([Row(2, {"email": ZOE_NFD}), Row(3, {"email": ZOE_NFC})], Snapshot([], []), SyncOptions())
    assert [(row.line, reason) for row, reason, _ in twice.failures] == [
        (3, "duplicate email in the file (first on line 2)")
    ]


def test_a_listed_address_the_proxy_has_verbatim_is_never_removed() -> None:
    root = User("u-root", "root@localhost", "proxy_admin", (), 1)
    plan = plan_sync([Row(2, {"email": "root@localhost"})], Snapshot([root], []), SyncOptions(now=NOW))
    assert not plan.failures  # an address without a dot in its domain is an address
    assert plan[Action.DELETE] == []
    assert [c.user_id for c in plan[Action.KEEP]] == ["u-root"]


@pytest.mark.parametrize("cell", ["Kn<kn@example.com>", "<kn@example.com>", '"kn@example.com"', "kn@example.com'"])
def test_an_accepted_email_is_the_address_sync_matches_it_by(cell: str) -> None:
    rows = [Row(2, {"email": cell, "role": "internal_user"})]
    opts = SyncOptions(now=NOW)
    first = plan_sync(rows, Snapshot([], []), opts)
    second = plan_sync(rows, apply_sync(first, Snapshot([], []), opts), opts)
    assert not second.changes_anything(), second.describe(Snapshot([], []), {})


def test_two_rows_with_the_same_new_user_id_are_not_both_created() -> None:
    rows = [Row(2, {"email": "a@example.com", "user_id": "r1"}), Row(3, {"email": "b@example.com", "user_id": "r1"})]
    sync = plan_sync(rows, Snapshot([], []), SyncOptions(now=NOW))
    add = plan_additions(rows, Snapshot([], []), default_role="internal_user")
    assert ([c.user_id for c in sync[Action.ADD]], [a.spec.user_id for a in add.additions]) == (["r1"], ["r1"])


# -- teams -------------------------------------------------------------------------------------------


@FAST
@given(teams=st.lists(st.tuples(st.sampled_from(ALIASES), st.booleans()), max_size=6))
def test_every_team_label_reads_back_as_its_team(teams: list[tuple[str | None, bool]]) -> None:
    """A team is written by its alias where that reads back as the team, else by its id. The one
    name that cannot read back: an id that another team has as its alias (LiteLLM allows it); that
    is refused as ambiguous, never taken for the other team."""
    snapshot = Snapshot([], [Team(f"t-{i}", alias, frozenset()) for i, (alias, _) in enumerate(teams)])
    shadowed = set()
    for team in snapshot.teams:
        label = snapshot.team_label(team.team_id)
        assert label in (team.alias, team.team_id)
        if label == team.team_id and snapshot.teams_by_alias.get(label, [team]) != [team]:
            shadowed.add(team.team_id)
            with pytest.raises(ValueError, match=r"ambiguous|alias of one team and the id of another"):
                snapshot.find_team(label)
            continue
        assert snapshot.find_team(label) is team
    chosen = [team.team_id for team, (_, pick) in zip(snapshot.teams, teams, strict=True) if pick]
    if not set(chosen) & shadowed:
        names = user_record.team_names(snapshot.team_cell(chosen)) or []
        assert sorted(snapshot.find_team(name).team_id for name in names) == sorted(chosen)


@pytest.mark.parametrize(
    ("alias", "written"),
    [("eng", "eng"), ("a;b", "t-1"), (" eng", "t-1"), ("eng ", "t-1"), ("none", "t-1"), ("None", "t-1"), (None, "t-1")],
)
def test_an_alias_that_would_not_read_back_is_written_by_its_id(alias: str | None, written: str) -> None:
    snapshot = Snapshot([], [Team("t-1", alias, frozenset()), Team("t-2", "ops", frozenset())])
    assert snapshot.team_label("t-1") == written
    assert snapshot.find_team(written).team_id == "t-1"
    assert user_record.team_names(snapshot.team_cell(["t-2", "t-1"])) == sorted([written, "ops"])


def test_a_shared_alias_is_written_by_id_and_as_a_name_is_ambiguous() -> None:
    snapshot = Snapshot([], [Team("t-1", "eng", frozenset()), Team("t-2", "eng", frozenset())])
    assert (snapshot.team_label("t-1"), snapshot.team_label("t-2")) == ("t-1", "t-2")
    assert snapshot.find_team("t-2").team_id == "t-2"
    with pytest.raises(ValueError, match="team alias 'eng' is ambiguous: 2 teams have it"):
        snapshot.find_team("eng")


@pytest.mark.parametrize("cell", ["none", "NONE", " None "])
def test_none_in_team_name_means_no_team(cell: str) -> None:
    assert user_record.team_names(cell) == []
    assert user_record.team_names("") is None  # empty: leave the teams alone
    ann = User("u-ann", "ann@example.com", "internal_user", (), 1)
    teams = [Team("t-1", "eng", frozenset({"u-ann"})), Team("t-2", "ops", frozenset({"u-ann"}))]
    snapshot = Snapshot([ann], teams)
    sync = plan_sync([Row(2, {"email": "ann@example.com", "team_name": cell})], snapshot, SyncOptions(now=NOW))
    sync.count_team_keys({"u-ann": [Key("hash-1", "k", "t-1", False), Key("hash-2", "own", None, False)]})
    (change,) = sync[Action.UPDATE]
    assert (change.teams, change.joins, change.leaves, change.keys_lost) == ((), (), ("t-1", "t-2"), 1)
    add = plan_additions(
        [Row(2, {"email": "bob@example.com", "team_name": cell})], snapshot, default_role="proxy_admin"
    )
    assert [(a.teams, a.spec.team_ids) for a in add.additions] == [([], ())]


# -- access columns ----------------------------------------------------------------------------------

BAD_VALUES = [
    ("max_budget", "ten"),
    ("max_budget", "-1"),
    ("max_budget", "inf"),
    ("tpm_limit", "1.5"),
    ("tpm_limit", "-3"),
    ("rpm_limit", "many"),
    ("max_parallel_requests", "two"),
]


@pytest.mark.parametrize(("column", "cell"), BAD_VALUES)
def test_a_bad_value_is_an_error_naming_its_column_and_value(column: str, cell: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{column} '{cell}' ")) as error:
        user_record.wanted({"email": "ann@example.com", column: cell})
    row = Row(2, {"email": "ann@example.com", column: cell})
    assert plan_additions([row], Snapshot([], []), default_role="proxy_admin").failures == [(row, str(error.value))]
    assert [reason for _, reason, _ in plan_sync([row], Snapshot([], []), SyncOptions()).failures] == [str(error.value)]


@pytest.mark.parametrize("cell", ["soon", "30 days", "0d", "3mo", "24H"])
def test_a_duration_no_release_reads_is_refused_when_sent_and_kept_when_held(cell: str) -> None:
    """A value the proxy would not take is a row error naming the column and the value; the same
    value held by the proxy (1.80 stores any text) reads back as no change."""
    row = Row(2, {"email": "ann@example.com", "budget_duration": cell})
    (added,) = plan_additions([row], Snapshot([], []), default_role="proxy_admin").failures
    assert added[1].startswith(f"budget_duration '{cell}'")
    assert [reason for _, reason, _ in plan_sync([row], Snapshot([], []), SyncOptions()).failures] == [added[1]]
    ann = User("u-ann", "ann@example.com", "internal_user", (), 0, budget_duration=cell)
    assert not plan_sync([row], Snapshot([ann], []), SyncOptions()).changes_anything()


@pytest.mark.parametrize(
    ("release", "cell", "refused"),
    [
        ((1, 110, 2), "24hr", False),
        ((1, 110, 2), "60min", False),
        ((1, 110, 2), "daily", False),
        ((1, 80, 7), "24hr", True),  # its reset reads the letters after the number: 'hr' is no unit
        ((1, 80, 7), "2w", True),
        ((1, 80, 7), "1h30m", False),
        ((1, 65, 8), "60min", False),
        ((1, 65, 8), "daily", True),
    ],
)
def test_each_release_takes_the_durations_its_own_parser_reads(
    release: tuple[int, ...], cell: str, refused: bool
) -> None:
    ann = User("u-ann", "ann@example.com", "internal_user", (), 0, budget_duration="30d")
    snapshot = Snapshot([ann], [], rules=Release(release))
    plan = plan_sync([Row(2, {"email": "ann@example.com", "budget_duration": cell})], snapshot, SyncOptions())
    assert bool(plan.failures) == refused, plan.describe(snapshot, {})


def test_a_model_the_proxy_does_not_serve_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^model 'gpt-5x' is not served by this proxy$"):
        user_record.wanted({"models": "gpt-4o;gpt-5x"}, SERVED)
    assert user_record.wanted({"models": "gpt-4o;gpt-5x"}) == {"models": ("gpt-4o", "gpt-5x")}  # models not read


@pytest.mark.parametrize(
    ("column", "held", "sent"),
    [
        ("user_alias", {"user_alias": "Ann"}, ""),
        ("max_budget", {"max_budget": 10.0}, None),
        ("budget_duration", {"budget_duration": "30d"}, None),
        ("models", {"models": ("gpt-4o",)}, [ALL_MODELS]),
        ("tpm_limit", {"tpm_limit": 100}, None),
        ("rpm_limit", {"rpm_limit": 5}, None),
    ],
)
def test_none_clears_a_value(column: str, held: dict[str, Any], sent: Any) -> None:
    ann = User("u-ann", "ann@example.com", "internal_user", (), 0, **held)
    values = user_record.wanted({column: "NONE"})
    assert values == {column: CLEARED}
    changes = user_record.differences(values, ann)
    assert [(c.column, c.old, c.new) for c in changes] == [(column, next(iter(held.values())), CLEARED)]
    assert user_record.update_fields(changes, ann) == {column: sent}
    assert user_record.differences(values, User("u-bob", "bob@example.com", None, (), 0)) == []  # unset already
    assert user_record.new_fields(values) == {}  # a new user gets the proxy's default


def test_none_cannot_clear_max_parallel_requests() -> None:
    ann = User("u-ann", "ann@example.com", "internal_user", (), 0, max_parallel_requests=4)
    with pytest.raises(ValueError, match="max_parallel_requests cannot be cleared"):
        user_record.differences(user_record.wanted({"max_parallel_requests": "none"}), ann)


def test_a_metadata_column_changes_only_its_key() -> None:
    ann = User("u-ann", "ann@example.com", "internal_user", (), 0, metadata={"cost_center": "cc1", "owner": "it"})
    set_it = user_record.differences(user_record.wanted({"metadata.cost_center": "cc9", "email": "x"}), ann)
    assert [c.describe() for c in set_it] == ["metadata.cost_center: cc1 -> cc9"]
    assert user_record.update_fields(set_it, ann) == {"metadata": {"cost_center": "cc9", "owner": "it"}}
    clear = user_record.differences(user_record.wanted({"metadata.cost_center": "none"}), ann)
    assert user_record.update_fields(clear, ann) == {"metadata": {"owner": "it"}}
    new = user_record.differences(user_record.wanted({"metadata.team_lead": "Kim"}), ann)
    assert user_record.update_fields(new, ann) == {
        "metadata": {"cost_center": "cc1", "owner": "it", "team_lead": "Kim"}
    }
    same = user_record.differences(user_record.wanted({"metadata.owner": "it"}), ann)
    assert same == []
    last = User("u-bob", "bob@example.com", None, (), 0, metadata={"cost_center": "cc1"})
    clear_last = user_record.differences(user_record.wanted({"metadata.cost_center": "none"}), last)
    assert user_record.update_fields(clear_last, last) == {"metadata": {"cost_center": None}}  # {} would be ignored


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
METADATA_VALUE = st.one_of(st.none(), TEXT, st.integers(-5, 5), st.booleans(), st.lists(st.integers(0, 3), max_size=2))


def _not_none(text: str) -> bool:
    return text.strip().lower() != user_record.CLEAR


@st.composite
def any_users(draw: st.DrawFn) -> User:
    return User(
        "u-1",
        "ann@example.com",
        draw(st.sampled_from(PROXY_ROLES)),
        (),
        0,
        user_alias=draw(st.one_of(st.none(), TEXT.filter(_not_none))),
        max_budget=draw(st.one_of(st.none(), st.floats(0, 1e12, allow_nan=False), st.integers(0, 10**6).map(float))),
        budget_duration=draw(st.one_of(st.none(), st.sampled_from(["30s", "30m", "24h", "30d", "2w", "1mo"]))),
        models=draw(st.lists(st.sampled_from(["gpt-4o", "claude-3", "openai/*", ALL_MODELS]), unique=True).map(tuple)),
        tpm_limit=draw(st.one_of(st.none(), st.integers(0, 10**9))),
        rpm_limit=draw(st.one_of(st.none(), st.integers(0, 10**9))),
        max_parallel_requests=draw(st.one_of(st.none(), st.integers(0, 100))),
        metadata=draw(
            st.dictionaries(
                TEXT.filter(lambda name: name == name.strip()),
                METADATA_VALUE.filter(lambda v: not isinstance(v, str) or _not_none(v)),
                max_size=3,
            )
        ),
    )


@FAST
@given(user=any_users())
def test_export_then_read_back_is_no_change(user: User) -> None:
    columns = [*user_record.ACCESS_COLUMNS, *(METADATA_PREFIX + name for name in user.metadata)]
    cells = {column: user_record.export(column, user) for column in columns}
    assert user_record.differences(user_record.wanted(cells), user) == []


@pytest.mark.parametrize(
    "user",
    [
        User("u-1", "a@example.com", "internal_user", (), 0, user_alias="None"),
        User("u-1", "a@example.com", "internal_user", (), 0, metadata={"cost_center": "none"}),
    ],
    ids=["user_alias", "metadata"],
)
def test_a_value_spelled_none_survives_export(user: User) -> None:
    columns = [*user_record.ACCESS_COLUMNS, *(METADATA_PREFIX + name for name in user.metadata)]
    cells = {column: user_record.export(column, user) for column in columns}
    assert user_record.differences(user_record.wanted(cells), user) == []
