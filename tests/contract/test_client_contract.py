"""The proxy's contract, as the tools rely on it: each test makes the same assertions against the
stand-in (as each release it knows: 1.65.8, 1.80.7, 1.108.7, 1.110.2) and against the real proxy
named by LITELLM_TEST_BASE_URL. Where they disagree, the stand-in is wrong.

A test that depends on the release asks the proxy which one it is (client.release). Real proxies
keep what earlier tests left, and 1.65.8 ignores /user/list's email filter: tests look only at
users with this test's tag, and delete only users they made. The endpoints the client does not
wrap yet (the bulk ones) are called with requests.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from common.snapshot import Snapshot as ProxyState
from litellm_client import LiteLLMClient, ProxyError, User, error_message
from tests.conftest import PROXIES, Proxy, new_user, proxy_named
from tests.contract import raw

# What the launcher's real proxies are configured with: no access groups, no wildcard route, no
# PROXY_BASE_URL. The stand-in is given some, to show they are listed.
STANDIN_GROUPS = {"gpt-4o": ["grp-a"], "claude-3-5-sonnet": ["grp-a", "grp-b"]}
STANDIN_WILDCARDS = ["openai/*"]
STANDIN_BASE_URL = "https://llm.example.com"


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture(params=["standin-1.110.2", *PROXIES])
def proxy(request: pytest.FixtureRequest) -> Iterator[Proxy]:
    """The contract runs on the stand-in as every release it knows (1.110.2 too), and the real proxy."""
    yield from proxy_named(request.param)


def _row(proxy: Proxy, user_id: str) -> dict[str, Any] | None:
    """The /user/list row of one user (two ids: an exact match on every release)."""
    answer = raw.get(proxy, "/user/list", user_ids=f"{user_id},{user_id}", page_size=100)
    assert answer.status_code == 200, answer.text
    rows = [row for row in answer.json()["users"] if row["user_id"] == user_id]
    return rows[0] if rows else None


def _keys(proxy: Proxy, user_id: str) -> list[dict[str, Any]]:
    answer = raw.get(proxy, "/key/list", user_id=user_id, return_full_object="true", size=100)
    assert answer.status_code == 200, answer.text
    return [key for key in answer.json()["keys"] if key["user_id"] == user_id]


def _roster(proxy: Proxy, team_id: str) -> list[str]:
    answer = raw.get(proxy, "/team/info", team_id=team_id)
    assert answer.status_code == 200, answer.text
    return [m["user_id"] for m in answer.json()["team_info"]["members_with_roles"]]


def _mine(proxy: Proxy) -> dict[str, User]:
    """This test's users by lower-case email: filtered here too, since 1.65.8 ignores the filter."""
    with proxy.client() as client:
        listed = client.users(email_contains=proxy.tag)
        return {u.email.lower(): u for u in listed if u.email and proxy.tag in u.email}


def _by_email(client: LiteLLMClient, email: str) -> list[User]:
    """The users with this email, in any case (the proxy's filter is a substring, or ignored)."""
    return [u for u in client.users(email_contains=email) if (u.email or "").lower() == email.lower()]


def _shape(body: Any) -> str:
    """Which of the proxy's error shapes a body is: A {"error"}, B {"detail": str|dict}, C
    {"detail": [...]}, D (problem+json)."""
    if "error" in body:
        return "A"
    if "title" in body and "status" in body:
        return "D"
    return "C" if isinstance(body.get("detail"), list) else "B"


def _expires_within(stamp: str | None, seconds: int) -> bool:
    """An expiry set by a duration: after now, at most that long from now (1.80.7 snaps to a boundary)."""
    if not stamp:
        return False
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    left = (moment - datetime.now(timezone.utc)).total_seconds()
    return 0 < left <= seconds + 60


@pytest.fixture
def made(proxy: Proxy) -> Iterator[list[str]]:
    """User ids a test made without an email (ghosts) or in bulk: deleted afterwards, one by one."""
    ids: list[str] = []
    yield ids
    for user_id in ids:
        raw.post(proxy, "/user/delete", {"user_ids": [user_id]})


# -- creating users ---------------------------------------------------------------------------


def test_create_user_with_team_and_key(proxy: Proxy) -> None:
    team = proxy.create_team(f"eng-{proxy.tag}")
    with proxy.client() as client:
        new = new_user(
            client, proxy.email("Alice"), role="internal_user", team_ids=[team], key_alias=f"alice-{proxy.tag}"
        )
        teams = {t.team_id: t for t in client.teams()}
        keys = [(k.alias, k.team_id) for k in client.user_keys(new.user_id)]
    user = _mine(proxy)[proxy.email("alice")]
    assert (user.user_id, user.role, user.teams, user.key_count) == (new.user_id, "internal_user", (team,), 1)
    assert new.user_id in teams[team].member_ids
    assert keys == [(f"alice-{proxy.tag}", team)]  # the key belongs to the team too
    assert new.key.startswith("sk-")
    assert proxy.key_works(new.key)


