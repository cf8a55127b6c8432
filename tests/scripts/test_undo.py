"""Undo files put things back as they were (issue 22, items 5-7): teams by id whatever alias they
have now, metadata with its JSON types and exact text, an offboarded user back offboarded. On the
stand-in (as three releases) and, with the `proxy` fixture, end to end on the real proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Proxy, new_user, run_script, write_csv

METADATA: dict[str, Any] = {
    "cc": 5,
    "flag": True,
    "tags": ["a", "b"],
    "limits": {"gpt-4o": 10},
    "note": "none",
    "pad": " x ",
    "quote": "'-y",
}
LONG_AGO = "2020-01-01T00:00:00Z"


@pytest.fixture
def clean(proxy: Proxy) -> Proxy:
    if proxy.real:
        proxy.clear_managed_users()
    return proxy


def _rename_team(proxy: Proxy, team_id: str, alias: str) -> None:
    answer = requests.post(
        f"{proxy.url}/team/update",
        json={"team_id": team_id, "team_alias": alias},
        headers={"Authorization": f"Bearer {proxy.master_key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_an_undo_file_puts_a_user_back_in_its_team_whatever_alias_the_team_has_now(
    clean: Proxy, tmp_path: Path
) -> None:
    proxy = clean
    eng = f"eng-{proxy.tag}"
    eng_id = proxy.create_team(eng)
    proxy.create_user(proxy.email("dev"), teams=(eng_id,))
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('dev')}\n")
    deleted = run_script("del_user.py", proxy=proxy, cwd=tmp_path)
    assert deleted.code == 0, deleted.output
    _rename_team(proxy, eng_id, f"eng-old-{proxy.tag}")  # the team was renamed...
    impostor = proxy.create_team(eng)  # ...and another team took its alias

    restored = run_script("sync_user.py", "--csv-file", "user_del_undo.csv", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert restored.code == 0, restored.output
    user = proxy.users()[proxy.email("dev")]
    teams = {team_id: members for team_id, members in _rosters(proxy).items() if team_id in (eng_id, impostor)}
    assert teams == {eng_id: [user.user_id], impostor: []}


def _rosters(proxy: Proxy) -> dict[str, list[str]]:
    with proxy.client() as client:
        return {team.team_id: sorted(m for m in team.member_ids if m != "default_user_id") for team in client.teams()}


def test_an_undo_file_restores_metadata_with_its_types_and_exact_text(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    with proxy.client() as client:
        new_user(client, proxy.email("meta"), metadata=METADATA)
    assert dict(proxy.users()[proxy.email("meta")].metadata) == METADATA
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('meta')}\n")
    assert run_script("del_user.py", proxy=proxy, cwd=tmp_path).code == 0

    restored = run_script("sync_user.py", "--csv-file", "user_del_undo.csv", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert restored.code == 0, restored.output
    assert dict(proxy.users()[proxy.email("meta")].metadata) == METADATA


def test_the_undo_file_of_a_metadata_change_puts_back_the_value_with_its_type(clean: Proxy, tmp_path: Path) -> None:
    proxy = clean
    with proxy.client() as client:
        new_user(client, proxy.email("meta"), metadata=METADATA)
    write_csv(tmp_path / "user_list.csv", f"email,metadata.cc,metadata.note\n{proxy.email('meta')},7,changed\n")
    changed = run_script("sync_user.py", "--no-delete", proxy=proxy, cwd=tmp_path)
    assert changed.code == 0, changed.output
    assert proxy.users()[proxy.email("meta")].metadata["cc"] == "7"

    (tmp_path / "first_undo.csv").write_bytes((tmp_path / "user_sync_undo.csv").read_bytes())

    restored = run_script("sync_user.py", "--csv-file", "first_undo.csv", "--no-delete", proxy=proxy, cwd=tmp_path)

    assert restored.code == 0, restored.output
    assert dict(proxy.users()[proxy.email("meta")].metadata) == METADATA
    again = run_script(
        "sync_user.py", "--csv-file", "first_undo.csv", "--no-delete", "--check", proxy=proxy, cwd=tmp_path
    )
    assert again.code == 0, again.output  # restored exactly: nothing left to change


@pytest.mark.parametrize("script", ["del_user.py", "sync_user.py"])
def test_undoing_a_purge_brings_the_user_back_offboarded_without_a_working_key(
    clean: Proxy, tmp_path: Path, script: str
) -> None:
    proxy = clean
    with proxy.client() as client:
        gone = new_user(client, proxy.email("gone"), metadata={"cost_center": "cc-g"})
        for key in client.user_keys(gone.user_id):
            client.block_key(key.token)
        client.update_user(gone.user_id, {"metadata": {"cost_center": "cc-g", "offboarded_at": LONG_AGO}})
        new_user(client, proxy.email("stays"))
    write_csv(tmp_path / "user_dellist.csv", f"email\n{proxy.email('gone')}\n")
    write_csv(tmp_path / "user_list.csv", f"email\n{proxy.email('stays')}\n")
    purge = ("--purge-after", "30d") if script == "del_user.py" else ("--remove", "block", "--purge-after", "30d")
    purged = run_script(script, *purge, proxy=proxy, cwd=tmp_path)
    assert purged.code == 0, purged.output
    assert proxy.email("gone") not in proxy.users()
    undo = "user_del_undo.csv" if script == "del_user.py" else "user_sync_undo.csv"

    restored = run_script("sync_user.py", "--csv-file", undo, "--no-delete", proxy=proxy, cwd=tmp_path)

    assert restored.code == 0, restored.output
    user = proxy.users()[proxy.email("gone")]
    assert (user.user_id, user.key_count) == (gone.user_id, 0)  # under its id, with no key that could work
    assert dict(user.metadata) == {"cost_center": "cc-g", "offboarded_at": LONG_AGO, "offboarded_keys": []}
    assert not proxy.key_works(gone.key)
    rows = {row["email"]: row for row in restored.rows("user_sync_result.csv")}
    assert (rows[proxy.email("gone")]["action"], rows[proxy.email("gone")]["api_keys"]) == ("ADDED", "")
    assert f"offboarded since {LONG_AGO}, without a key" in rows[proxy.email("gone")]["detail"]
