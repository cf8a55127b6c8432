"""Seed a real LiteLLM proxy's PostgreSQL with many users and keys, straight into its tables
(issue 24: the benchmark's small runs on a large proxy, `python -m tests.support.benchmark --real --small`).

Through the API, 20,000 users take minutes to create (one /user/new each before 1.108, and every
row's key); straight into the database they take under a second, and the proxy reads them from
there on every /user/list and /key/list. Stdlib only: PostgreSQL through the `psql` command (COPY
of generated CSV files), so it needs the proxy's PostgreSQL port (../shared/real-litellm/start.sh's
LP_PGPORT, user postgres, database litellm); the proxy's API through urllib, for --verify only.
What it writes, for --tag TAG and i = 0..N-1:

  LiteLLM_UserTable          user_id     seed-TAG-000123
                             user_email  TAG-000123@seed.example.com
                             user_role   internal_user, teams {}, models {}, metadata {}, spend 0
                             created_at / updated_at: now minus (N - i) seconds (UTC), distinct
  LiteLLM_VerificationToken  token       sha256 hex of a random string (like the proxy stores)
  (K keys, j = 0..K-1)       key_name    sk-...<last 4 of the random key>
                             key_alias   seed-TAG-key-000123 (unique)
                             user_id     the owner: user index (j * N) // K, so with N=20000 and
                                         K=5000 every 4th user (000000, 000004, ...) has one key;
                                         with K > N some users have several

Idempotent-ish: a user is inserted only if its user_id is absent, a key only if its key_alias
is absent, so running it again tops the tag back up to N users / K keys (e.g. after the tools
deleted some of them) and changes nothing else (a user the benchmark blocked stays blocked).
--remove deletes what this tag seeded (users seed-TAG-*, keys whose alias is seed-TAG-key-* or
whose owner is seed-TAG-*, their team memberships). Rows are read by LiteLLM from the database on
each /user/list and /key/list, so no proxy restart is needed; a proxy may still hold a seeded user
it served in its in-memory cache for a while after --remove. Never point it at a proxy whose users
matter: it writes to the database behind the proxy's back.

Examples (from the repository root):
  python -m tests.support.seed_real --pgport 15610 --users 20000 --keys 5000 --tag big
  python -m tests.support.seed_real --pgport 15610 --tag big --status
  python -m tests.support.seed_real --pgport 15610 --tag big --verify --base-url http://127.0.0.1:4510
  python -m tests.support.seed_real --pgport 15610 --tag big --verify --verify-delete --base-url http://127.0.0.1:4510
  python -m tests.support.seed_real --pgport 15610 --tag big --remove
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

EMAIL_DOMAIN = "seed.example.com"
ROLE = "internal_user"
TOOL = "seed_real"


# -- naming -------------------------------------------------------------------------------------


def user_id(tag: str, i: int) -> str:
    return f"seed-{tag}-{i:06d}"


def email(tag: str, i: int) -> str:
    return f"{tag}-{i:06d}@{EMAIL_DOMAIN}"


def key_alias(tag: str, j: int) -> str:
    return f"seed-{tag}-key-{j:06d}"


def owner_index(j: int, users: int, keys: int) -> int:
    return (j * users) // keys


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with prefix (its % _ \\ escaped)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- psql ---------------------------------------------------------------------------------------


class Psql:
    def __init__(self, host: str, port: int, user: str, db: str):
        self.base = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(port), "-U", user, "-d", db]

    def run(self, sql: str) -> str:
        """Run a script (may hold \\copy lines); return its stdout (tuples only, unaligned)."""
        proc = subprocess.run(
            [*self.base, "-tA", "-f", "-"],
            check=False,
            input=sql,
            text=True,
            capture_output=True,
            env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
        )
        if proc.returncode != 0:
            sys.exit(f"{TOOL}: psql failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
        return proc.stdout

    def columns(self, table: str) -> dict[str, tuple[bool, bool]]:
        """column -> (nullable, has_default)"""
        out = self.run(
            "select column_name, is_nullable, column_default is not null from information_schema.columns "
            f"where table_schema = 'public' and table_name = {sql_str(table)} order by ordinal_position;"
        )
        cols = {}
        for line in out.splitlines():
            name, nullable, has_default = line.split("|")
            cols[name] = (nullable == "YES", has_default == "t")
        if not cols:
            sys.exit(f'{TOOL}: table "{table}" not found: is this a migrated LiteLLM database?')
        return cols


USER_TABLE = "LiteLLM_UserTable"
KEY_TABLE = "LiteLLM_VerificationToken"


def fit(psql: Psql, table: str, row: dict[str, str | None]) -> list[str]:
    """The columns of row that the table has; exits if the table needs a value row lacks."""
    cols = psql.columns(table)
    missing = [
        name for name, (nullable, has_default) in cols.items() if not nullable and not has_default and name not in row
    ]
    if missing:
        sys.exit(f'{TOOL}: "{table}" has NOT NULL columns without a default this tool does not fill: {missing}')
    return [name for name in row if name in cols]


def user_rows(tag: str, n: int, now: datetime) -> tuple[list[str], list[list[str | None]]]:
    names = ["user_id", "user_email", "user_role", "teams", "models", "metadata", "spend", "created_at", "updated_at"]
    rows = []
    for i in range(n):
        ts = (now - timedelta(seconds=n - i)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        rows.append([user_id(tag, i), email(tag, i), ROLE, "{}", "{}", "{}", "0", ts, ts])
    return names, rows


def key_rows(tag: str, n: int, k: int, now: datetime) -> tuple[list[str], list[list[str | None]]]:
    names = [
        "token", "key_name", "key_alias", "user_id", "spend", "models", "aliases", "config", "permissions",
        "metadata", "model_spend", "model_max_budget", "created_at", "updated_at", "created_by", "updated_by",
    ]  # fmt: skip
    rows = []
    for j in range(k):
        raw = "sk-" + secrets.token_urlsafe(24)
        token = hashlib.sha256(raw.encode()).hexdigest()
        ts = (now - timedelta(seconds=k - j)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        owner = user_id(tag, owner_index(j, n, k))
        empty = ["{}"] * 7  # models, aliases, config, permissions, metadata, model_spend, model_max_budget
        rows.append([token, "sk-..." + raw[-4:], key_alias(tag, j), owner, "0", *empty, ts, ts, TOOL, TOOL])
    return names, rows


def copy_insert(
    psql: Psql, table: str, names: list[str], rows: list[list[str | None]], conflict_on: str, tmpdir: str
) -> int:
    """COPY rows into a temp table, then insert those whose conflict_on value the table lacks."""
    keep = fit(psql, table, dict.fromkeys(names, ""))
    idx = [names.index(name) for name in keep]
    path = os.path.join(tmpdir, f"{table}.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        for row in rows:
            w.writerow([row[i] for i in idx])
    cols = ", ".join(f'"{c}"' for c in keep)
    tmp = f"seed_{table.lower()}"
    out = psql.run(
        f'create temp table {tmp} as select {cols} from "{table}" with no data;\n'
        f"\\copy {tmp} ({cols}) from {sql_str(path)} with (format csv)\n"
        f'with ins as (insert into "{table}" ({cols}) select {cols} from {tmp} s '
        f'where not exists (select 1 from "{table}" t where t."{conflict_on}" = s."{conflict_on}") returning 1) '
        "select count(*) from ins;\n"
    )
    return int(out.strip().splitlines()[-1])


def status(psql: Psql, tag: str) -> tuple[int, int, int, int]:
    out = psql.run(
        f'select (select count(*) from "{USER_TABLE}" where user_id like {sql_str(like_prefix(f"seed-{tag}-"))}), '
        f'(select count(*) from "{KEY_TABLE}" where key_alias like {sql_str(like_prefix(f"seed-{tag}-key-"))}), '
        f'(select count(*) from "{USER_TABLE}"), (select count(*) from "{KEY_TABLE}");'
    )
    a, b, c, d = out.strip().split("|")
    return int(a), int(b), int(c), int(d)


def seed(psql: Psql, tag: str, n: int, k: int) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="seed_real.") as tmpdir:
        names, rows = user_rows(tag, n, now)
        added_users = copy_insert(psql, USER_TABLE, names, rows, "user_id", tmpdir)
        added_keys = 0
        if k:
            if not n:
                sys.exit(f"{TOOL}: --keys needs --users > 0 (keys belong to seeded users)")
            names, rows = key_rows(tag, n, k, now)
            added_keys = copy_insert(psql, KEY_TABLE, names, rows, "key_alias", tmpdir)
    psql.run(f'analyze "{USER_TABLE}"; analyze "{KEY_TABLE}";')
    users, keys, all_users, all_keys = status(psql, tag)
    print(
        f"{TOOL}: tag {tag}: inserted {added_users} users, {added_keys} keys in {time.monotonic() - t0:.1f} s; "
        f"tag now holds {users} users, {keys} keys; the database {all_users} users, {all_keys} keys"
    )


def remove(psql: Psql, tag: str) -> None:
    users = sql_str(like_prefix(f"seed-{tag}-"))
    keys = sql_str(like_prefix(f"seed-{tag}-key-"))
    out = psql.run(
        "begin;\n"
        f'with d as (delete from "{KEY_TABLE}" where key_alias like {keys} or user_id like {users} returning 1) '
        "select count(*) from d;\n"
        f'delete from "LiteLLM_TeamMembership" where user_id like {users};\n'
        f'update "LiteLLM_TeamTable" set members = array(select m from unnest(members) m where m not like {users}), '
        f"members_with_roles = coalesce((select jsonb_agg(e) from jsonb_array_elements(members_with_roles) e "
        f"where coalesce(e->>'user_id', '') not like {users}), '[]'::jsonb) "
        f"where exists (select 1 from unnest(members) m where m like {users});\n"
        f'with d as (delete from "{USER_TABLE}" where user_id like {users}) select 0;\n'
        f'select count(*) from "{USER_TABLE}" where user_id like {users};\n'
        "commit;\n"
    )
    lines = out.strip().splitlines()
    left = status(psql, tag)
    print(
        f"{TOOL}: tag {tag}: removed {lines[0]} keys and the tag's users; "
        f"tag now holds {left[0]} users, {left[1]} keys; "
        f"the database {left[2]} users, {left[3]} keys"
    )


# -- API checks ---------------------------------------------------------------------------------


def api(base_url: str, master_key: str, method: str, path: str, params: dict | None = None, body: dict | None = None):
    url = base_url.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"},
    )
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            answer = json.loads(resp.read() or b"null")
            status_code = resp.status
    except urllib.error.HTTPError as exc:
        answer, status_code = exc.read().decode(errors="replace"), exc.code
    return status_code, answer, time.monotonic() - t0


def verify(psql: Psql, tag: str, base_url: str, master_key: str, delete_one: bool) -> bool:
    users, keys, _, _ = status(psql, tag)
    ok = True

    def check(cond: bool, what: str) -> None:
        nonlocal ok
        ok &= cond
        print(f"  [{'ok' if cond else 'FAIL'}] {what}")

    print(f"{TOOL}: verifying tag {tag} ({users} users, {keys} keys in the database) against {base_url}")
    code, ans, dt = api(base_url, master_key, "GET", "/user/list", {"page": 1, "page_size": 1})
    total = ans.get("total") if isinstance(ans, dict) else None
    check(
        code == 200 and isinstance(total, int) and total >= users,
        f"/user/list?page=1&page_size=1: {code}, total {total} >= {users} ({dt:.2f} s)",
    )
    code, ans, dt = api(base_url, master_key, "GET", "/key/list", {"page": 1, "size": 1})
    total = ans.get("total_count") if isinstance(ans, dict) else None
    check(
        code == 200 and isinstance(total, int) and total >= keys,
        f"/key/list?page=1&size=1: {code}, total_count {total} >= {keys} ({dt:.2f} s)",
    )
    # one seeded user with a key, found by email
    probe = psql.run(
        f'select user_id from "{KEY_TABLE}" where key_alias like {sql_str(like_prefix(f"seed-{tag}-key-"))} '
        "and user_id is not null order by key_alias limit 1;"
    ).strip()
    if probe:
        i = int(probe.rsplit("-", 1)[1])
        code, ans, dt = api(
            base_url, master_key, "GET", "/user/list", {"user_email": email(tag, i), "page": 1, "page_size": 10}
        )
        rows = (
            [r for r in (ans.get("users") or []) if r.get("user_email") == email(tag, i)]
            if isinstance(ans, dict)
            else []
        )
        check(
            code == 200
            and len(rows) == 1
            and rows[0].get("user_id") == probe
            and rows[0].get("user_role") == ROLE
            and (rows[0].get("key_count") or 0) >= 1,
            f"/user/list?user_email={email(tag, i)}: {code}, {len(rows)} match, "
            f"user_id {rows[0].get('user_id') if rows else None}, "
            f"key_count {rows[0].get('key_count') if rows else None} ({dt:.2f} s)",
        )
        alias0 = psql.run(
            f'select key_alias, user_id from "{KEY_TABLE}" '
            f"where key_alias like {sql_str(like_prefix(f'seed-{tag}-key-'))} order by key_alias limit 1;"
        ).strip()
        alias, owner = alias0.split("|")
        code, ans, dt = api(
            base_url, master_key, "GET", "/key/list", {"key_alias": alias, "return_full_object": "true"}
        )
        got = (ans.get("keys") or []) if isinstance(ans, dict) else []
        got = [g for g in got if isinstance(g, dict) and g.get("key_alias") == alias]
        check(
            code == 200 and len(got) == 1 and got[0].get("user_id") == owner,
            f"/key/list?key_alias={alias}: {code}, {len(got)} key(s), "
            f"owner {got[0].get('user_id') if got else None} (want {owner}) ({dt:.2f} s)",
        )
    if delete_one:
        # the last seeded user that has no key; re-inserted by the next seeding run
        victim = psql.run(
            f'select u.user_id from "{USER_TABLE}" u where u.user_id like {sql_str(like_prefix(f"seed-{tag}-"))} '
            f'and not exists (select 1 from "{KEY_TABLE}" k where k.user_id = u.user_id) '
            "order by u.user_id desc limit 1;"
        ).strip()
        if not victim:
            check(False, "no seeded user without a key to delete")
        else:
            code, ans, dt = api(base_url, master_key, "POST", "/user/delete", body={"user_ids": [victim]})
            gone = psql.run(f'select count(*) from "{USER_TABLE}" where user_id = {sql_str(victim)};').strip() == "0"
            check(
                code == 200 and gone,
                f"/user/delete {victim}: {code} {str(ans)[:80]!r}, gone from the database: {gone} ({dt:.2f} s)",
            )
            code, ans, dt = api(
                base_url,
                master_key,
                "GET",
                "/user/list",
                {"user_ids": f"{victim},{victim}", "page": 1, "page_size": 10},
            )
            listed = (
                [r for r in (ans.get("users") or []) if r.get("user_id") == victim] if isinstance(ans, dict) else []
            )
            check(code == 200 and not listed, f"/user/list?user_ids={victim}: {code}, listed {len(listed)} (want 0)")
            print(f"  (re-run the seeding with the same --tag/--users/--keys to put {victim} back)")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Examples" + __doc__.split("Examples", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pghost", default="127.0.0.1")
    p.add_argument("--pgport", type=int, required=True, help="the proxy's PostgreSQL port (start.sh's LP_PGPORT)")
    p.add_argument("--pguser", default="postgres")
    p.add_argument("--pgdb", default="litellm")
    p.add_argument("--tag", default="big", help="name prefix of everything seeded (default: %(default)s); [a-z0-9-]")
    p.add_argument("--users", type=int, default=20000, help="users the tag should hold (default: %(default)s)")
    p.add_argument("--keys", type=int, default=5000, help="keys the tag should hold (default: %(default)s)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--remove", action="store_true", help="delete the tag's users and keys instead of seeding")
    what.add_argument("--status", action="store_true", help="only count the tag's users and keys")
    what.add_argument("--verify-only", action="store_true", help="only run the API checks (implies --verify)")
    p.add_argument("--verify", action="store_true", help="after seeding, check through the proxy's API")
    p.add_argument(
        "--verify-delete", action="store_true", help="with --verify: also delete one seeded user through /user/delete"
    )
    p.add_argument(
        "--base-url", default=os.environ.get("LITELLM_BASE_URL"), help="proxy URL for --verify (env LITELLM_BASE_URL)"
    )
    p.add_argument("--master-key", default=os.environ.get("LITELLM_MASTER_KEY", "sk-local-test-master-key"))
    args = p.parse_args(argv)
    if not args.tag or not all(c.isalnum() or c == "-" for c in args.tag):
        p.error("--tag: letters, digits and '-' only")
    if args.users < 0 or args.keys < 0 or args.users > 999999 or args.keys > 999999:
        p.error("--users/--keys: 0..999999")
    psql = Psql(args.pghost, args.pgport, args.pguser, args.pgdb)
    if args.status:
        u, k, au, ak = status(psql, args.tag)
        print(f"{TOOL}: tag {args.tag}: {u} users, {k} keys; the database {au} users, {ak} keys")
        return 0
    if args.remove:
        remove(psql, args.tag)
        return 0
    if not args.verify_only:
        seed(psql, args.tag, args.users, args.keys)
    if args.verify or args.verify_only or args.verify_delete:
        if not args.base_url:
            p.error("--verify needs --base-url or LITELLM_BASE_URL")
        return 0 if verify(psql, args.tag, args.base_url, args.master_key, args.verify_delete) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