def test_user_new_stores_every_access_field_and_its_key_copies_the_limits(proxy: Proxy) -> None:
    user_id = f"all-{proxy.tag}"
    fields = {
        "user_alias": f"Alias {proxy.tag}",
        "max_budget": 12.5,
        "budget_duration": "30d",
        "models": ["gpt-4o"],
        "tpm_limit": 1000,
        "rpm_limit": 10,
        "max_parallel_requests": 3,
        "metadata": {"cost_center": "cc1", "x": "y"},
    }
    body = {"user_id": user_id, "user_email": proxy.email("all"), "user_role": "internal_user", **fields}
    answer = raw.post(proxy, "/user/new", {**body, "key_alias": f"ka-{proxy.tag}", "duration": "30d"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["teams"] is None  # no teams asked for
    release = raw.release_of(proxy)

    row = _row(proxy, user_id)
    assert row is not None
    listed = dict(fields)
    if not release.at_least(1, 90):  # stored, but the list rows of 1.65.8 to 1.80.7 have no such column
        assert "max_parallel_requests" not in row
        del listed["max_parallel_requests"]
    assert {name: row[name] for name in listed} == listed
    assert (row["user_role"], row["teams"], row["key_count"]) == ("internal_user", [], 1)
    info = raw.get(proxy, "/user/info", user_id=user_id).json()["user_info"]
    assert info["max_parallel_requests"] == 3

    (key,) = _keys(proxy, user_id)
    copied = ("models", "tpm_limit", "rpm_limit", "max_parallel_requests", "metadata")
    assert {name: key[name] for name in copied} == {name: fields[name] for name in copied}
    assert (key["key_alias"], key["team_id"], key["max_budget"], key["budget_duration"]) == (
        f"ka-{proxy.tag}",
        None,
        None,
        None,
    )
    assert _expires_within(key["expires"], 30 * 86400)
    with proxy.client() as client:
        user = client.existing([user_id])[user_id]
    assert (user.user_alias, user.max_budget, user.models, user.metadata) == (
        fields["user_alias"],
        12.5,
        ("gpt-4o",),
        fields["metadata"],
    )


def test_duplicate_email_is_refused_and_from_1_74_whatever_the_case(proxy: Proxy) -> None:
    """1.65.8 compares emails exactly: the tools find existing users in their own listing."""
    proxy.create_user(proxy.email("bob"))
    release = raw.release_of(proxy)
    with proxy.client() as client:
        with pytest.raises(ProxyError) as caught:
            new_user(client, proxy.email("bob"), role="internal_user")
        assert caught.value.status == (400 if not release.at_least(1, 81) else 409)
        assert caught.value.already_exists
        assert "already exists" in caught.value.message
        if release.at_least(1, 74):
            with pytest.raises(ProxyError) as caught:
                new_user(client, proxy.email("BOB"), role="internal_user")
            assert caught.value.already_exists
        else:
            new_user(client, proxy.email("BOB"), role="internal_user")
        assert len(_by_email(client, proxy.email("bob"))) == (1 if release.at_least(1, 74) else 2)


def test_user_new_teams_and_team_id_by_release(proxy: Proxy) -> None:
    """team_id puts the user on the roster and gives its key to the team, everywhere; teams=[...]
    puts it on the rosters from 1.74 only (1.65.8 writes the user's own list), key without a team."""
    team_a, team_b = proxy.create_team(f"A-{proxy.tag}"), proxy.create_team(f"B-{proxy.tag}")
    one = raw.post(
        proxy, "/user/new", {"user_id": f"u1-{proxy.tag}", "user_email": proxy.email("u1"), "team_id": team_a}
    )
    two = raw.post(
        proxy, "/user/new", {"user_id": f"u2-{proxy.tag}", "user_email": proxy.email("u2"), "teams": [team_a, team_b]}
    )
    assert (one.status_code, two.status_code) == (200, 200)
    release = raw.release_of(proxy)
    if release.at_least(1, 108):  # the teams really joined (1.100.5 still answers null)
        assert (one.json()["teams"], sorted(two.json()["teams"])) == ([team_a], sorted([team_a, team_b]))
    elif release.at_least(1, 74):
        assert (one.json()["teams"], two.json()["teams"]) == (None, None)
    else:  # the list it was sent
        assert (one.json()["teams"], sorted(two.json()["teams"])) == (None, sorted([team_a, team_b]))
    writes_rosters = release.at_least(1, 74)
    assert (f"u2-{proxy.tag}" in _roster(proxy, team_a), f"u2-{proxy.tag}" in _roster(proxy, team_b)) == (
        writes_rosters,
        writes_rosters,
    )
    assert f"u1-{proxy.tag}" in _roster(proxy, team_a)
    assert (_row(proxy, f"u1-{proxy.tag}") or {})["teams"] == [team_a]
    assert sorted((_row(proxy, f"u2-{proxy.tag}") or {})["teams"]) == sorted([team_a, team_b])  # any order
    assert [k["team_id"] for k in _keys(proxy, f"u1-{proxy.tag}")] == [team_a]
    assert [k["team_id"] for k in _keys(proxy, f"u2-{proxy.tag}")] == [None]


def test_find_by_email_is_exact_not_the_proxys_substring(proxy: Proxy) -> None:
    proxy.create_user(proxy.email("ann"))
    proxy.create_user("b" + proxy.email("ann"))
    with proxy.client() as client:
        found = _by_email(client, proxy.email("ANN"))
    assert [u.email for u in found] == [proxy.email("ann")]


def test_key_aliases_are_unique_on_generate(proxy: Proxy) -> None:
    user_id = proxy.create_user(proxy.email("dana"), with_key=False)
    with proxy.client() as client:
        client.generate_key(user_id, team_id=None, alias=f"dana-{proxy.tag}")
        assert f"dana-{proxy.tag}" in client.key_aliases()
        with pytest.raises(ProxyError) as caught:
            client.generate_key(user_id, team_id=None, alias=f"dana-{proxy.tag}")
    assert caught.value.status == 400
    assert "already exists" in caught.value.message


def test_invitation_link(proxy: Proxy) -> None:
    proxy.create_team(f"inv-{proxy.tag}")  # a proxy needs its own default user for invitations
    user_id = proxy.create_user(proxy.email("ivy"), with_key=False)
    with proxy.client() as client:
        invitation = client.create_invitation(user_id)
    assert len(invitation) >= 32  # an id for {public URL}/ui/onboarding?id=...


# -- invalid values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "new", "update"),
    [
        # (new status on 1.65 / 1.80 / 1.100+), (update status on 1.65 / 1.80 / 1.100+)
        ("30d", (200, 200, 200), (200, 200, 200)),
        ("1mo", (200, 200, 200), (200, 200, 200)),
        ("2w", (200, 200, 200), (200, 200, 200)),
        ("10x", (500, 200, 400), (400, 200, 400)),
        ("1y", (500, 200, 400), (400, 200, 400)),
        ("30D", (500, 200, 400), (400, 200, 400)),
        ("3mo", (None, 500, 400), (None, 400, 400)),  # 1.65.8: depends on the month it runs in
    ],
)
def test_budget_duration_is_checked_by_release(
    proxy: Proxy, made: list[str], duration: str, new: tuple[int | None, ...], update: tuple[int | None, ...]
) -> None:
    release = raw.release_of(proxy)
    era = 2 if release.at_least(1, 100) else 1 if release.at_least(1, 74) else 0
    if new[era] is None:
        pytest.skip(f"budget_duration {duration!r} on {release.label} depends on the current month")
    user_id, base = f"bd-{proxy.tag}", f"bdbase-{proxy.tag}"
    made.extend([user_id, base])
    created = raw.post(
        proxy,
        "/user/new",
        {"user_id": user_id, "user_email": proxy.email("bd"), "auto_create_key": False, "budget_duration": duration},
    )
    assert created.status_code == new[era], created.text
    assert (_row(proxy, user_id) is not None) == (created.status_code == 200)  # a refused create made nothing
    raw.post(proxy, "/user/new", {"user_id": base, "user_email": proxy.email("bdbase"), "auto_create_key": False})
    updated = raw.post(proxy, "/user/update", {"user_id": base, "budget_duration": duration})
    assert updated.status_code == update[era], updated.text
    stored = (_row(proxy, base) or {})["budget_duration"]
    assert stored == (duration if updated.status_code == 200 else None)
    if created.status_code >= 400:
        assert _shape(created.json()) == "A"
        if era == 2:
            assert "Invalid budget_duration" in error_message(created.json())


def test_negative_limits_are_refused_from_1_110_only(proxy: Proxy, made: list[str]) -> None:
    user_id = f"neg-{proxy.tag}"
    made.append(user_id)
    created = raw.post(proxy, "/user/new", {"user_id": user_id, "user_email": proxy.email("neg"), "tpm_limit": -1})
    refused = raw.release_of(proxy).at_least(1, 110)
    assert created.status_code == (422 if refused else 200), created.text
    if refused:
        assert created.json()["detail"][0]["loc"] == ["body", "tpm_limit"]
        raw.post(proxy, "/user/new", {"user_id": user_id, "user_email": proxy.email("neg"), "auto_create_key": False})
    updated = raw.post(proxy, "/user/update", {"user_id": user_id, "rpm_limit": -1, "max_budget": -1})
    assert updated.status_code == (422 if refused else 200), updated.text
    row = _row(proxy, user_id) or {}
    assert (row["tpm_limit"], row["rpm_limit"]) == ((None, None) if refused else (-1, -1))


# -- /user/update -----------------------------------------------------------------------------


def test_user_update_semantics_by_release(proxy: Proxy) -> None:
    """What /user/update applies, step by step on one user: null, [] and {} leave a field alone
    (from 1.100 null clears the budget and limits); 1.65.8 also ignores 0; before 1.80 it cannot
    rename; metadata is replaced whole."""
    user_id = f"upd-{proxy.tag}"
    start = {
        "user_alias": "Old",
        "max_budget": 12.5,
        "budget_duration": "30d",
        "models": ["gpt-4o"],
        "tpm_limit": 1000,
        "rpm_limit": 10,
        "max_parallel_requests": 3,
        "metadata": {"cost_center": "cc1", "x": "y"},
    }
    answer = raw.post(
        proxy, "/user/new", {"user_id": user_id, "user_email": proxy.email("upd"), "auto_create_key": False, **start}
    )
    assert answer.status_code == 200, answer.text
    release = raw.release_of(proxy)
    nulls_clear = release.update_clears_with_null
    oldest = not release.at_least(1, 74)
    renames = release.at_least(1, 80)  # 1.74.15 leaves user_alias as it was
    cleared = dict.fromkeys(("max_budget", "budget_duration", "tpm_limit", "rpm_limit"))
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"user_alias": None, "max_parallel_requests": None, "models": None, "metadata": {}}, {}),
        ({"models": []}, {}),
        (dict(cleared), cleared if nulls_clear else {"max_budget": None} if release.at_least(1, 90) else {}),
        ({"max_budget": 5, "tpm_limit": 100}, {"max_budget": 5, "tpm_limit": 100}),
        ({"max_budget": 0, "tpm_limit": 0}, {} if oldest else {"max_budget": 0, "tpm_limit": 0}),
        ({"user_alias": "New Name"}, {"user_alias": "New Name"} if renames else {}),
        ({"user_alias": ""}, {"user_alias": ""} if renames else {}),
        ({"metadata": {"x": "z"}}, {"metadata": {"x": "z"}}),
        ({"metadata": {"cost_center": None}}, {"metadata": {"cost_center": None}}),
        ({"user_role": "internal_user_viewer"}, {"user_role": "internal_user_viewer"}),
    ]
    expected = {**start, "user_role": None}
    for sent, change in steps:
        answer = raw.post(proxy, "/user/update", {"user_id": user_id, **sent})
        assert answer.status_code == 200, (sent, answer.text)
        assert answer.json()["user_id"] == user_id
        expected.update(change)
        data = answer.json()["data"]
        assert {name: data[name] for name in expected} == expected, sent
    row = _row(proxy, user_id) or {}
    listed = {name: value for name, value in expected.items() if name in row}
    assert {name: row[name] for name in listed} == listed
    assert ("max_parallel_requests" in row) == release.at_least(1, 90)


