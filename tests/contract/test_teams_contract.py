"""The client's team calls as teams as code relies on them (issue 25), against every proxy the
`proxy` fixture gives: the stand-in as 1.108.7, 1.80.7 and 1.65.8 (and as 1.110.2 here), and the
real proxy named by LITELLM_TEST_BASE_URL. Where they disagree, the stand-in is wrong.

What is pinned: /team/new with every setting and metadata, read back through the client's
listing, /team/info and the raw answer; /team/update's null (budget, limits, duration), [] (models)
and whole metadata; a teams file's plan applied as team_apply.py applies it and planned again;
/team/member_update's roles (a demotion everywhere, a promotion on 1.65.8 only without a licence);
/key/aliases by release; /spend/users for the fields a listing leaves out.

Real proxies keep state: every name carries the test's tag, and each test deletes the teams and
users it made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from common import team_apply, team_record, user_record
from common.csv_input import Row
from common.team_record import TeamPlan, plan_teams
from litellm_client import LiteLLMClient, ProxyError, Team
from tests.conftest import PROXIES, Proxy, new_user, proxy_named
from tests.contract import raw
from tests.support.standin import StandIn

SETTINGS: dict[str, Any] = {
    "max_budget": 10.5,
    "budget_duration": "30d",
    "models": ["gpt-4o"],
    "tpm_limit": 1000,
    "rpm_limit": 10,
}
METADATA = {"owner": "ann", "n": 5}


@pytest.fixture(params=["standin-1.110.2", *PROXIES])
def proxy(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """The stand-in as every release it knows (1.110.2 too), and the real proxy."""
    yield from proxy_named(request.param)


@dataclass
class Made:
    """What a test made on the proxy, deleted when it ends (teams first: 1.65.8 leaves a deleted
    user on its rosters)."""

    teams: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


@pytest.fixture
def made(proxy: Proxy) -> Iterator[Made]:
    things = Made()
    yield things
    for team_id in things.teams:
        raw.post(proxy, "/team/delete", {"team_ids": [team_id]})
    if things.users:
        raw.post(proxy, "/user/delete", {"user_ids": things.users})


def _info(proxy: Proxy, team_id: str) -> dict[str, Any]:
    answer = raw.get(proxy, "/team/info", team_id=team_id)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["team_info"])


def _roles(proxy: Proxy, team_id: str) -> dict[str, str]:
    """The roster's roles by user_id, as /team/info shows them."""
    return {m["user_id"]: m["role"] for m in _info(proxy, team_id)["members_with_roles"]}


def _settings(team: Team) -> tuple[Any, ...]:
    return (team.alias, team.max_budget, team.budget_duration, team.models, team.tpm_limit, team.rpm_limit)


def _listed(client: LiteLLMClient, team_id: str) -> Team:
    (team,) = [t for t in client.teams() if t.team_id == team_id]
    return team


def _mine(client: LiteLLMClient, proxy: Proxy) -> list[Team]:
    """This test's teams, as the client lists them (a real proxy has others)."""
    return [t for t in client.teams() if proxy.tag in (t.alias or "") or proxy.tag in t.team_id]


def _member_team(proxy: Proxy, made: Made, name: str, *, admin: bool) -> tuple[str, str]:
    """A team and a user on its roster, an admin or not: /team/new takes an admin without a
    licence on every release (research Q1c)."""
    user_id = proxy.create_user(proxy.email(name), with_key=False)
    made.users.append(user_id)
    team_id = f"{name}-{proxy.tag}"
    made.teams.append(team_id)
    roster = [{"user_id": user_id, "role": "admin" if admin else "user"}]
    answer = raw.post(proxy, "/team/new", {"team_id": team_id, "team_alias": team_id, "members_with_roles": roster})
    assert answer.status_code == 200, answer.text
    return team_id, user_id


# -- /team/new and /team/update ----------------------------------------------------------------


def test_a_team_is_created_with_every_setting_and_reads_back_everywhere(proxy: Proxy, made: Made) -> None:
    team_id = f"tset-{proxy.tag}"
    made.teams.append(team_id)
    with proxy.client() as client:
        created = client.create_team(team_id, team_id=team_id, metadata=METADATA, settings=SETTINGS)
        listed, one = _listed(client, team_id), client.team(team_id)
    expected = (team_id, 10.5, "30d", ("gpt-4o",), 1000, 10)
    assert [_settings(team) for team in (created, listed, one)] == [expected] * 3
    assert [dict(team.metadata) for team in (created, listed, one)] == [METADATA] * 3
    assert (listed.spend, listed.admin_ids) == (0.0, frozenset({"default_user_id"}))  # the master key's user
    info = _info(proxy, team_id)
    assert {name: info[name] for name in SETTINGS} == SETTINGS
    assert (info["team_alias"], info["metadata"]) == (team_id, METADATA)
    for name in ("created_at", "budget_reset_at", "members_with_roles", "spend"):
        assert name in info


