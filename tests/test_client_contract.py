"""The client's contract, asserted the same way against the stand-in (as 1.108.7 and as 1.80.7)
and the real proxy. Where they disagree, the stand-in is wrong."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from common.snapshot import Snapshot as ProxyState
from litellm_client import LiteLLMClient, ProxyError, error_message
from tests.conftest import Proxy, new_user


def test_create_user_with_team_and_key(proxy: Proxy) -> None:
    team = proxy.create_team(f"eng-{proxy.tag}")
    with proxy.client() as client:
        new = new_user(
            client, proxy.email("Alice"), role="internal_user", team_ids=[team], key_alias=f"alice-{proxy.tag}"
        )
        teams = {t.team_id: t for t in client.teams()}
    user = proxy.users()[proxy.email("alice")]
    assert (user.user_id, user.role, user.teams, user.key_count) == (new.user_id, "internal_user", (team,), 1)
    assert new.user_id in teams[team].member_ids
    assert teams[team].keys_by_user == {new.user_id: (f"alice-{proxy.tag}",)}  # the key belongs to the team too
    assert new.key.startswith("sk-")
    assert proxy.key_works(new.key)


def test_duplicate_email_is_already_exists_whatever_the_case(proxy: Proxy) -> None:
    proxy.create_user(proxy.email("bob"))
    with proxy.client() as client, pytest.raises(ProxyError) as caught:
        new_user(client, proxy.email("BOB"), role="internal_user")
    assert caught.value.status in (400, 409)
    assert caught.value.already_exists
    assert "already exists" in caught.value.message
    assert len(proxy.users()) == 1


def test_find_by_email_is_exact_not_the_proxys_substring(proxy: Proxy) -> None:
    proxy.create_user(proxy.email("ann"))
    proxy.create_user("b" + proxy.email("ann"))
    with proxy.client() as client:
        found = client.find_users_by_email(proxy.email("ANN"))
    assert [u.email for u in found] == [proxy.email("ann")]


def test_listing_reads_every_page(proxy: Proxy) -> None:
    with proxy.client(workers=4) as client:
        for n in range(105):
            new_user(client, proxy.email(f"page{n:03d}"), role="internal_user", with_key=False)
        pages = client.users()
        listed = list(pages)
    mine = [u for u in listed if u.email and proxy.tag in u.email]
    assert len(mine) == 105
    assert len(listed) == pages.total
    assert len({u.user_id for u in listed}) == len(listed)


def test_filters_the_proxy_applies(proxy: Proxy) -> None:
    team = proxy.create_team(f"flt-{proxy.tag}")
    proxy.create_user(proxy.email("viewer"), role="internal_user_viewer", teams=(team,))
    proxy.create_user(proxy.email("admin"), role="proxy_admin")
    with proxy.client() as client:
        by_team = [u.email for u in client.users(team_id=team) if u.email]  # default_user_id is in every team
        by_role = [u.email for u in client.users(role="internal_user_viewer", email_contains=proxy.tag)]
    assert by_team == [proxy.email("viewer")]
    assert by_role == [proxy.email("viewer")]


def test_team_aliases_are_not_unique(proxy: Proxy) -> None:
    alias = f"twin-{proxy.tag}"
    first, second = proxy.create_team(alias), proxy.create_team(alias)
    assert first != second
    with proxy.client() as client:
        state = ProxyState(users=[], teams=client.teams())
    with pytest.raises(ValueError, match="ambiguous"):
        state.find_team(alias)


def test_members_are_added_in_one_batch_and_again_without_error(proxy: Proxy) -> None:
    team = proxy.create_team(f"batch-{proxy.tag}")
    ids = [proxy.create_user(proxy.email(f"m{n}"), with_key=False) for n in range(5)]
    with proxy.client() as client:
        client.add_team_members(team, ids)
        client.add_team_members(team, ids)  # all present: the proxy says 400, which is done
        members = next(t.member_ids for t in client.teams() if t.team_id == team)
    assert set(ids) <= members
    assert {proxy.users()[proxy.email(f"m{n}")].teams for n in range(5)} == {(team,)}


def test_leaving_a_team_deletes_that_teams_keys_only(proxy: Proxy) -> None:
    team = proxy.create_team(f"leave-{proxy.tag}")
    with proxy.client() as client:
        new = new_user(
            client, proxy.email("carl"), role="internal_user", team_ids=[team], key_alias=f"carl-{proxy.tag}"
        )
        personal = client.generate_key(new.user_id, team_id=None, alias=f"carl-own-{proxy.tag}")
        client.remove_team_member(team, new.user_id)
        client.remove_team_member(team, new.user_id)  # not a member any more: nothing to do
    user = proxy.users()[proxy.email("carl")]
    assert (user.teams, user.key_count) == ((), 1)
    assert not proxy.key_works(new.key)
    assert proxy.key_works(personal)


def test_key_aliases_are_unique_on_generate(proxy: Proxy) -> None:
    user_id = proxy.create_user(proxy.email("dana"), with_key=False)
    with proxy.client() as client:
        client.generate_key(user_id, team_id=None, alias=f"dana-{proxy.tag}")
        assert f"dana-{proxy.tag}" in client.key_aliases()
        with pytest.raises(ProxyError) as caught:
            client.generate_key(user_id, team_id=None, alias=f"dana-{proxy.tag}")
    assert caught.value.status == 400
    assert "already exists" in caught.value.message


def test_delete_batch_survives_a_user_that_vanished(proxy: Proxy) -> None:
    for n in range(3):
        proxy.create_user(proxy.email(f"del{n}"))
    users = sorted(proxy.users().values(), key=lambda u: u.email or "")
    with proxy.client() as client:
        client.delete_user_batch([users[1]])  # someone else deletes it first
        outcome = client.delete_user_batch(users)
    assert sorted(u.email for u in outcome.deleted) == [proxy.email("del0"), proxy.email("del2")]
    assert [u.email for u in outcome.missing] == [proxy.email("del1")]
    assert proxy.users() == {}


def test_role_update_never_creates_a_ghost(proxy: Proxy) -> None:
    user_id = proxy.create_user(proxy.email("eve"), with_key=False)
    with proxy.client() as client:
        client.update_user(user_id, {"user_role": "proxy_admin_viewer"})
        assert proxy.users()[proxy.email("eve")].role == "proxy_admin_viewer"
        with pytest.raises(ProxyError) as caught:
            client.update_user(f"ghost-{proxy.tag}", {"user_role": "internal_user"})
        assert caught.value.not_found
        assert not [u for u in client.users() if u.user_id == f"ghost-{proxy.tag}"]


def test_invitation_link(proxy: Proxy) -> None:
    proxy.create_team(f"inv-{proxy.tag}")  # a proxy needs its own default user for invitations
    user_id = proxy.create_user(proxy.email("ivy"), with_key=False)
    with proxy.client() as client:
        invitation = client.create_invitation(user_id)
    assert len(invitation) >= 32  # an id for {public URL}/ui/onboarding?id=...


def test_wrong_master_key_is_auth_refused(proxy: Proxy) -> None:
    with LiteLLMClient(proxy.url, "sk-not-the-master-key") as client, pytest.raises(ProxyError) as caught:
        client.users()
    assert caught.value.status == 401
    assert caught.value.auth_refused
    assert "Authentication Error" in caught.value.message


def test_validation_errors_are_readable(proxy: Proxy) -> None:
    with proxy.client() as client, pytest.raises(ProxyError) as caught:
        client._call("GET", "/user/list", params={"page_size": 1000})
    assert caught.value.status == 422
    assert caught.value.message == "query.page_size: Input should be less than or equal to 100"


def test_release_is_detected(proxy: Proxy) -> None:
    with proxy.client() as client:
        release = client.release
    assert release.version is not None
    if proxy.standin:
        assert release.label == proxy.standin.release


def test_the_older_stand_in_loses_members_like_a_real_1_80(old_standin: Proxy) -> None:
    """Parallel /user/new into one team without the client's care: the roster loses members, as
    measured on a real 1.80.7. This is what the tools' tests would catch a regression with."""
    team = old_standin.create_team("race")

    def create(n: int) -> str:
        answer = requests.post(
            f"{old_standin.url}/user/new",
            json={"user_email": f"r{n}@example.com", "team_id": team},
            headers={"Authorization": f"Bearer {old_standin.master_key}"},
            timeout=30,
        )
        return answer.json()["user_id"]

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(create, range(40)))
    kept = ids & set(old_standin.standin.roster(team))
    assert len(kept) < len(ids)
    assert all(u.teams == (team,) for u in old_standin.users().values() if u.email and u.email.startswith("r"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"error": {"message": "{'error': 'User with email a@x.com already exists'}", "code": "409"}},
            "User with email a@x.com already exists",
        ),
        ({"detail": {"error": "User not found, passed user_id=x"}}, "User not found, passed user_id=x"),
        ({"detail": "Not Found"}, "Not Found"),
        (
            {"detail": [{"type": "missing", "loc": ["body", "user_ids"], "msg": "Field required"}]},
            "user_ids: Field required",
        ),
        (
            {"type": "urn:litellm:error:x", "title": "License limit", "status": 403, "detail": "over"},
            "License limit: over",
        ),
        ({"error": {"message": {"error": "raw object (1.53)"}}}, "raw object (1.53)"),
        ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
    ],
)
def test_every_error_shape_gives_a_message(body: object, message: str) -> None:
    assert error_message(body) == message


def test_unknown_user_info_answers_by_release(proxy: Proxy) -> None:
    """Why the client never asks /user/info whether a user exists: 404 from 1.81, 200 before."""
    answer = requests.get(
        f"{proxy.url}/user/info",
        params={"user_id": f"nobody-{proxy.tag}"},
        headers={"Authorization": f"Bearer {proxy.master_key}"},
        timeout=30,
    )
    with proxy.client() as client:
        old = not client.release.at_least(1, 81)
    assert (answer.status_code, answer.json().get("user_info")) == ((200, {"spend": 0}) if old else (404, None))