def test_user_update_of_an_unknown_id_creates_a_ghost(proxy: Proxy, made: list[str]) -> None:
    """What the client's ghost check sees: a user with no email, created_at == updated_at."""
    ghost = f"ghost-{proxy.tag}"
    made.append(ghost)
    answer = raw.post(proxy, "/user/update", {"user_id": ghost, "user_alias": "ghost", "user_role": "internal_user"})
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert (answer.json()["user_id"], data["user_email"], data["user_role"]) == (ghost, None, "internal_user")
    assert data["created_at"] == data["updated_at"]
    assert data["user_alias"] == ("ghost" if raw.release_of(proxy).at_least(1, 80) else None)
    row = _row(proxy, ghost)
    assert row is not None
    assert (row["user_email"], row["key_count"]) == (None, 0)


def test_user_update_by_an_unknown_email_alone_creates_the_user(proxy: Proxy, made: list[str]) -> None:
    """Why the tools never update by email: the user is created, and after 1.65.8 the answer is a 400."""
    email = proxy.email("ghostmail")
    answer = raw.post(proxy, "/user/update", {"user_email": email, "user_alias": "ghostmail"})
    if raw.release_of(proxy).at_least(1, 74):
        assert answer.status_code == 400, answer.text
        assert "object has no attribute 'get'" in error_message(answer.json())
        with proxy.client() as client:
            (user,) = _by_email(client, email)
        made.append(user.user_id)
        assert user.user_alias == ("ghostmail" if raw.release_of(proxy).at_least(1, 80) else None)
    else:
        assert answer.status_code == 200, answer.text
        made.append(answer.json()["user_id"])
        assert (answer.json()["user_email"], "data" in answer.json()) == (email, False)  # the bare row


def test_role_update_never_creates_a_ghost(proxy: Proxy) -> None:
    user_id = proxy.create_user(proxy.email("eve"), with_key=False)
    with proxy.client() as client:
        client.update_user(user_id, {"user_role": "proxy_admin_viewer"})
        assert _mine(proxy)[proxy.email("eve")].role == "proxy_admin_viewer"
        with pytest.raises(ProxyError) as caught:
            client.update_user(f"ghost-{proxy.tag}", {"user_role": "internal_user"})
        assert caught.value.not_found
        assert _row(proxy, f"ghost-{proxy.tag}") is None


# -- listing users ----------------------------------------------------------------------------


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