def test_team_update_null_clears_the_budget_limits_and_duration_and_models_empty_clears(
    proxy: Proxy, made: Made
) -> None:
    """On every release seen (research Q2); /user/update ignores these nulls before 1.108."""
    team_id = f"tclr-{proxy.tag}"
    made.teams.append(team_id)
    with proxy.client() as client:
        client.create_team(team_id, team_id=team_id, metadata=METADATA, settings=SETTINGS)
        client.update_team(
            team_id, {"max_budget": None, "budget_duration": None, "tpm_limit": None, "rpm_limit": None, "models": []}
        )
        listed = _listed(client, team_id)
    assert _settings(listed) == (team_id, None, None, (), None, None)
    assert listed.metadata == METADATA  # what is not sent is kept
    info = _info(proxy, team_id)
    assert {name: info[name] for name in SETTINGS} == {**dict.fromkeys(SETTINGS), "models": []}


def test_team_update_replaces_metadata_whole(proxy: Proxy, made: Made) -> None:
    team_id = f"tmeta-{proxy.tag}"
    made.teams.append(team_id)
    with proxy.client() as client:
        client.create_team(team_id, team_id=team_id, metadata=METADATA, settings={"max_budget": 3})
        client.update_team(team_id, {"metadata": {"c": 3}})
        assert _listed(client, team_id).metadata == {"c": 3}
        client.update_team(team_id, {"metadata": {}})
        assert _listed(client, team_id).metadata == {}
        client.update_team(team_id, {"metadata": {"c": None}})  # a key sent as null is stored as null
        assert _listed(client, team_id).metadata == {"c": None}
        assert _listed(client, team_id).max_budget == 3.0
    assert _info(proxy, team_id)["metadata"] == {"c": None}


def test_team_update_with_models_null_is_a_500_that_changes_nothing(proxy: Proxy, made: Made) -> None:
    """research Q2's table says models null is "no change"; its transcripts, and these proxies,
    answer 500 on every release, and apply nothing the request holds: a team's models are cleared
    with [] (team_record.field)."""
    team_id = f"tnull-{proxy.tag}"
    made.teams.append(team_id)
    with proxy.client() as client:
        client.create_team(team_id, team_id=team_id, settings={"models": ["gpt-4o"]})
        with pytest.raises(ProxyError) as caught:
            client.update_team(team_id, {"models": None, "tpm_limit": 5})
        assert caught.value.status == 500
        assert _settings(_listed(client, team_id))[3:] == (("gpt-4o",), None, None)
        with pytest.raises(ProxyError) as caught:
            client.update_team(f"unknown-{proxy.tag}", {"max_budget": 1})
    assert caught.value.not_found


def test_team_update_renames_a_team_and_null_takes_its_alias_away(proxy: Proxy, made: Made) -> None:
    team_id = f"tren-{proxy.tag}"
    made.teams.append(team_id)
    with proxy.client() as client:
        client.create_team(team_id, team_id=team_id, settings={"rpm_limit": 7})
        client.update_team(team_id, {"team_alias": f"renamed-{proxy.tag}"})
        assert _settings(_listed(client, team_id)) == (f"renamed-{proxy.tag}", None, None, (), None, 7)
        client.update_team(team_id, {"team_alias": None})  # never sent by the tools: a row without team_name keeps it
        assert _settings(client.team(team_id)) == (None, None, None, (), None, 7)


# -- a teams file, applied as team_apply.py applies it ---------------------------------------------


def _apply(client: LiteLLMClient, plan: TeamPlan) -> None:
    """What team_apply.apply_teams sends, one change at a time."""
    for change in plan.creates:
        settings = user_record.new_fields(change.values)
        metadata = settings.pop("metadata", None)
        client.create_team(change.alias, team_id=change.team_id, metadata=metadata, settings=settings)
    for change in plan.updates:
        assert change.team is not None
        body = user_record.update_fields(list(change.changes), change.team, field_of=team_record.field)
        client.update_team(change.team_id, body | ({"team_alias": change.alias} if change.renames else {}))


def _plan(client: LiteLLMClient, proxy: Proxy, rows: list[Row], new_id: str = "") -> TeamPlan:
    return plan_teams(
        rows, _mine(client, proxy), models=client.models(), rules=client.rules, new_id=lambda: new_id or "unused"
    )


