"""Addresses: every text the proxy holds names its user in a file; a new user needs an address a
mail system accepts; a row the tools refuse never costs any user its place (issue 22, item 1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import addresses
from common.actions import Action
from common.additions import plan_additions
from common.csv_input import Row
from common.deletions import plan_deletions
from common.snapshot import Snapshot
from common.sync_plan import SyncOptions, plan_sync
from litellm_client import User

ODD = ("o'brien@example.com", "jdoe", "first:last@example.com", '"john doe"@example.com', "a+b@example.com")
MAILBOXES = ("o'brien@example.com", '"john doe"@example.com', "a+b@example.com", "zoé@exämple.com", "root@localhost")
NOT_MAILBOXES = ("jdoe", "first:last@example.com", "a..b@example.com", "kn@example.com'", "a@-x.com")


def _users(emails: tuple[str, ...]) -> list[User]:
    return [User(f"u-{n}", email, "internal_user", (), 1) for n, email in enumerate(emails)]


def test_an_export_of_users_with_odd_addresses_syncs_back_as_no_change_in_every_mode() -> None:
    snapshot = Snapshot(_users(ODD), [])
    rows = [Row(n + 2, {"email": email, "role": "internal_user"}) for n, email in enumerate(ODD)]
    for remove in (Action.DELETE, Action.BLOCK):
        plan = plan_sync(rows, snapshot, SyncOptions(remove=remove))
        assert plan.failures == []
        assert not plan.changes_anything(), plan.describe(snapshot, {})
        assert len(plan[Action.KEEP]) == len(ODD)


def test_a_user_the_proxy_holds_under_any_text_is_named_by_it_in_any_case() -> None:
    snapshot = Snapshot(_users(ODD), [])
    rows = [Row(2, {"email": "JDOE"}), Row(3, {"email": "O'Brien@Example.com"})]
    removed = plan_deletions(rows, snapshot).removals
    assert [r.user.email for r in removed] == ["jdoe", "o'brien@example.com"]


@pytest.mark.parametrize("email", MAILBOXES)
def test_add_creates_every_address_a_mail_system_accepts(email: str) -> None:
    plan = plan_additions([Row(2, {"email": email})], Snapshot([], []), default_role="internal_user")
    assert (plan.failures, [add.spec.email for add in plan.additions]) == ([], [email])


@pytest.mark.parametrize("email", NOT_MAILBOXES)
def test_a_text_that_is_no_address_is_not_created_unless_a_row_restores_it(email: str) -> None:
    new = plan_additions([Row(2, {"email": email})], Snapshot([], []), default_role="internal_user")
    assert [reason.startswith(f"invalid email '{email}': not an address") for _, reason in new.failures] == [True]
    sync = plan_sync([Row(2, {"email": email})], Snapshot([], []), SyncOptions())
    assert [reason.startswith(f"invalid email '{email}'") for _, reason, _ in sync.failures] == [True]
    restored = plan_sync([Row(2, {"email": email, "user_id": "u-old"})], Snapshot([], []), SyncOptions())
    assert [(c.email, c.user_id) for c in restored[Action.ADD]] == [(email, "u-old")]


@pytest.mark.parametrize(
    ("cell", "protected"),
    [
        ("Ann Lee <ann@example.com>", "ann@example.com"),
        ("ann\u200b@example.com", "ann@example.com"),
        ("'ann@example.com'", "ann@example.com"),
        ("ann@example.com; bob@example.com", "bob@example.com"),
        ("Doe, J <jdoe>", "jdoe"),
    ],
)
def test_a_refused_row_protects_every_user_it_plausibly_names(cell: str, protected: str) -> None:
    held = User("u-held", protected, "internal_user", (), 1)
    other = User("u-other", "other@example.com", "internal_user", (), 1)
    plan = plan_sync([Row(2, {"email": cell})], Snapshot([held, other], []), SyncOptions(remove=Action.BLOCK))
    assert [row.line for row, _, _ in plan.failures] == [2]
    assert [c.user_id for c in plan.removals] == ["u-other"]


@given(text=st.text(min_size=1, max_size=30))
def test_any_text_the_proxy_holds_names_its_user_and_never_removes_it(text: str) -> None:
    """The export writes the text as it is; the reader trims the cell."""
    held = User("u-held", text, "internal_user", (), 1)
    other = User("u-other", "other@example.com", "internal_user", (), 1)
    snapshot = Snapshot([held, other], [])
    row = Row(2, {"email": text.strip(), "role": "internal_user"})
    plan = plan_sync([row], snapshot, SyncOptions(remove=Action.BLOCK))
    assert "u-held" not in [c.user_id for c in plan.removals]
    if addresses.key(text) not in ("", "other@example.com"):
        assert plan.failures == []
        assert [c.user_id for c in plan[Action.KEEP]] == ["u-held"]