def test_user_list_filters_by_release(proxy: Proxy) -> None:
    """/user/list's filters: 1.65.8 knows only role (a case-insensitive substring) and user_ids
    (one id exact); from 1.74 user_email and team filter, sort_by sorts, role is exact, and one
    user_ids value is a substring."""
    team = proxy.create_team(f"flt-{proxy.tag}")
    viewer = proxy.create_user(proxy.email("viewer"), role="internal_user_viewer", teams=(team,), with_key=False)
    admin = proxy.create_user(proxy.email("admin"), role="proxy_admin", with_key=False)
    ignored = not raw.release_of(proxy).at_least(1, 74)  # 1.65.8 ignores the filters

    def total(**params: str) -> int:
        answer = raw.get(proxy, "/user/list", page_size=1, **params)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["total"])

    assert total() >= 3  # and default_user_id, made by /team/new, with no email and no role
    assert total(user_email=proxy.tag) >= 2
    assert (total(user_email=proxy.tag) > 2) == ignored  # 2: viewer and admin
    assert (total(team=team) > 2) == ignored  # 2: viewer and default_user_id
    assert (total(role="internal_user_viewer", user_ids=f"{viewer},{admin}"), total(user_ids=viewer)) == (1, 1)
    assert total(role="INTERNAL_USER_VIEWER", user_ids=f"{viewer},{admin}") == (1 if ignored else 0)
    assert total(role="viewer", user_ids=f"{viewer},{admin}") == (1 if ignored else 0)
    assert total(user_ids=viewer[:-2]) == (1 if raw.release_of(proxy).at_least(1, 80) else 0)  # 1.74.15: exact

    def order(direction: str) -> list[str]:
        params = {"user_ids": f"{viewer},{admin}", "sort_by": "user_id", "sort_order": direction}
        return [row["user_id"] for row in raw.get(proxy, "/user/list", **params).json()["users"]]

    if ignored:
        assert order("asc") == order("desc")
    else:
        assert order("asc") == sorted([viewer, admin]) == order("desc")[::-1]


def test_filters_the_proxy_applies(proxy: Proxy) -> None:
    team = proxy.create_team(f"flt-{proxy.tag}")
    proxy.create_user(proxy.email("viewer"), role="internal_user_viewer", teams=(team,))
    proxy.create_user(proxy.email("admin"), role="proxy_admin")
    with proxy.client() as client:
        by_team = [u.email for u in client.users(team_id=team) if u.email]  # default_user_id is in every team
        by_role = [u.email for u in client.users(role="internal_user_viewer", email_contains=proxy.tag)]
    assert by_team == [proxy.email("viewer")]
    assert by_role == [proxy.email("viewer")]


def test_validation_errors_are_readable(proxy: Proxy) -> None:
    with proxy.client() as client, pytest.raises(ProxyError) as caught:
        client._call("GET", "/user/list", params={"page_size": 1000})
    assert caught.value.status == 422
    assert caught.value.message == "query.page_size: Input should be less than or equal to 100"


def test_a_user_id_with_a_comma_is_reached_through_user_info_only(proxy: Proxy) -> None:
    user_id = f"a,b-{proxy.tag}"
    answer = raw.post(
        proxy, "/user/new", {"user_id": user_id, "user_email": proxy.email("comma"), "auto_create_key": False}
    )
    assert answer.status_code == 200, answer.text
    listed = raw.get(proxy, "/user/list", user_ids=user_id).json()
    assert [row["user_id"] for row in listed["users"] if row["user_id"] == user_id] == []
    info = raw.get(proxy, "/user/info", user_id=user_id)
    assert (info.status_code, info.json()["user_info"]["user_email"]) == (200, proxy.email("comma"))
    with proxy.client() as client:
        assert list(client.existing([user_id])) == [user_id]
    deleted = raw.post(proxy, "/user/delete", {"user_ids": [user_id]})
    assert (deleted.status_code, deleted.json()) == (200, 1)
    gone = raw.get(proxy, "/user/info", user_id=user_id)
    old = not raw.release_of(proxy).at_least(1, 81)
    assert (gone.status_code, gone.json().get("user_info")) == ((200, {"spend": 0}) if old else (404, None))


def test_unknown_user_info_answers_by_release(proxy: Proxy) -> None:
    """Why the client never asks /user/info whether a user exists: 404 from 1.81, 200 before."""
    answer = raw.get(proxy, "/user/info", user_id=f"nobody-{proxy.tag}")
    old = not raw.release_of(proxy).at_least(1, 81)
    assert (answer.status_code, answer.json().get("user_info")) == ((200, {"spend": 0}) if old else (404, None))


# -- teams and membership ---------------------------------------------------------------------


def test_team_aliases_are_not_unique(proxy: Proxy) -> None:
    alias = f"twin-{proxy.tag}"
    first, second = proxy.create_team(alias), proxy.create_team(alias)
    assert first != second
    with proxy.client() as client:
        state = ProxyState(users=[], teams=client.teams())
    with pytest.raises(ValueError, match="ambiguous"):
        state.find_team(alias)


def test_teams_with_an_id_and_metadata_are_updated_and_deleted(proxy: Proxy) -> None:
    team_id, alias = f"team-{proxy.tag}", f"alias-{proxy.tag}"
    dated = raw.release_of(proxy).at_least(1, 74)  # 1.65.8's team rows have no updated_at
    with proxy.client() as client:
        team = client.create_team(alias, team_id=team_id, metadata={"owner": "a", "k": "v"})
        assert (team.team_id, team.metadata) == (team_id, {"owner": "a", "k": "v"})
        with pytest.raises(ProxyError) as caught:
            client.create_team(f"{alias}-again", team_id=team_id)
        assert caught.value.status == 400
        before = raw.get(proxy, "/team/info", team_id=team_id).json()["team_info"]
        time.sleep(0.05)
        client.update_team_metadata(team_id, {"owner": "b"})
        after = raw.get(proxy, "/team/info", team_id=team_id).json()["team_info"]
        listed = next(t for t in client.teams() if t.team_id == team_id)
    assert after["metadata"] == listed.metadata == {"owner": "b"}  # replaced, not merged
    assert ("updated_at" in before, "updated_at" in after, listed.updated_at is not None) == (dated, dated, dated)
    if dated:
        assert after["updated_at"] != before["updated_at"]
    answer = raw.post(proxy, "/team/update", {"team_id": team_id, "metadata": {"owner": "c"}})
    assert answer.json()["data"]["updated_at"]  # the answer has it on every release
    with proxy.client() as client:
        client.delete_team(team_id)
        client.delete_team(team_id)  # gone already: not an error
    assert raw.get(proxy, "/team/info", team_id=team_id).status_code == 404
    assert raw.post(proxy, "/team/delete", {"team_ids": [team_id]}).status_code == 404