def test_a_teams_file_applied_then_planned_again_changes_nothing(proxy: Proxy, made: Made) -> None:
    alias, team_id = f"tf-{proxy.tag}", f"tf-id-{proxy.tag}"
    made.teams.append(team_id)
    cells = {
        "max_budget": "10.5",
        "budget_duration": "30d",
        "models": "gpt-4o;claude-3-5-sonnet",
        "tpm_limit": "1000",
        "rpm_limit": "10",
        "metadata.owner": "ann",
        "metadata.n": "5",
    }
    steps = [
        {"team_name": alias, "team_id": "", **cells},  # created
        {"team_name": alias, "team_id": "", **cells, "max_budget": "0", "metadata.owner": "bob"},  # two cells edited
        {"team_name": f"{alias}-x", "team_id": team_id, **dict.fromkeys(team_record.SETTINGS, "none")},  # renamed
        {"team_name": "", "team_id": team_id, "metadata.owner": "none"},  # one key of two cleared
        {"team_name": "", "team_id": team_id, "metadata": '{"k": [1, 2], "owner": "cy"}'},  # the whole object
    ]
    with proxy.client() as client:
        for number, cells_now in enumerate(steps):
            rows = [Row(2, cells_now)]
            plan = _plan(client, proxy, rows, team_id)
            assert plan.failures == [], plan.lines("teams.csv")
            assert (len(plan.creates), len(plan.updates)) == ((1, 0) if number == 0 else (0, 1)), plan.lines("t")
            _apply(client, plan)
            again = _plan(client, proxy, rows)
            assert not again.changes_anything(), (number, again.lines("teams.csv"))
        team = _listed(client, team_id)
    assert _settings(team) == (f"{alias}-x", None, None, (), None, None)
    assert team.metadata == {"k": [1, 2], "owner": "cy"}
    assert team_record.export("metadata", team) == '{"k":[1,2],"owner":"cy"}'


def test_none_in_a_teams_metadata_leaves_no_key_the_tools_read(proxy: Proxy, made: Made) -> None:
    """The tools see the metadata cleared; the proxy keeps the keys, as nulls (see
    tests/unit/test_team_plan.py::test_clearing_a_teams_metadata_sends_an_empty_object)."""
    alias = f"tfm-{proxy.tag}"
    made.teams.append(alias)
    with proxy.client() as client:
        client.create_team(alias, team_id=alias, metadata=METADATA)
        rows = [Row(2, {"team_name": alias, "team_id": "", "metadata": "none"})]
        _apply(client, _plan(client, proxy, rows))
        assert not _plan(client, proxy, rows).changes_anything()
        assert team_record.export("metadata", _listed(client, alias)) == ""
    assert {name: value for name, value in _info(proxy, alias)["metadata"].items() if value is not None} == {}


# -- team roles ------------------------------------------------------------------------------------


def test_demoting_a_team_admin_works_on_every_release(proxy: Proxy, made: Made) -> None:
    team_id, user_id = _member_team(proxy, made, "demote", admin=True)
    with proxy.client() as client:
        assert user_id in client.team(team_id).admin_ids
        client.set_team_role(team_id, user_id, admin=False)
        team = client.team(team_id)
        done = team_apply.set_role(client, team_id, "demote", user_id, admin=False)  # again: no change, no error
    assert (user_id in team.member_ids, user_id in team.admin_ids) == (True, False)
    assert _roles(proxy, team_id)[user_id] == "user"
    assert done == ("ordinary member of demote", "")


def test_promoting_a_member_needs_a_licence_from_1_74(proxy: Proxy, made: Made) -> None:
    """1.65.8's /team/member_update makes a team admin without a licence; 1.74.15 and later refuse
    it with 400 and a plain-string detail (research Q1b)."""
    team_id, user_id = _member_team(proxy, made, "promote", admin=False)
    refused = raw.release_of(proxy).at_least(1, 74)
    with proxy.client() as client:
        if refused:
            with pytest.raises(ProxyError) as caught:
                client.set_team_role(team_id, user_id, admin=True)
            assert (caught.value.status, caught.value.needs_licence) == (400, True)
            assert "Assigning team admins is a premium feature" in caught.value.message
            done, why = team_apply.set_role(client, team_id, "promote", user_id, admin=True)
            assert done == ""
            assert why.startswith(
                f"not made an admin of team promote: LiteLLM {client.rules.label} makes team admins only with an "
                "Enterprise licence (HTTP 400: Assigning team admins is a premium feature"
            )
        else:
            client.set_team_role(team_id, user_id, admin=True)
            assert team_apply.set_role(client, team_id, "promote", user_id, admin=True) == ("admin of promote", "")
        team = client.team(team_id)
    assert (user_id in team.admin_ids) == (not refused)
    assert _roles(proxy, team_id)[user_id] == ("user" if refused else "admin")


