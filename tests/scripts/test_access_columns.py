"""The access and spend columns (issue 15), as an administrator uses them: add users with budgets,
limits, models and metadata; export them with list_user.py, edit cells, sync them back; clear a
value with `none`; have bad cells refused row by row. Each test runs on the stand-in as 1.108.7,
1.80.7 and 1.65.8, and on the real proxy named by LITELLM_TEST_BASE_URL.

What a release cannot do (docs/litellm-notes.md, /user/update release by release) is part of
what is expected: 1.65.8 cannot rename a user; 1.65.8 and 1.80.7 cannot clear max_budget,
budget_duration, tpm_limit or rpm_limit; no release clears max_parallel_requests. The real
proxies are shared, so every sync here runs with --no-delete, every name carries the test's tag,
and a test's users and teams are deleted from a real proxy when it ends.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from litellm_client import Release, chunks
from tests.conftest import Proxy, Run, new_user, run_script, team_listings, write_csv
from tests.contract import raw
from tests.support.standin import StandIn

EXPORT = "email,role,team_name,user_alias,max_budget,budget_duration,models,tpm_limit,rpm_limit,metadata.cost_center"
RELEASE_PROBES = ("/health/readiness/details", "/health/readiness")
PLAN_FILE = Path("/tmp/research/worked_example_plan.txt")


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def owned(proxy: Proxy) -> Iterator[Proxy]:
    """The proxy; on a real one (shared with other testers), this test's users and teams are
    deleted when it ends."""
    yield proxy
    if not proxy.real:
        return
    with proxy.client() as client:
        mine = [u for u in client.users(email_contains=proxy.tag) if u.email and proxy.tag in u.email]
        for batch in chunks(mine, 100):
            client.delete_many(batch)
        for team in client.teams():
            if team.alias and proxy.tag in team.alias:
                client.delete_team(team.team_id)


def version(proxy: Proxy) -> tuple[int, ...]:
    with proxy.client() as client:
        found = client.release.version
    assert found is not None, "the proxy did not say which release it runs"
    return found


def label(found: tuple[int, ...]) -> str:
    return ".".join(map(str, found))


def user_info(proxy: Proxy, user_id: str) -> dict[str, Any]:
    """GET /user/info, as an administrator checks a user."""
    answer = raw.get(proxy, "/user/info", user_id=user_id)
    assert answer.status_code == 200, answer.text
    return answer.json()


def access(info: dict[str, Any]) -> dict[str, Any]:
    """The access columns of a /user/info answer (lists sorted, metadata as an object)."""
    user = info["user_info"]
    metadata = user.get("metadata") or {}
    return {
        "user_alias": user.get("user_alias"),
        "max_budget": user.get("max_budget"),
        "budget_duration": user.get("budget_duration"),
        "models": sorted(user.get("models") or []),
        "tpm_limit": user.get("tpm_limit"),
        "rpm_limit": user.get("rpm_limit"),
        "max_parallel_requests": user.get("max_parallel_requests"),
        "metadata": json.loads(metadata) if isinstance(metadata, str) else metadata,
    }


def state(proxy: Proxy, user_ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Everything an administrator would notice about these users (name -> user_id): their
    access columns, email, role, teams, spend and keys."""
    found = {}
    for name, user_id in user_ids.items():
        info = user_info(proxy, user_id)
        found[name] = {
            **access(info),
            "user_email": info["user_info"].get("user_email"),
            "user_role": info["user_info"].get("user_role"),
            "teams": sorted(info["user_info"].get("teams") or []),
            "spend": info["user_info"].get("spend"),
            "keys": sorted((k.get("key_alias") or "", k.get("token") or "") for k in info.get("keys") or []),
        }
    return found


def changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> {field: (before, after)} for every field that differs."""
    found = {}
    for name, old in before.items():
        diff = {field: (value, after[name][field]) for field, value in old.items() if after[name][field] != value}
        if diff:
            found[name] = diff
    return found


def write_table(path: Path, columns: list[str], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def plan_lines(stdout: str, mark: str) -> list[str]:
    """The plan's lines for one kind of change: "~", "+", "!"."""
    return sorted(line for line in stdout.splitlines() if line.startswith(f"  {mark} "))


def when(stamp: str) -> datetime:
    """A proxy's timestamp (Z or an offset, any fraction of a second)."""
    stamp = re.sub(r"\.\d+", "", stamp).replace("Z", "+00:00")
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def export(proxy: Proxy, cwd: Path, columns: str = EXPORT, name: str = "user_list.csv") -> Path:
    """list_user.py's CSV export, as sync_user.py takes it: of every user on a stand-in (this
    test's), of this test's users on a real proxy (shared with other testers)."""
    scope = ("--email-like", proxy.tag) if proxy.real else ()
    run = run_script(
        "list_user.py", "--format", "csv", "--columns", columns, *scope, "--output", name, proxy=proxy, cwd=cwd
    )
    assert run.code == 0, run.output
    return cwd / name