def test_updating_an_unknown_team_is_404(proxy: Proxy) -> None:
    answer = raw.post(proxy, "/team/update", {"team_id": f"unknown-{proxy.tag}", "metadata": {"a": 1}})
    assert answer.status_code == 404
    assert _shape(answer.json()) == ("A" if raw.release_of(proxy).at_least(1, 90) else "B")
    assert f"Team not found, passed team_id=unknown-{proxy.tag}" in error_message(answer.json())
    with proxy.client() as client, pytest.raises(ProxyError) as caught:
        client.update_team_metadata(f"unknown-{proxy.tag}", {"a": 1})
    assert caught.value.not_found


def test_team_list_v2_finds_an_alias_substring_from_1_74(proxy: Proxy) -> None:
    team_id = proxy.create_team(f"v2alias-{proxy.tag}")
    answer = raw.get(proxy, "/v2/team/list", team_alias=f"v2alias-{proxy.tag}"[:-2])
    if not raw.release_of(proxy).at_least(1, 74):
        assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
        return
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert [t["team_id"] for t in page["teams"]] == [team_id]
    assert (page["total"], page["page"], page["page_size"], page["total_pages"]) == (1, 1, 10, 1)


def test_members_are_added_in_one_batch_and_again_without_error(proxy: Proxy) -> None:
    team = proxy.create_team(f"batch-{proxy.tag}")
    ids = [proxy.create_user(proxy.email(f"m{n}"), with_key=False) for n in range(5)]
    with proxy.client() as client:
        client.add_team_members(team, ids)
        client.add_team_members(team, ids)  # all present: the proxy says 400, which is done
        members = next(t.member_ids for t in client.teams() if t.team_id == team)
    assert set(ids) <= members
    mine = _mine(proxy)
    assert {mine[proxy.email(f"m{n}")].teams for n in range(5)} == {(team,)}


def test_membership_by_release(proxy: Proxy) -> None:
    """A user whom /user/new listed in a team: on 1.65.8 not on the roster, so member_add adds it
    (and lists the team twice in user.teams); an existing member is a 400 (shape B on 1.65.8);
    member_delete takes the team off user.teams, and the user's keys for that team from 1.74."""
    team = proxy.create_team(f"mem-{proxy.tag}")
    user_id = f"mem-{proxy.tag}"
    assert raw.post(proxy, "/user/new", {"user_id": user_id, "user_email": proxy.email("mem"), "teams": [team]}).ok
    oldest = not raw.release_of(proxy).at_least(1, 74)
    assert (user_id in _roster(proxy, team)) == (not oldest)
    first = raw.post(proxy, "/team/member_add", {"team_id": team, "member": {"user_id": user_id, "role": "user"}})
    assert first.status_code == (200 if oldest else 400), first.text
    assert user_id in _roster(proxy, team)
    assert (_row(proxy, user_id) or {})["teams"] == ([team, team] if oldest else [team])
    again = raw.post(proxy, "/team/member_add", {"team_id": team, "member": {"user_id": user_id, "role": "user"}})
    assert again.status_code == 400
    body = again.json()
    if oldest:
        assert body["detail"]["error"].startswith(f"User={user_id} already in team")
    else:
        assert body["error"]["type"] == "team_member_already_in_team"
    with proxy.client() as client:
        client.generate_key(user_id, team_id=team, alias=f"mem-team-{proxy.tag}")
    assert raw.post(proxy, "/team/member_delete", {"team_id": team, "user_id": user_id}).ok
    assert user_id not in _roster(proxy, team)
    assert (_row(proxy, user_id) or {})["teams"] == ([team] if oldest else [])  # one occurrence taken off
    team_keys = [k for k in _keys(proxy, user_id) if k["team_id"] == team]
    assert len(team_keys) == (0 if raw.release_of(proxy).member_delete_deletes_keys else 1)  # 1.74.15 keeps it


def test_member_add_creates_an_unknown_user_id(proxy: Proxy, made: list[str]) -> None:
    """member_add creates a user_id it does not know (no email): the client removes such ghosts.
    updated_users shows an existing user before the add from 1.100, after it before."""
    team = proxy.create_team(f"ghost-{proxy.tag}")
    known = proxy.create_user(proxy.email("known"), with_key=False)
    ghost = f"ghost-{proxy.tag}"
    made.append(ghost)
    members = [{"user_id": known, "role": "user"}, {"user_id": ghost, "role": "user"}]
    answer = raw.post(proxy, "/team/member_add", {"team_id": team, "member": members})
    assert answer.status_code == 200, answer.text
    updated = {row["user_id"]: row for row in answer.json()["updated_users"]}
    assert (updated[ghost]["user_email"], updated[ghost]["teams"]) == (None, [team])
    assert updated[known]["teams"] == ([] if raw.release_of(proxy).at_least(1, 100) else [team])
    assert {known, ghost} <= set(_roster(proxy, team))
    assert (_row(proxy, ghost) or {}).get("user_role") == "internal_user"
    with proxy.client() as client:
        gone = client.add_team_members(team, [f"ghost2-{proxy.tag}"])
    assert gone == {f"ghost2-{proxy.tag}"}
    assert _row(proxy, f"ghost2-{proxy.tag}") is None


def test_leaving_a_team_deletes_that_teams_keys_only(proxy: Proxy) -> None:
    team = proxy.create_team(f"leave-{proxy.tag}")
    with proxy.client() as client:
        new = new_user(
            client, proxy.email("carl"), role="internal_user", team_ids=[team], key_alias=f"carl-{proxy.tag}"
        )
        personal = client.generate_key(new.user_id, team_id=None, alias=f"carl-own-{proxy.tag}")
        client.remove_team_member(team, new.user_id)
        client.remove_team_member(team, new.user_id)  # not a member any more: nothing to do
    user = _mine(proxy)[proxy.email("carl")]
    assert (user.teams, user.key_count) == ((), 1)
    assert not proxy.key_works(new.key)
    assert proxy.key_works(personal)


def test_the_older_stand_in_loses_members_like_a_real_1_80(old_standin: Proxy) -> None:
    """Parallel /user/new into one team without the client's care: the roster loses members, as
    measured on a real 1.80.7. This is what the tools' tests would catch a regression with."""
    team = old_standin.create_team("race")

    def create(n: int) -> str:
        answer = raw.post(old_standin, "/user/new", {"user_email": f"r{n}@example.com", "team_id": team})
        return str(answer.json()["user_id"])

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(create, range(40)))
    assert old_standin.standin is not None
    kept = ids & set(old_standin.standin.roster(team))
    assert len(kept) < len(ids)
    assert all(u.teams == (team,) for u in old_standin.users().values() if u.email and u.email.startswith("r"))


