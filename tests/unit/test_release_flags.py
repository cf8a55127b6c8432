"""The stand-in answers as each release by properties named and cut as the client's Release: a
difference the client decides at one release and the stand-in at another would let a test pass on
a behaviour no real release has."""

from __future__ import annotations

import pytest

from litellm_client import Release
from tests.support.standin import RELEASES, StandIn

SHARED = sorted(
    name
    for name, member in vars(Release).items()
    if isinstance(member, property) and isinstance(getattr(StandIn, name, None), property)
)


def test_the_stand_in_names_the_release_differences_it_emulates_as_the_client_does() -> None:
    assert {"rosters_locked", "user_delete_cleans_rosters", "member_delete_deletes_keys", "bulk_users"} <= set(SHARED)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", SHARED)
def test_each_shared_difference_switches_at_the_same_release(release: str, name: str) -> None:
    client = Release(tuple(int(part) for part in release.split(".")))
    assert getattr(StandIn(release=release), name) == getattr(client, name)