def sync(proxy: Proxy, cwd: Path, *args: str) -> Run:
    """sync_user.py on user_list.csv; never deletes (the real proxies are shared)."""
    return run_script("sync_user.py", "--no-delete", *args, proxy=proxy, cwd=cwd)


def requests_made(proxy: Proxy) -> tuple[dict[str, int], int]:
    """The stand-in's requests by endpoint since its log was reset, and apart from them the
    release probes."""
    assert proxy.standin is not None
    made = dict(proxy.standin.counts())
    return made, sum(made.pop(path, 0) for path in RELEASE_PROBES)


# -- 1. add_user.py with every column ----------------------------------------------------------------

EVERY_COLUMN = (
    "email,role,key_name,user_alias,max_budget,budget_duration,models,tpm_limit,rpm_limit,max_parallel_requests,"
    "key_duration,metadata.cost_center,metadata.team_lead"
)


def test_add_user_creates_users_with_every_access_column(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    ann, ben = proxy.email("ann"), proxy.email("ben")
    write_csv(
        tmp_path / "user_addlist.csv",
        f"""
{EVERY_COLUMN}
{ann},internal_user,ann-{proxy.tag},Ann Example,12.5,30d,gpt-4o;claude-3-5-sonnet,1000,10,3,10d,cc-42,{ben}
{ben},internal_user,ben-{proxy.tag},Ben Example,7,1mo,llama-3-8b,500,5,1,24h,cc-7,lead-{proxy.tag}
""",
    )
    writes = proxy.standin.writes() if proxy.standin else 0

    dry = run_script("add_user.py", "--dry-run", proxy=proxy, cwd=tmp_path)

    assert dry.code == 0, dry.output
    assert plan_lines(dry.stdout, "+") == [
        f"  + {ann} (Role: internal_user, Teams: -, Key: ann-{proxy.tag}, expires after 10d, user_alias: Ann Example, "
        "max_budget: 12.5, budget_duration: 30d, models: claude-3-5-sonnet;gpt-4o, tpm_limit: 1000, rpm_limit: 10, "
        f"max_parallel_requests: 3, metadata.cost_center: cc-42, metadata.team_lead: {ben})",
        f"  + {ben} (Role: internal_user, Teams: -, Key: ben-{proxy.tag}, expires after 24h, user_alias: Ben Example, "
        "max_budget: 7, budget_duration: 1mo, models: llama-3-8b, tpm_limit: 500, rpm_limit: 5, "
        f"max_parallel_requests: 1, metadata.cost_center: cc-7, metadata.team_lead: lead-{proxy.tag})",
    ]
    assert proxy.users() == {}
    if proxy.standin:
        assert proxy.standin.writes() == writes  # the dry run wrote nothing
        proxy.standin.reset_log()

    started = datetime.now(timezone.utc)
    run = run_script("add_user.py", proxy=proxy, cwd=tmp_path)
    finished = datetime.now(timezone.utc)

    assert run.code == 0, run.output
    if proxy.standin:
        assert proxy.standin.count("/v1/models") == 1  # read once, for the models cells
    users = proxy.users()
    assert access(user_info(proxy, users[ann].user_id)) == {
        "user_alias": "Ann Example",
        "max_budget": 12.5,
        "budget_duration": "30d",
        "models": ["claude-3-5-sonnet", "gpt-4o"],
        "tpm_limit": 1000,
        "rpm_limit": 10,
        "max_parallel_requests": 3,
        "metadata": {"cost_center": "cc-42", "team_lead": ben},
    }
    assert access(user_info(proxy, users[ben].user_id)) == {
        "user_alias": "Ben Example",
        "max_budget": 7,
        "budget_duration": "1mo",
        "models": ["llama-3-8b"],
        "tpm_limit": 500,
        "rpm_limit": 5,
        "max_parallel_requests": 1,
        "metadata": {"cost_center": "cc-7", "team_lead": f"lead-{proxy.tag}"},
    }
    for email, alias, models, days in (
        (ann, "ann", ["claude-3-5-sonnet", "gpt-4o"], 10),
        (ben, "ben", ["llama-3-8b"], 1),
    ):
        (key,) = user_info(proxy, users[email].user_id)["keys"]
        assert (key["key_alias"], sorted(key["models"])) == (f"{alias}-{proxy.tag}", models)
        # now + the duration; 1.80.7 snaps it to the midnight before (24h: the next midnight)
        lifetime = days * 86400
        expires = when(key["expires"]).timestamp()
        assert started.timestamp() + lifetime - 86400 <= expires <= finished.timestamp() + lifetime + 60, key["expires"]

    results = {row["email"]: row for row in run.rows("user_reg_result.csv")}
    assert {
        column: results[ann][column]
        for column in (
            "status",
            "user_alias",
            "max_budget",
            "budget_duration",
            "models",
            "tpm_limit",
            "rpm_limit",
            "max_parallel_requests",
            "key_duration",
            "metadata.cost_center",
            "metadata.team_lead",
        )
    } == {
        "status": "created",
        "user_alias": "Ann Example",
        "max_budget": "12.5",
        "budget_duration": "30d",
        "models": "claude-3-5-sonnet;gpt-4o",
        "tpm_limit": "1000",
        "rpm_limit": "10",
        "max_parallel_requests": "3",
        "key_duration": "10d",
        "metadata.cost_center": "cc-42",
        "metadata.team_lead": ben,
    }
    assert results[ben]["key_duration"] == "24h"


def test_add_user_result_file_names_each_column_it_set_once(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    write_csv(
        tmp_path / "user_addlist.csv",
        f"""
{EVERY_COLUMN}
{proxy.email("ann")},internal_user,,Ann,12.5,30d,gpt-4o,1000,10,3,10d,cc-42,lead
""",
    )

    run = run_script("add_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    header, _ = read_table(tmp_path / "user_reg_result.csv")
    gained = [c for c in EVERY_COLUMN.split(",") if c not in ("email", "role", "key_name")]
    assert set(gained) <= set(header)
    assert len(header) == len(set(header)), header


# -- 2. the export round trip ------------------------------------------------------------------------


def _people(proxy: Proxy) -> dict[str, str]:
    """Eight users, name -> user_id: a to f in one team, each with the access columns set
    through the API and metadata keys the export does not name (team_lead, ticket); g with no
    access column set; h allowed every model (all-proxy-models)."""
    team = proxy.create_team(f"eng-{proxy.tag}")
    base: dict[str, Any] = {
        "max_budget": 10,
        "budget_duration": "30d",
        "models": ["gpt-4o"],
        "tpm_limit": 100,
        "rpm_limit": 10,
    }
    people = {}
    with proxy.client() as client:
        for name, alias in (("a", "Ann"), ("b", "Ben"), ("c", "Cid"), ("d", "Dee"), ("e", "Eve"), ("f", "Fay")):
            metadata = {"cost_center": "cc-1", "team_lead": f"lead-{name}", "ticket": f"OPS-{name}"}
            people[name] = new_user(
                client, proxy.email(name), team_ids=[team], with_key=False, user_alias=alias, metadata=metadata, **base
            ).user_id
        # one without any access column, one with every model allowed
        people["g"] = new_user(client, proxy.email("g"), team_ids=[team], with_key=False).user_id
        people["h"] = new_user(client, proxy.email("h"), with_key=False, models=["all-proxy-models"]).user_id
    return people


def test_a_csv_export_of_the_access_columns_syncs_back_as_no_change(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    _people(proxy)
    exported = export(proxy, tmp_path)
    header, rows = read_table(exported)
    assert header == EXPORT.split(",")
    by_email = {row["email"]: row for row in rows}
    assert set(by_email) == {proxy.email(name) for name in "abcdefgh"}
    assert by_email[proxy.email("a")] == {
        "email": proxy.email("a"),
        "role": "internal_user",
        "team_name": f"eng-{proxy.tag}",
        "user_alias": "Ann",
        "max_budget": "10",
        "budget_duration": "30d",
        "models": "gpt-4o",
        "tpm_limit": "100",
        "rpm_limit": "10",
        "metadata.cost_center": "cc-1",
    }
    assert [by_email[proxy.email(name)]["models"] for name in "gh"] == ["", "all-proxy-models"]
    writes = proxy.standin.writes() if proxy.standin else 0

    dry = sync(proxy, tmp_path, "--dry-run")
    check = sync(proxy, tmp_path, "--check")

    assert dry.code == 0, dry.output
    assert "No changes: the proxy already matches the file." in dry.stdout
    assert "Users unchanged: 8" in dry.stdout
    assert check.code == 0, check.output
    if proxy.standin:
        assert proxy.standin.writes() == writes


# -- 3. five edited cells ----------------------------------------------------------------------------


def test_five_edited_cells_change_exactly_those_five_values(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    found = version(proxy)
    renames = found >= (1, 80)  # 1.65.8's /user/update has no user_alias
    bulk = found >= (1, 80)  # /user/bulk_update
    people = _people(proxy)
    path = export(proxy, tmp_path)
    header, rows = read_table(path)
    by_email = {row["email"]: row for row in rows}
    by_email[proxy.email("a")]["max_budget"] = "25"
    by_email[proxy.email("a")]["models"] = "gpt-4o;claude-3-5-sonnet"
    by_email[proxy.email("b")]["max_budget"] = "30"
    by_email[proxy.email("c")]["metadata.cost_center"] = "cc-9"
    by_email[proxy.email("d")]["user_alias"] = "Dee Dee"
    write_table(path, header, rows)
    d_line = 2 + next(n for n, row in enumerate(rows) if row["email"] == proxy.email("d"))
    before = state(proxy, people)

    dry = sync(proxy, tmp_path, "--dry-run")

    expected_plan = [
        f"  ~ {proxy.email('a')} (max_budget: 10 -> 25, models: gpt-4o -> claude-3-5-sonnet;gpt-4o)",
        f"  ~ {proxy.email('b')} (max_budget: 10 -> 30)",
        f"  ~ {proxy.email('c')} (metadata.cost_center: cc-1 -> cc-9)",
    ]
    if renames:
        expected_plan.append(f"  ~ {proxy.email('d')} (user_alias: Dee -> Dee Dee)")
    assert plan_lines(dry.stdout, "~") == sorted(expected_plan), dry.stdout
    assert f"  Users to update: {len(expected_plan)}" in dry.stdout
    if renames:
        assert dry.code == 0, dry.output
        assert plan_lines(dry.stdout, "!") == []
    else:
        assert dry.code == 1, dry.output
        assert plan_lines(dry.stdout, "!") == [
            f"  ! line {d_line} {proxy.email('d')}: user_alias cannot be changed on LiteLLM {label(version(proxy))}: "
            "its /user/update has no such field"
        ]
    if proxy.standin:
        proxy.standin.reset_log()

    run = sync(proxy, tmp_path)

    assert run.code == (0 if renames else 1), run.output
    if proxy.standin:  # counted before anything else asks the stand-in
        made, probes = requests_made(proxy)
        assert made == {
            "/team/new": 1,  # the lease
            "/team/update": 1,  # the lease holds the proxy
            "/team/delete": 1,
            "/user/list": 1,
            **team_listings(proxy.standin.release),
            "/v1/models": 1,  # the file has models cells
            **({"/user/bulk_update": 1} if bulk else {"/user/update": 4 if renames else 3}),  # a, b, c (, d)
        }
        assert probes >= 1
    after = state(proxy, people)
    expected = {
        "a": {"max_budget": (10, 25), "models": (["gpt-4o"], ["claude-3-5-sonnet", "gpt-4o"])},
        "b": {"max_budget": (10, 30)},
        "c": {
            "metadata": (
                {"cost_center": "cc-1", "team_lead": "lead-c", "ticket": "OPS-c"},
                {"cost_center": "cc-9", "team_lead": "lead-c", "ticket": "OPS-c"},
            )
        },
    }
    if renames:
        expected["d"] = {"user_alias": ("Dee", "Dee Dee")}
    assert changes(before, after) == expected
    results = {row["email"]: (row["action"], row["status"]) for row in run.rows("user_sync_result.csv")}
    assert results[proxy.email("a")] == ("UPDATED", "SUCCESS")
    assert results[proxy.email("d")] == (("UPDATED", "SUCCESS") if renames else ("UPDATED", "FAILED"))
    assert results[proxy.email("e")] == ("UNCHANGED", "SUCCESS")

    again = sync(proxy, tmp_path, "--check")
    assert again.code == (0 if renames else 1), again.output


# -- 4. none clears ----------------------------------------------------------------------------------

CLEARABLE = (
    "email,max_budget,budget_duration,models,tpm_limit,rpm_limit,max_parallel_requests,user_alias,metadata.cost_center"
)


def test_none_clears_a_value_where_the_release_can(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    found = version(proxy)
    release = label(found)
    null_clears = found >= (1, 108)  # /user/update applies null to max_budget, budget_duration, tpm, rpm
    renames = found >= (1, 80)
    fields: dict[str, dict[str, Any]] = {
        "budget": {"max_budget": 10},
        "duration": {"budget_duration": "30d"},
        "models": {"models": ["gpt-4o"]},
        "limits": {"tpm_limit": 100, "rpm_limit": 10},
        "parallel": {"max_parallel_requests": 3},
        "alias": {"user_alias": "Al"},
        "meta": {"metadata": {"cost_center": "cc-1", "team_lead": "tl", "ticket": "OPS-1"}},
        "meta_last": {"metadata": {"cost_center": "cc-1"}},
    }
    cells = {
        "budget": {"max_budget": "none"},
        "duration": {"budget_duration": "NONE"},
        "models": {"models": "none"},
        "limits": {"tpm_limit": "none", "rpm_limit": "None"},
        "parallel": {"max_parallel_requests": "none"},
        "alias": {"user_alias": "none"},
        "meta": {"metadata.cost_center": "none"},
        "meta_last": {"metadata.cost_center": "none"},
    }
    with proxy.client() as client:
        people = {
            name: new_user(client, proxy.email(name), with_key=False, **values).user_id
            for name, values in fields.items()
        }
    columns = CLEARABLE.split(",")
    write_table(
        tmp_path / "user_list.csv",
        columns,
        [{"email": proxy.email(name), **cells[name]} for name in fields],
    )
    before = state(proxy, people)

    dry = sync(proxy, tmp_path, "--dry-run")
    run = sync(proxy, tmp_path)

    cleared = {
        "models": {"models": (["gpt-4o"], ["all-proxy-models"])},  # no per-user restriction
        "meta": {
            "metadata": (
                {"cost_center": "cc-1", "team_lead": "tl", "ticket": "OPS-1"},
                {"team_lead": "tl", "ticket": "OPS-1"},
            )
        },
    }
    planned = [
        f"  ~ {proxy.email('models')} (models: gpt-4o -> none)",
        f"  ~ {proxy.email('meta')} (metadata.cost_center: cc-1 -> none)",
        f"  ~ {proxy.email('meta_last')} (metadata.cost_center: cc-1 -> none)",
    ]
    refused = {"parallel": "max_parallel_requests"}
    if null_clears:
        cleared["budget"] = {"max_budget": (10, None)}
        cleared["duration"] = {"budget_duration": ("30d", None)}
        cleared["limits"] = {"tpm_limit": (100, None), "rpm_limit": (10, None)}
        planned += [
            f"  ~ {proxy.email('budget')} (max_budget: 10 -> none)",
            f"  ~ {proxy.email('duration')} (budget_duration: 30d -> none)",
            f"  ~ {proxy.email('limits')} (tpm_limit: 100 -> none, rpm_limit: 10 -> none)",
        ]
    else:
        refused |= {"budget": "max_budget", "duration": "budget_duration", "limits": "tpm_limit"}
    if renames:
        planned.append(f"  ~ {proxy.email('alias')} (user_alias: Al -> none)")
    else:
        refused["alias"] = "user_alias"
    assert dry.code == 1, dry.output
    assert plan_lines(dry.stdout, "~") == sorted(planned), dry.stdout
    assert run.code == 1, run.output
    after = state(proxy, people)
    # the last key: LiteLLM ignores an empty metadata object, so the key is left holding null
    assert after["meta_last"]["metadata"] in ({}, {"cost_center": None})
    after["meta_last"]["metadata"] = {}
    cleared["meta_last"] = {"metadata": ({"cost_center": "cc-1"}, {})}
    if renames:  # sent as "", which LiteLLM stores
        assert after["alias"]["user_alias"] in ("", None)
        after["alias"]["user_alias"] = None
        cleared["alias"] = {"user_alias": ("Al", None)}
    assert changes(before, after) == cleared

    results = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    for name, column in refused.items():
        row = results[proxy.email(name)]
        assert row["status"] == "FAILED", row
        assert column in row["error_reason"], row
        if name != "parallel":  # max_parallel_requests can be cleared on no release
            assert f"LiteLLM {release}" in row["error_reason"], row
    assert {proxy.email(name) for name, row in cleared.items() if row} <= {
        email for email, row in results.items() if (row["action"], row["status"]) == ("UPDATED", "SUCCESS")
    }


def test_the_undo_file_of_a_budget_change_puts_the_values_back(owned: Proxy, tmp_path: Path) -> None:
    """product-spec, "Undo files": fed back, sync_user.py's undo file restores budgets, models and
    metadata."""
    proxy = owned
    with proxy.client() as client:
        user_id = new_user(
            client, proxy.email("ann"), with_key=False, user_alias="Ann", max_budget=10, models=["gpt-4o"],
            metadata={"cost_center": "cc-1", "team_lead": "tl"},
        ).user_id  # fmt: skip
    before = state(proxy, {"ann": user_id})
    write_csv(tmp_path / "user_list.csv", f"email,max_budget,metadata.cost_center\n{proxy.email('ann')},25,cc-9\n")
    changed = sync(proxy, tmp_path)
    assert changed.code == 0, changed.output
    assert changes(before, state(proxy, {"ann": user_id})) != {}

    undo = sync(proxy, tmp_path, "--csv-file", "user_sync_undo.csv")

    assert undo.code == 0, undo.output
    assert changes(before, state(proxy, {"ann": user_id})) == {}


# -- 5. bad values -----------------------------------------------------------------------------------

BAD_CELLS = [
    ("max_budget", "ten"),
    ("max_budget", "-1"),
    ("max_budget", "inf"),
    ("max_budget", "nan"),
    ("budget_duration", "10x"),
    ("budget_duration", "3mo"),
    ("models", "gpt-5x"),
    ("tpm_limit", "-1"),
    ("tpm_limit", "1.5"),
]
BAD_COLUMNS = ["email", "role", "max_budget", "budget_duration", "models", "tpm_limit"]


def _names_cell(reason: str, column: str, value: str) -> bool:
    if column == "models":
        return f"model '{value}' is not served by this proxy" in reason
    return f"{column} '{value}'" in reason


def test_add_user_refuses_a_bad_cell_in_its_row_alone(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    good = [
        {"email": proxy.email("good1"), "role": "internal_user", "max_budget": "5", "models": "gpt-4o"},
        {"email": proxy.email("good2"), "role": "internal_user", "budget_duration": "1mo", "tpm_limit": "0"},
    ]
    bad = [
        {"email": proxy.email(f"bad{n}"), "role": "internal_user", column: value}
        for n, (column, value) in enumerate(BAD_CELLS)
    ]
    write_table(tmp_path / "user_addlist.csv", BAD_COLUMNS, [good[0], *bad, good[1]])

    run = run_script("add_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 1, run.output
    errors = {row["email"]: row["error_reason"] for row in run.rows("user_reg_error.csv")}
    assert set(errors) == {row["email"] for row in bad}
    for row, (column, value) in zip(bad, BAD_CELLS, strict=True):
        assert _names_cell(errors[row["email"]], column, value), (column, value, errors[row["email"]])
    users = proxy.users()
    assert set(users) == {proxy.email("good1"), proxy.email("good2")}
    good1 = access(user_info(proxy, users[proxy.email("good1")].user_id))
    assert (good1["max_budget"], good1["models"]) == (5, ["gpt-4o"])
    good2 = access(user_info(proxy, users[proxy.email("good2")].user_id))
    assert (good2["budget_duration"], good2["tpm_limit"]) == ("1mo", 0)


def test_sync_refuses_a_bad_cell_in_its_row_alone(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    values = {"max_budget": 10, "budget_duration": "30d", "models": ["gpt-4o"], "tpm_limit": 100}
    with proxy.client() as client:
        people = {
            f"bad{n}": new_user(client, proxy.email(f"bad{n}"), with_key=False, **values).user_id
            for n in range(len(BAD_CELLS))
        }
        people["good"] = new_user(client, proxy.email("good"), with_key=False, **values).user_id
    rows = [{"email": proxy.email(f"bad{n}"), column: value} for n, (column, value) in enumerate(BAD_CELLS)]
    rows.insert(3, {"email": proxy.email("good"), "max_budget": "20", "models": "gpt-4o;llama-3-8b"})
    write_table(tmp_path / "user_list.csv", BAD_COLUMNS, rows)
    before = state(proxy, people)

    run = sync(proxy, tmp_path)

    assert run.code == 1, run.output
    results = {row["email"]: row for row in run.rows("user_sync_result.csv")}
    for n, (column, value) in enumerate(BAD_CELLS):
        row = results[proxy.email(f"bad{n}")]
        assert row["status"] == "FAILED", row
        assert _names_cell(row["error_reason"], column, value), (column, value, row["error_reason"])
    assert (results[proxy.email("good")]["action"], results[proxy.email("good")]["status"]) == ("UPDATED", "SUCCESS")
    assert changes(before, state(proxy, people)) == {
        "good": {"max_budget": (10, 20), "models": (["gpt-4o"], ["gpt-4o", "llama-3-8b"])}
    }


def test_add_user_names_the_column_of_a_bad_key_duration(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    write_csv(
        tmp_path / "user_addlist.csv",
        f"email,role,key_duration\n{proxy.email('bad')},internal_user,1y\n{proxy.email('good')},internal_user,30d\n",
    )

    run = run_script("add_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 1, run.output
    assert set(proxy.users()) == {proxy.email("good")}
    (error,) = run.rows("user_reg_error.csv")
    assert error["email"] == proxy.email("bad")
    assert "key_duration '1y'" in error["error_reason"], error["error_reason"]


def test_a_duration_in_weeks_is_refused_only_where_the_proxy_reads_it_as_a_day(owned: Proxy, tmp_path: Path) -> None:
    """1.80.7 resets a 2w budget every day and expires a 2w key at the next midnight; 1.65.8 and
    1.108+ read two weeks as two weeks (findings, section 4)."""
    proxy = owned
    daily = not Release(version(proxy)).weekly_durations  # 1.80.7, and the releases between taken to be like it
    write_csv(
        tmp_path / "user_addlist.csv",
        f"""
email,role,budget_duration,key_duration
{proxy.email("budget")},internal_user,2w,
{proxy.email("key")},internal_user,,2w
{proxy.email("days")},internal_user,14d,14d
""",
    )

    run = run_script("add_user.py", proxy=proxy, cwd=tmp_path)

    errors = {row["email"]: row["error_reason"] for row in run.rows("user_reg_error.csv")} if run.code else {}
    if proxy.standin:
        assert proxy.standin.count("/v1/models") == 0  # no models cell: the models are not read
    users = proxy.users()
    if daily:
        assert run.code == 1, run.output
        assert set(users) == {proxy.email("days")}
        assert f"budget_duration '2w': LiteLLM {label(version(proxy))}" in errors[proxy.email("budget")]
        assert f"key_duration '2w': LiteLLM {label(version(proxy))}" in errors[proxy.email("key")]
        assert "(14d)" in errors[proxy.email("budget")]
    else:
        assert run.code == 0, run.output
        assert set(users) == {proxy.email(name) for name in ("budget", "key", "days")}
        assert access(user_info(proxy, users[proxy.email("budget")].user_id))["budget_duration"] == "2w"


# -- 6. list_user.py ---------------------------------------------------------------------------------


def test_list_shows_and_filters_on_the_access_columns(owned: Proxy, tmp_path: Path) -> None:
    proxy = owned
    with proxy.client() as client:
        new_user(
            client, proxy.email("p1"), with_key=False, max_budget=25, models=["llama-3-8b", "gpt-4o"],
            metadata={"cost_center": "cc-42", "team_lead": "x"},
        )  # fmt: skip
        new_user(client, proxy.email("p2"), with_key=False, metadata={"cost_center": "cc-42"})
        new_user(client, proxy.email("p3"), with_key=False, max_budget=5.5, models=["claude-3-5-sonnet"])
        new_user(client, proxy.email("p4"), with_key=False, metadata={"cost_center": "cc-7"})

    def listing(*args: str) -> Run:
        run = run_script(
            "list_user.py", "--columns", "email,max_budget,models,metadata.cost_center", "--email-like", proxy.tag,
            *args, proxy=proxy, cwd=tmp_path,
        )  # fmt: skip
        assert run.code == 0, run.output
        return run

    shown = listing("--format", "csv")
    as_json = listing("--format", "json")
    cc42 = listing("--format", "csv", "--where", "metadata.cost_center=cc-42")
    budget = listing("--format", "csv", "--where", "max_budget=5.5")

    rows = {row["email"]: row for row in csv.DictReader(shown.stdout.splitlines())}
    assert rows == {
        proxy.email("p1"): {
            "email": proxy.email("p1"),
            "max_budget": "25",
            "models": "gpt-4o;llama-3-8b",
            "metadata.cost_center": "cc-42",
        },
        proxy.email("p2"): {
            "email": proxy.email("p2"),
            "max_budget": "",
            "models": "",
            "metadata.cost_center": "cc-42",
        },
        proxy.email("p3"): {
            "email": proxy.email("p3"),
            "max_budget": "5.5",
            "models": "claude-3-5-sonnet",
            "metadata.cost_center": "",
        },
        proxy.email("p4"): {"email": proxy.email("p4"), "max_budget": "", "models": "", "metadata.cost_center": "cc-7"},
    }
    assert {item["email"]: item for item in json.loads(as_json.stdout)}[proxy.email("p1")] == {
        "email": proxy.email("p1"),
        "max_budget": 25,
        "models": ["gpt-4o", "llama-3-8b"],
        "metadata.cost_center": "cc-42",
    }
    assert sorted(row["email"] for row in csv.DictReader(cc42.stdout.splitlines())) == [
        proxy.email("p1"),
        proxy.email("p2"),
    ]
    assert [row["email"] for row in csv.DictReader(budget.stdout.splitlines())] == [proxy.email("p3")]


# -- 7. the worked example ---------------------------------------------------------------------------


def test_worked_example_a_monthly_budget_for_a_cost_center(owned: Proxy, tmp_path: Path) -> None:
    """Twenty people in two cost centers; finance wants everyone in cc-7 on a $100 monthly
    budget. Two of the twelve in cc-7 have it already, so the edited spreadsheet changes ten."""
    proxy = owned
    people = [(f"u{n:02d}", "cc-7" if n < 12 else "cc-3") for n in range(20)]
    write_table(
        tmp_path / "user_addlist.csv",
        ["email", "role", "max_budget", "budget_duration", "metadata.cost_center"],
        [
            {
                "email": proxy.email(name),
                "role": "internal_user",
                "max_budget": "100" if n in (3, 8) else "20" if center == "cc-3" else "",
                "budget_duration": "1mo" if n in (3, 8) else "",
                "metadata.cost_center": center,
            }
            for n, (name, center) in enumerate(people)
        ],
    )
    added = run_script("add_user.py", "--no-key", proxy=proxy, cwd=tmp_path)
    assert added.code == 0, added.output

    path = export(proxy, tmp_path, "email,role,team_name,max_budget,budget_duration,metadata.cost_center")
    header, rows = read_table(path)
    for row in rows:  # the spreadsheet edit: every cc-7 row gets $100 a month
        if row["metadata.cost_center"] == "cc-7":
            row["max_budget"], row["budget_duration"] = "100", "1mo"
    write_table(path, header, rows)

    dry = sync(proxy, tmp_path, "--dry-run")

    print(dry.stdout)
    where = proxy.name if proxy.standin else f"real-{label(version(proxy))}"
    plan_file = PLAN_FILE if where == "standin" else PLAN_FILE.with_name(f"{PLAN_FILE.stem}-{where}.txt")
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(f"$ python sync_user.py --no-delete --dry-run    # {where}\n{dry.stdout}", encoding="utf-8")
    assert dry.code == 0, dry.output
    changed = [proxy.email(name) for n, (name, center) in enumerate(people) if center == "cc-7" and n not in (3, 8)]
    assert len(changed) == 10
    assert plan_lines(dry.stdout, "~") == sorted(
        f"  ~ {email} (max_budget: none -> 100, budget_duration: none -> 1mo)" for email in changed
    )
    assert "  Users to update: 10" in dry.stdout
    assert "  Users unchanged: 10" in dry.stdout

    run = sync(proxy, tmp_path)

    assert run.code == 0, run.output
    listed = run_script(
        "list_user.py", "--format", "csv", "--columns", "email,max_budget,budget_duration", "--email-like", proxy.tag,
        "--where", "metadata.cost_center=cc-7", proxy=proxy, cwd=tmp_path,
    )  # fmt: skip
    assert listed.code == 0, listed.output
    monthly = {
        (row["email"], row["max_budget"], row["budget_duration"]) for row in csv.DictReader(listed.stdout.splitlines())
    }
    assert monthly == {(proxy.email(name), "100", "1mo") for name, center in people if center == "cc-7"}
    assert sync(proxy, tmp_path, "--check").code == 0


# -- 8. the request budget ---------------------------------------------------------------------------


@pytest.mark.parametrize("release", ["1.108.7", "1.80.7", "1.65.8"])
@pytest.mark.parametrize("models", ["empty", "filled"])
def test_a_budget_change_for_one_percent_of_10000_users_costs_one_update_per_change(
    tmp_path: Path, release: str, models: str
) -> None:
    """The listing of users, one of teams, the lease, the release probe, and one update per
    changed user (one /user/bulk_update per 500 where the release has it); the models listing
    only when a models cell is filled, and then once."""
    n, changed = 10_000, range(0, 10_000, 100)  # 1%
    with StandIn(release=release) as standin:
        proxy = Proxy(f"standin-{release}", standin.url, standin.master_key, standin)
        with standin.lock:
            for number in range(n):
                user_id = standin.seed_user(f"u{number}@example.com", "internal_user")
                standin.users[user_id]["max_budget"] = 10.0
                standin.users[user_id]["models"] = ["gpt-4o"]
        lines = [
            f"u{number}@example.com,internal_user,{25 if number in changed else 10},"
            f"{'gpt-4o' if models == 'filled' else ''}"
            for number in range(n)
        ]
        write_csv(tmp_path / "user_list.csv", "email,role,max_budget,models\n" + "\n".join(lines) + "\n")

        run = run_script("sync_user.py", "--quiet", proxy=proxy, cwd=tmp_path)

        assert run.code == 0, run.output
        assert f"Users to update: {len(changed)}" in run.stdout
        assert "Users to delete: 0" in run.stdout
        made, probes = requests_made(proxy)
        bulk = release != "1.65.8"
        assert made == {
            "/team/new": 1,  # the lease
            "/team/update": 1,  # the lease holds the proxy
            "/team/delete": 1,
            "/user/list": math.ceil(len(standin.users) / 100),
            **team_listings(release),
            **({"/v1/models": 1} if models == "filled" else {}),
            **({"/user/bulk_update": math.ceil(len(changed) / 500)} if bulk else {"/user/update": len(changed)}),
        }
        assert 1 <= probes <= 2
        budgets = {u["user_email"]: u["max_budget"] for u in standin.users.values() if u["user_email"]}
        assert budgets == {f"u{number}@example.com": 25 if number in changed else 10 for number in range(n)}