# -- deleting ---------------------------------------------------------------------------------


def test_a_deleted_user_leaves_the_rosters_and_the_client_sees_to_it(proxy: Proxy) -> None:
    """/user/delete takes a user off its teams' rosters from 1.80; 1.65.8 leaves it there, and
    the client's delete then takes it off with member_delete."""
    team = proxy.create_team(f"gone-{proxy.tag}")
    first, second = (f"gone{n}-{proxy.tag}" for n in range(2))
    for user_id in (first, second):
        body = {"user_id": user_id, "user_email": proxy.email(user_id), "team_id": team, "auto_create_key": False}
        assert raw.post(proxy, "/user/new", body).ok
    assert raw.post(proxy, "/user/delete", {"user_ids": [first]}).ok
    assert (first in _roster(proxy, team)) == (not raw.release_of(proxy).at_least(1, 74))
    with proxy.client() as client:
        client.delete_many([client.existing([second])[second]])
    assert second not in _roster(proxy, team)


def test_delete_batch_survives_a_user_that_vanished(proxy: Proxy) -> None:
    for n in range(3):
        proxy.create_user(proxy.email(f"del{n}"))
    users = sorted(_mine(proxy).values(), key=lambda u: u.email or "")
    with proxy.client() as client:
        client.delete_many([users[1]])  # someone else deletes it first
        outcome = client.delete_many(users)
    assert sorted(u.email for u in outcome.deleted) == [proxy.email("del0"), proxy.email("del2")]
    assert [u.email for u in outcome.missing] == [proxy.email("del1")]
    assert _mine(proxy) == {}


# -- keys -------------------------------------------------------------------------------------


def test_a_blocked_key_is_refused_until_unblocked(proxy: Proxy) -> None:
    with proxy.client() as client:
        new = new_user(client, proxy.email("blk"), key_alias=f"blk-{proxy.tag}")
        (key,) = client.user_keys(new.user_id)
        client.block_key(key.token)
        assert client.user_keys(new.user_id)[0].blocked
    used = requests.get(f"{proxy.url}/v1/models", headers={"Authorization": f"Bearer {new.key}"}, timeout=30)
    assert used.status_code == 401
    assert error_message(used.json()).startswith("Authentication Error, Key is blocked.")
    unblocked = raw.post(proxy, "/key/unblock", {"key": new.key})  # the raw key works as well as the hash
    assert (unblocked.status_code, unblocked.json()["blocked"]) == (200, False)
    assert proxy.key_works(new.key)
    unknown = raw.post(proxy, "/key/block", {"key": "0" * 64})
    assert unknown.status_code == (404 if raw.release_of(proxy).at_least(1, 90) else 401)


# -- bulk endpoints ---------------------------------------------------------------------------


def _absent(answer: requests.Response) -> bool:
    return answer.status_code == 404 and answer.json() == {"detail": "Not Found"}


def test_bulk_create_answers_row_by_row(proxy: Proxy, made: list[str]) -> None:
    """/management/v1/users/bulk (from 1.100): rows as /user/new, each answered; teams=[...] puts
    the user on the rosters with a key of no team, team_id gives the key to the team."""
    tag = proxy.tag
    team = proxy.create_team(f"bulk-{tag}")
    existing = proxy.create_user(proxy.email("ex"), with_key=False)
    rows = [
        {
            "user_id": f"r0-{tag}",
            "user_email": proxy.email("r0"),
            "user_role": "internal_user",
            "user_alias": f"R0 {tag}",
            "teams": [team],
            "auto_create_key": True,
            "key_alias": f"ka0-{tag}",
            "max_budget": 7.5,
            "budget_duration": "30d",
            "models": ["gpt-4o"],
            "metadata": {"cost_center": "cc1", "x": "y"},
            "tpm_limit": 100,
            "rpm_limit": 5,
            "max_parallel_requests": 2,
            "duration": "30d",
        },
        {"user_email": proxy.email("ex").upper()},
        {"user_id": existing, "user_email": proxy.email("r2")},
        {"user_email": proxy.email("r3")},
        {
            "user_id": f"r4-{tag}",
            "user_email": proxy.email("r4"),
            "team_id": team,
            "auto_create_key": True,
            "key_alias": f"ka4-{tag}",
        },
        {"user_id": f"r5-{tag}", "user_email": proxy.email("r5"), "teams": [f"nosuchteam-{tag}"]},
        {"user_id": f"r6-{tag}", "user_email": proxy.email("r3")},
        {"user_id": f"r7-{tag}", "user_email": proxy.email("r7"), "budget_duration": "10x"},
    ]
    answer = raw.post(proxy, "/management/v1/users/bulk", {"users": rows})
    if not raw.release_of(proxy).bulk_users:  # 404 on 1.100.5
        assert _absent(answer)
        return
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    made.extend(row["user_id"] for row in data if row["success"])
    assert answer.json()["meta"] == {"total_requested": 8, "created": 3, "failed": 5}
    assert [row["success"] for row in data] == [True, False, False, True, True, False, False, False]
    assert [row["error"] for row in data] == [
        None,
        f"User email={proxy.email('ex').upper()} already exists",
        f"User id={existing} already exists",
        None,
        None,
        f"Team id=nosuchteam-{tag} does not exist",
        f"Duplicate user_email in request: {proxy.email('r3')}",
        "Invalid budget_duration '10x'. Use a format like '1h', '24h', '7d', or '30d'.",
    ]
    assert [row["teams"] for row in data[:5]] == [[team], None, None, [], [team]]
    assert (data[0]["key"][:3], data[3]["key"], data[4]["key"][:3]) == ("sk-", None, "sk-")
    assert data[1]["user_id"]  # an id was picked for it even so

    r0 = _row(proxy, f"r0-{tag}") or {}
    sent = {k: v for k, v in rows[0].items() if k in ("user_alias", "max_budget", "budget_duration", "models")}
    assert {k: r0[k] for k in sent} == sent
    assert (r0["user_role"], r0["tpm_limit"], r0["rpm_limit"], r0["metadata"], r0["teams"], r0["key_count"]) == (
        "internal_user",
        100,
        5,
        {"cost_center": "cc1", "x": "y"},
        [team],
        1,
    )
    assert r0["max_parallel_requests"] == 2
    (key0,) = _keys(proxy, f"r0-{tag}")
    assert (key0["key_alias"], key0["team_id"], key0["models"], key0["tpm_limit"], key0["metadata"]) == (
        f"ka0-{tag}",
        None,
        ["gpt-4o"],
        100,
        {"cost_center": "cc1", "x": "y"},
    )
    assert _expires_within(key0["expires"], 30 * 86400)
    (key4,) = _keys(proxy, f"r4-{tag}")
    assert (key4["key_alias"], key4["team_id"]) == (f"ka4-{tag}", team)
    assert {f"r0-{tag}", f"r4-{tag}"} <= set(_roster(proxy, team))
    stamps = {(_row(proxy, data[n]["user_id"]) or {}).get("created_at") for n in (0, 3, 4)}
    assert len(stamps) == 1  # one insert for the whole request
    assert _row(proxy, f"r5-{tag}") is None
    assert _row(proxy, f"r6-{tag}") is None
    assert len([u for u in _mine(proxy).values() if u.email == proxy.email("r3")]) == 1


