"""list_user.py, run as a user runs it, against the stand-in (both releases) and the real proxy."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from tests.conftest import Proxy, new_user, run_script


@pytest.fixture
def people(proxy: Proxy) -> dict[str, str]:
    """Four users in two teams, one without a role; returns team alias -> id."""
    eng, ops = f"eng-{proxy.tag}", f"ops-{proxy.tag}"
    teams = {eng: proxy.create_team(eng), ops: proxy.create_team(ops)}
    proxy.create_user(proxy.email("ann"), "internal_user", (teams[eng],))
    proxy.create_user(proxy.email("ben"), "proxy_admin", (teams[eng], teams[ops]))
    proxy.create_user(proxy.email("cid"), "internal_user_viewer")
    proxy.create_user(proxy.email("norole"), None)
    return teams


def _tsv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def test_every_page_is_listed_and_the_count_matches_the_proxy(proxy: Proxy, tmp_path: Path) -> None:
    with proxy.client(workers=8) as client:
        for n in range(260):
            new_user(client, proxy.email(f"u{n:03d}"), role="internal_user", with_key=False)
    run = run_script("list_user.py", "--email-like", proxy.tag, proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    rows = _tsv(run.stdout)
    assert sorted(r["user_email"] for r in rows) == sorted(proxy.email(f"u{n:03d}") for n in range(260))
    assert "260 users listed; " in run.stderr
    assert (
        "the proxy counts 260 for this filter." in run.stderr
        or "(it does not apply this filter itself: it was applied here)" in run.stderr  # 1.65
    )
    assert list(rows[0]) == ["user_id", "user_email", "user_role", "teams", "created_at", "updated_at"]


@pytest.mark.usefixtures("people")
def test_default_view_hides_users_without_email_or_role(proxy: Proxy, tmp_path: Path) -> None:
    shown = run_script("list_user.py", "--email-like", proxy.tag, proxy=proxy, cwd=tmp_path)
    everyone = run_script("list_user.py", "--email-like", proxy.tag, "--show-all", proxy=proxy, cwd=tmp_path)

    assert sorted(r["user_email"] for r in _tsv(shown.stdout)) == [proxy.email(n) for n in ("ann", "ben", "cid")]
    assert "1 more without an email or one of the four roles (--show-all shows them)" in shown.stderr
    assert len(_tsv(everyone.stdout)) == 4


def test_filters(proxy: Proxy, tmp_path: Path, people: dict[str, str]) -> None:
    def emails(*args: str) -> list[str]:
        run = run_script("list_user.py", "--columns", "email", *args, proxy=proxy, cwd=tmp_path)
        assert run.code == 0, run.output
        return sorted(r["email"] for r in _tsv(run.stdout) if proxy.tag in r["email"])

    eng, ops = people
    assert emails("--role", "internal_user_viewer") == [proxy.email("cid")]
    assert emails("--email-like", proxy.email("BEN")) == [proxy.email("ben")]
    assert emails("--team", eng) == [proxy.email("ann"), proxy.email("ben")]
    assert emails("--team", people[ops]) == [proxy.email("ben")]
    assert emails("--team", eng, "--role", "proxy_admin") == [proxy.email("ben")]


def test_an_unknown_or_ambiguous_team_is_a_usage_error(proxy: Proxy, tmp_path: Path) -> None:
    proxy.create_team(f"twin-{proxy.tag}")
    proxy.create_team(f"twin-{proxy.tag}")
    missing = run_script("list_user.py", "--team", f"nope-{proxy.tag}", proxy=proxy, cwd=tmp_path)
    twins = run_script("list_user.py", "--team", f"twin-{proxy.tag}", proxy=proxy, cwd=tmp_path)

    assert (missing.code, missing.stdout) == (2, "")
    assert f"team 'nope-{proxy.tag}' does not exist" in missing.stderr
    assert twins.code == 2
    assert "is ambiguous: 2 teams have it" in twins.stderr


def test_formats(proxy: Proxy, tmp_path: Path, people: dict[str, str]) -> None:
    eng, ops = people
    args = (
        "--email-like",
        proxy.tag,
        "--columns",
        "email,role,team_name,teams,key_count,max_budget,spend,models,user_alias",
    )
    as_json = json.loads(run_script("list_user.py", *args, "--format", "json", proxy=proxy, cwd=tmp_path).stdout)
    as_csv = list(
        csv.DictReader(
            io.StringIO(run_script("list_user.py", *args, "--format", "csv", proxy=proxy, cwd=tmp_path).stdout)
        )
    )
    table = run_script("list_user.py", *args, "--format", "table", proxy=proxy, cwd=tmp_path).stdout.splitlines()

    ben = next(u for u in as_json if u["email"] == proxy.email("ben"))
    assert ben == {
        "email": proxy.email("ben"),
        "role": "proxy_admin",
        "team_name": [eng, ops],
        "teams": sorted([people[eng], people[ops]]),
        "key_count": 1,
        "max_budget": None,
        "spend": 0.0,
        "models": [],
        "user_alias": None,
    }
    assert len(as_json) == len(as_csv) == len(table) - 1 == 3
    ben_csv = next(r for r in as_csv if r["email"] == proxy.email("ben"))
    assert (ben_csv["team_name"], ben_csv["key_count"], ben_csv["max_budget"]) == (f"{eng};{ops}", "1", "")
    assert table[0].split() == [
        "email",
        "role",
        "team_name",
        "teams",
        "key_count",
        "max_budget",
        "spend",
        "models",
        "user_alias",
    ]


def test_unknown_column_names_the_valid_ones(proxy: Proxy, tmp_path: Path) -> None:
    run = run_script("list_user.py", "--columns", "email,password", proxy=proxy, cwd=tmp_path)

    assert run.code == 2
    assert "unknown column(s) password; valid: user_id, user_email, user_role, teams, team_name" in run.stderr
    assert run.stdout == ""


def test_an_empty_result_is_the_header_only(proxy: Proxy, tmp_path: Path) -> None:
    run = run_script(
        "list_user.py", "--email-like", f"nobody-{proxy.tag}", "--format", "csv", proxy=proxy, cwd=tmp_path
    )

    assert run.code == 0
    assert run.stdout == "user_id,user_email,user_role,teams,created_at,updated_at\n"


@pytest.mark.usefixtures("people")
def test_output_file_and_a_clean_stdout(proxy: Proxy, tmp_path: Path) -> None:
    run = run_script(
        "list_user.py", "--email-like", proxy.tag, "--format", "csv", "--columns", "email,role,team_name",
        "--output", "user_list.csv", proxy=proxy, cwd=tmp_path,
    )  # fmt: skip

    assert (run.code, run.stdout) == (0, "")
    rows = list(csv.DictReader((tmp_path / "user_list.csv").open()))
    assert sorted(r["email"] for r in rows) == [proxy.email(n) for n in ("ann", "ben", "cid")]
    assert "3 users listed" in run.stderr


def test_cells_a_spreadsheet_would_run_are_quoted(standin: Proxy, tmp_path: Path) -> None:
    standin.standin.seed_user("=cmd|'/c calc'!A1@example.com", "internal_user")
    run = run_script("list_user.py", "--format", "csv", "--columns", "email", proxy=standin, cwd=tmp_path)

    assert run.stdout.splitlines()[1] == "'=cmd|'/c calc'!A1@example.com"


def test_one_user_listed_is_one_user(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    standin.standin.seed_user("only@example.com")

    run = run_script("list_user.py", proxy=standin, cwd=tmp_path)

    assert "1 user listed;" in run.stderr


def test_an_export_read_while_users_are_added_and_deleted_leaves_out_no_user_who_stayed(
    standin: Proxy, tmp_path: Path
) -> None:
    """LiteLLM pages by number: a user deleted from a page already read moves the later users one
    place up, and one slips past the boundary unread. Here another run deletes a user of page 1
    and adds one while page 3 is asked for (as an add and a delete running beside an export do)."""
    server = standin.standin
    assert server is not None
    ids = sorted(server.seed_user(f"u{n:03d}@example.com", user_id=f"id-{n:03d}") for n in range(350))
    asked = []

    def another_run() -> None:
        asked.append(1)
        if len(asked) == 3:
            time.sleep(1.2)  # well after the reading began, by the proxy's clock
            server.delete_user(ids[0])
            server.seed_user("late@example.com", user_id="zz-late")

    server.watch("/user/list", another_run)

    run = run_script("list_user.py", "--format", "csv", "--columns", "user_id", "--workers", "1", "--output", "all.csv",
                     proxy=standin, cwd=tmp_path)  # fmt: skip

    assert run.code == 0, run.output
    exported = {row["user_id"] for row in csv.DictReader((tmp_path / "all.csv").open(encoding="utf-8"))}
    assert set(ids[1:]) <= exported  # id-200 was the one that slipped past page 2's end
    assert len(asked) > 4  # the listing was read again