@pytest.mark.parametrize("release", ["1.80.7", "1.108.7", "1.110.2"])
def test_a_licensed_proxy_makes_team_admins(release: str) -> None:
    """LITELLM_LICENSE set (the launcher's proxies have none): the stand-in alone can show it."""
    with StandIn(release=release, licensed=True) as standin, LiteLLMClient(standin.url, standin.master_key) as client:
        team_id = client.create_team("licensed").team_id
        user_id = new_user(client, "lee@example.com", with_key=False).user_id
        client.add_team_members(team_id, [user_id])
        client.set_team_role(team_id, user_id, admin=True)
        assert user_id in client.team(team_id).admin_ids
        client.set_team_role(team_id, user_id, admin=False)
        assert user_id not in client.team(team_id).admin_ids


def test_a_role_for_a_user_not_on_the_roster(proxy: Proxy, made: Made) -> None:
    """404 from 1.108 (1.108.7, 1.110.2); 1.100.5 and before, a 200 that changes nothing."""
    team_id, _ = _member_team(proxy, made, "stray", admin=False)
    stranger = proxy.create_user(proxy.email("stranger"), with_key=False)
    made.users.append(stranger)
    refused = raw.release_of(proxy).at_least(1, 108)
    answer = raw.post(proxy, "/team/member_update", {"team_id": team_id, "user_id": stranger, "role": "user"})
    assert answer.status_code == (404 if refused else 200), answer.text
    if refused:
        assert answer.json() == {"detail": {"error": f"User {stranger} is not a member of team {team_id}"}}
    assert stranger not in _roles(proxy, team_id)


# -- key aliases and the user table ----------------------------------------------------------------


def test_key_aliases_by_release(proxy: Proxy, made: Made) -> None:
    """1.65.8: no /key/aliases; 1.80.7: every alias at once, whatever the query; 1.90.7 on: pages
    of at most 100, with a search. The client finds the taken ones among a file's on each."""
    user_id = proxy.create_user(proxy.email("kal"), with_key=False)
    made.users.append(user_id)
    first, second, free = (f"ka{n}-{proxy.tag}" for n in (1, 2, 3))
    with proxy.client() as client:
        for alias in (first, second):
            client.generate_key(user_id, team_id=None, alias=alias)
        assert client.key_aliases([first, second, free]) == {first, second}
        assert client.key_aliases([free]) == set()
        assert {first, second} <= client.key_aliases()
        release = client.release
    answer = raw.get(proxy, "/key/aliases", page=1, size=100, search=first)
    if not release.at_least(1, 80):
        assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
        return
    assert answer.status_code == 200, answer.text
    body = answer.json()
    if release.at_least(1, 90):  # 1.90.7 and later: 100 a page, with a search (1.80.7: every alias at once)
        assert set(body) == {"aliases", "total_count", "current_page", "total_pages", "size"}
        assert (body["aliases"], body["total_count"], body["current_page"], body["total_pages"]) == ([first], 1, 1, 1)
        assert body["size"] == 100
        tagged = raw.get(proxy, "/key/aliases", page=1, size=1, search=proxy.tag).json()
        assert (tagged["aliases"], tagged["total_count"], tagged["total_pages"]) == ([first], 2, 2)
        assert raw.get(proxy, "/key/aliases", page=2, size=1, search=proxy.tag).json()["aliases"] == [second]
    else:
        assert set(body) == {"aliases"}
        assert {first, second} <= set(body["aliases"])  # the search is not read


def test_spend_users_gives_the_fields_a_listing_leaves_out(proxy: Proxy, made: Made) -> None:
    """/spend/users (the whole user table at once) on every release: max_parallel_requests, which
    /user/list rows carry only from 1.90."""
    with proxy.client() as client:
        user_id = new_user(client, proxy.email("spu"), with_key=False, max_parallel_requests=3, tpm_limit=9).user_id
        made.users.append(user_id)
        before = (proxy.standin.count("/spend/users"), proxy.standin.count("/user/info")) if proxy.standin else None
        found = client.user_details([user_id, f"nobody-{proxy.tag}"], users_on_proxy=1)
        if proxy.standin:  # one request for the whole table, none for each user
            assert before == (proxy.standin.count("/spend/users") - 1, proxy.standin.count("/user/info"))
        one_by_one = client.user_details([user_id])
        listed = client.existing([user_id])[user_id]
    assert list(found) == [user_id]
    user = found[user_id]
    assert (user.email, user.max_parallel_requests, user.tpm_limit, user.knows("max_parallel_requests")) == (
        proxy.email("spu"),
        3,
        9,
        True,
    )
    assert one_by_one[user_id].max_parallel_requests == 3
    assert listed.knows("max_parallel_requests") == raw.release_of(proxy).at_least(1, 90)
    rows = raw.get(proxy, "/spend/users").json()
    (row,) = [r for r in rows if isinstance(r, dict) and r.get("user_id") == user_id]
    assert (row["max_parallel_requests"], row["user_email"]) == (3, proxy.email("spu"))