def test_bulk_create_refuses_unknown_fields_and_more_than_500_rows(proxy: Proxy) -> None:
    def refused(body: Any) -> str:
        answer = raw.post(proxy, "/management/v1/users/bulk", body)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert (problem["type"], problem["title"], problem["status"]) == (
            "urn:litellm:error:invalid-request-body",
            "Invalid request body",
            422,
        )
        return str(problem["detail"])

    if not raw.release_of(proxy).bulk_users:  # 404 on 1.100.5
        assert _absent(raw.post(proxy, "/management/v1/users/bulk", {"users": [{"user_email": proxy.email("x")}]}))
        return
    assert (
        refused({"users": [{"user_email": proxy.email("uf"), "foo": 1}]})
        == "users.0.foo: Extra inputs are not permitted"
    )
    assert "send_invite_email is not supported" in refused(
        {"users": [{"user_email": proxy.email("inv"), "send_invite_email": True}]}
    )
    assert refused({"users": []}) == "users: Value should have at least 1 item after validation, not 0"
    many = [{"user_email": proxy.email(f"big{n}")} for n in range(501)]
    assert refused({"users": many}) == "users: Value should have at most 500 items after validation, not 501"
    assert _mine(proxy) == {}


def test_bulk_update_users_creates_unknown_ids(proxy: Proxy, made: list[str]) -> None:
    """/user/bulk_update (from 1.80): each user as /user/update, answered one by one; an unknown
    id is created (a ghost), an unknown email is created and reported as failed."""
    user_id = proxy.create_user(proxy.email("bu"), with_key=False)
    ghost, ghostmail = f"bu-ghost-{proxy.tag}", proxy.email("bu-ghostmail")
    users = [
        {"user_id": user_id, "user_role": "internal_user_viewer", "max_budget": 5, "metadata": {"a": "b"}},
        {"user_id": ghost, "max_budget": 1},
        {"user_email": ghostmail, "max_budget": 2},
    ]
    answer = raw.post(proxy, "/user/bulk_update", {"users": users})
    if not raw.release_of(proxy).at_least(1, 74):
        assert _absent(answer)
        return
    if not raw.release_of(proxy).bulk_user_update:  # 1.74.15 has it; the tools use it from 1.80, as seen here
        assert answer.status_code == 200, answer.text
        return
    made.append(ghost)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    with proxy.client() as client:
        created = _by_email(client, ghostmail)
    made.extend(u.user_id for u in created)
    assert (body["total_requested"], body["successful_updates"], body["failed_updates"]) == (3, 2, 1)
    results = body["results"]
    assert [r["success"] for r in results] == [True, True, False]
    assert results[0]["updated_user"]["user_id"] == user_id
    assert results[0]["updated_user"]["data"]["user_role"] == "internal_user_viewer"
    assert "object has no attribute 'get'" in results[2]["error"]
    assert results[2]["updated_user"] is None
    row = _row(proxy, user_id) or {}
    assert (row["user_role"], row["max_budget"], row["metadata"]) == ("internal_user_viewer", 5, {"a": "b"})
    assert ((_row(proxy, ghost) or {}).get("user_email"), (_row(proxy, ghost) or {}).get("max_budget")) == (None, 1)
    assert [u.max_budget for u in created] == [2]
    too_many = raw.post(proxy, "/user/bulk_update", {"users": [{"user_id": f"x{n}-{proxy.tag}"} for n in range(501)]})
    assert too_many.status_code == 400
    assert too_many.json() == {"detail": {"error": "Maximum 500 users can be updated at once. Found 501 users."}}


def test_bulk_update_keys(proxy: Proxy) -> None:
    """/key/bulk_update (seen from 1.90.7; the tools use it with the bulk user endpoints, from
    1.108): per key; a team_id needs the owner on that team's roster; blocked is silently ignored
    (block with /key/block)."""
    team = proxy.create_team(f"kbu-{proxy.tag}")
    with proxy.client() as client:
        outsider = new_user(client, proxy.email("kout"), key_alias=f"kout-{proxy.tag}")
        member = new_user(client, proxy.email("kin"))
        client.add_team_members(team, [member.user_id])
        (out_key,) = client.user_keys(outsider.user_id)
        (in_key,) = client.user_keys(member.user_id)
    answer = raw.post(proxy, "/key/bulk_update", {"keys": [{"key": out_key.token, "team_id": team}]})
    if not raw.release_of(proxy).at_least(1, 90):
        assert _absent(answer)
        return
    if not raw.release_of(proxy).bulk_users:
        assert answer.status_code == 200, answer.text
        return
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["total_requested"], body["successful_updates"]) == (1, [])
    (failed,) = body["failed_updates"]
    assert failed["failed_reason"].startswith(f"User={outsider.user_id} is not a member of the team={team}")
    assert _keys(proxy, outsider.user_id)[0]["team_id"] is None
    items = [
        {"key": in_key.token, "team_id": team, "max_budget": 4},
        {"key": "0" * 64, "max_budget": 1},
        {"key": outsider.key, "max_budget": 3, "blocked": True},
    ]
    body = raw.post(proxy, "/key/bulk_update", {"keys": items}).json()
    assert [u["key"] for u in body["successful_updates"]] == [in_key.token, outsider.key]
    assert [(f["key"], f["failed_reason"]) for f in body["failed_updates"]] == [("0" * 64, "Key not found.")]
    (moved,) = _keys(proxy, member.user_id)
    assert (moved["team_id"], moved["max_budget"]) == (team, 4)
    (budgeted,) = _keys(proxy, outsider.user_id)
    assert (budgeted["max_budget"], bool(budgeted["blocked"])) == (3, False)
    empty = raw.post(proxy, "/key/bulk_update", {"keys": []})
    assert (empty.status_code, empty.json()) == (400, {"detail": {"error": "No keys provided for update"}})
    keyless = raw.post(proxy, "/key/bulk_update", {"keys": [{"team_id": team}]})
    assert (keyless.status_code, keyless.json()["detail"][0]["loc"]) == (422, ["body", "keys", 0, "key"])


def test_bulk_delete_answers_per_id_and_deletes_keys(proxy: Proxy) -> None:
    """/management/v1/users/bulk_delete (from 1.100): per-id results; the user goes with its keys
    and memberships; unknown or repeated ids fail alone (not a 404 for the lot, as /user/delete)."""
    team = proxy.create_team(f"bdel-{proxy.tag}")
    with proxy.client() as client:
        gone = new_user(client, proxy.email("bdel"), team_ids=[team])
    stays = proxy.create_user(proxy.email("stays"), with_key=False)
    ids = [gone.user_id, f"nouser-{proxy.tag}", gone.user_id]
    answer = raw.post(proxy, "/management/v1/users/bulk_delete", {"user_ids": ids})
    if not raw.release_of(proxy).bulk_users:  # 404 on 1.100.5
        assert _absent(answer)
        return
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "data": [
            {
                "user_id": gone.user_id,
                "user_email": proxy.email("bdel"),
                "success": True,
                "teams_removed": [team],
                "error": None,
            },
            {
                "user_id": f"nouser-{proxy.tag}",
                "user_email": None,
                "success": False,
                "teams_removed": [],
                "error": f"User id=nouser-{proxy.tag} not found",
            },
            {
                "user_id": gone.user_id,
                "user_email": None,
                "success": False,
                "teams_removed": [],
                "error": f"Duplicate user_id in request: {gone.user_id}",
            },
        ]
    }
    assert (_row(proxy, gone.user_id), _keys(proxy, gone.user_id)) == (None, [])
    assert not proxy.key_works(gone.key)
    assert gone.user_id not in _roster(proxy, team)
    assert _row(proxy, stays) is not None
    wrong = raw.post(proxy, "/management/v1/users/bulk_delete", {"users": [stays]})
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == "user_ids: Field required; users: Extra inputs are not permitted"
    assert _row(proxy, stays) is not None


# -- discovery --------------------------------------------------------------------------------


def test_release_is_detected(proxy: Proxy) -> None:
    with proxy.client() as client:
        release = client.release
    assert release.version is not None
    if proxy.standin:
        assert release.label == proxy.standin.release


def test_version_discovery_and_the_date_header(proxy: Proxy) -> None:
    """The public readiness probe tells the version before 1.100; after, only its master-key
    details do (404 before). Every answer has a Date header (the client's clock for leases)."""
    public = requests.get(f"{proxy.url}/health/readiness", timeout=30)
    details = raw.get(proxy, "/health/readiness/details")
    anonymous = requests.get(f"{proxy.url}/health/readiness/details", timeout=30)
    unknown = raw.get(proxy, f"/no-such-route-{proxy.tag}")
    assert public.status_code == 200
    version = public.json().get("litellm_version")
    if version:
        assert (details.status_code, anonymous.status_code) == (404, 404)
    else:
        assert (details.status_code, anonymous.status_code) == (200, 401)
        version = details.json()["litellm_version"]
    assert raw.release_of(proxy).label == version
    assert unknown.status_code == 404
    for answer in (public, details, anonymous, unknown):
        assert datetime.now(timezone.utc) - _date(answer.headers["Date"]) < timedelta(minutes=5)


def _date(header: str) -> datetime:
    return datetime.strptime(header, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)


def test_ui_config_from_1_74(proxy: Proxy) -> None:
    if proxy.standin:
        proxy.standin.proxy_base_url = STANDIN_BASE_URL
    answer = requests.get(f"{proxy.url}/.well-known/litellm-ui-config", timeout=30)  # no key needed
    if not raw.release_of(proxy).at_least(1, 74):
        assert _absent(answer)
        return
    assert answer.status_code == 200
    assert answer.json()["proxy_base_url"] == (STANDIN_BASE_URL if proxy.standin else None)


def test_model_listing_with_groups_and_wildcard_routes(proxy: Proxy) -> None:
    """/v1/models lists the model names; include_model_access_groups=true adds the access groups
    (from 1.80), return_wildcard_routes=true the wildcard routes such as "openai/*"."""
    groups, routes = set(), set()
    if proxy.standin:
        proxy.standin.access_groups = {name: list(g) for name, g in STANDIN_GROUPS.items()}
        proxy.standin.wildcard_routes = list(STANDIN_WILDCARDS)
        groups = {group for names in STANDIN_GROUPS.values() for group in names}
        routes = set(STANDIN_WILDCARDS)

    def ids(**flags: str) -> list[str]:
        answer = raw.get(proxy, "/v1/models", **flags)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["data"]]

    plain = ids()
    assert {"gpt-4o", "claude-3-5-sonnet", "llama-3-8b"} <= set(plain)
    assert not groups & set(plain)
    with_groups = ids(include_model_access_groups="true")
    assert set(with_groups) - set(plain) == (groups if raw.release_of(proxy).at_least(1, 80) else set())
    with_routes = ids(return_wildcard_routes="true")
    assert {name for name in with_routes if name.endswith("/*")} == routes
    assert set(plain) <= set(with_routes)
    with proxy.client() as client:
        assert set(plain) <= client.models()


# -- transport --------------------------------------------------------------------------------


def test_wrong_master_key_is_auth_refused(proxy: Proxy) -> None:
    with LiteLLMClient(proxy.url, "sk-not-the-master-key") as client, pytest.raises(ProxyError) as caught:
        client.users()
    assert caught.value.status == 401
    assert caught.value.auth_refused
    assert "Authentication Error" in caught.value.message


def test_an_empty_body_is_422_and_a_body_cut_short_is_never_handled(proxy: Proxy) -> None:
    empty = requests.post(f"{proxy.url}/user/new", headers=raw.headers(proxy), timeout=30)
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body"]
    user_id = f"cut-{proxy.tag}"
    body = json.dumps({"user_id": user_id, "user_email": proxy.email("cut"), "auto_create_key": False}).encode()
    where = urlsplit(proxy.url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as connection:
        connection.sendall(
            b"POST /user/new HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {proxy.master_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
    time.sleep(1)  # the client died mid-request; give the proxy time to notice
    assert _row(proxy, user_id) is None


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
