"""A LiteLLM Proxy stand-in: a small HTTP server on 127.0.0.1 that answers the /user, /team, /key
and /invitation endpoints the way a real proxy does (../shared/litellm-api.md and the answers
recorded from real 1.108.7 and 1.80.7 proxies), with their status codes and error shapes.

- release="1.108.7" (default) or "1.80.7": the older release answers 400 for duplicates, 200 for
  unknown users, lets a duplicate user_id through, and rewrites team rosters without a lock, so
  parallel writes to one team lose members, as measured on a real 1.80.7.
- Faults: latency on every request, and per path: a status (with Retry-After), a dropped
  connection before or after the work, a slow answer.
- It counts requests, so tests can assert how many were made.

Standalone, for trying the tools without a proxy:  python -m tests.standin [--port 4000]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MASTER_KEY = "sk-standin-master-key"
ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")
ROLE_LITERALS = (
    "Input should be <LitellmUserRoles.PROXY_ADMIN: 'proxy_admin'>, <LitellmUserRoles.PROXY_ADMIN_VIEW_ONLY: "
    "'proxy_admin_viewer'>, <LitellmUserRoles.INTERNAL_USER: 'internal_user'> or "
    "<LitellmUserRoles.INTERNAL_USER_VIEW_ONLY: 'internal_user_viewer'>"
)
USER_SORT_COLUMNS = ("user_id", "user_email", "created_at", "spend", "user_alias", "user_role")
OLD_ROSTER_RACE_SECONDS = 0.01  # how long an old release holds a roster copy before writing it back


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "000Z"


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class Answer(Exception):
    """An HTTP answer raised from deep inside a handler (the proxy's error shapes)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Fault:
    path: str
    action: str  # status | drop_before | drop_after | delay_before | delay_after | call
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    skip: int = 0  # matching requests let through first
    times: int = 1  # matching requests that get the fault (then it is spent)
    call: Callable[[], None] | None = None  # action "call": run this first (someone else acting meanwhile)
    seen: int = 0


class StandIn:
    """State of one fake proxy, and the server that answers for it."""

    def __init__(
        self,
        *,
        release: str = "1.108.7",
        latency: float = 0.0,
        master_key: str = MASTER_KEY,
        port: int = 0,
        tls: tuple[str, str] | None = None,
    ):
        self.release = release
        self.latency = latency
        self.master_key = master_key
        self.port = port
        self.tls = tls  # (certificate file, key file): serve HTTPS
        self.users: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {}  # by hash
        self.invitations: dict[str, dict[str, Any]] = {}
        self.issued: list[str] = []  # every raw key handed out, for tests that look for leaks
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every answered request
        self.faults: list[Fault] = []
        self.models = ["gpt-4o", "claude-3-5-sonnet", "llama-3-8b"]  # what the launcher's real proxy serves
        self.lock = threading.RLock()
        self._team_locks: dict[str, threading.Lock] = {}
        self.emails: Counter[str] = Counter()  # lower-cased, for the duplicate check
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def old(self) -> bool:
        return tuple(int(p) for p in self.release.split(".")[:2]) < (1, 81)

    @property
    def roster_lock(self) -> bool:
        return tuple(int(p) for p in self.release.split(".")[:2]) >= (1, 100)

    # -- server ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> StandIn:
        """Listen (again, on the same port after a stop or a crash: the state is kept)."""
        server = _Server(("127.0.0.1", self.port), _handler_for(self))
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name="standin").start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def crash(self) -> None:
        """Die like a proxy process: stop listening and cut every open connection."""
        self.stop()
        with self.lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------

    def fail(self, path: str, action: str = "status", **options: Any) -> Fault:
        fault = Fault(path, action, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def count(self, path: str | None = None, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.log if (path is None or p == path) and (method is None or m == method))

    def writes(self) -> int:
        return self.count(method="POST")

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(p for _, p, _ in self.log)

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()

    def seed_user(
        self,
        email: str | None,
        role: str | None = "internal_user",
        *,
        teams: tuple[str, ...] = (),
        keys: int = 0,
        user_id: str | None = None,
    ) -> str:
        """Put a user on the proxy directly (no request counted), with keys if asked."""
        with self.lock:
            user = self._insert_user(user_id or str(uuid.uuid4()), email, role, list(teams))
            for team_id in teams:
                self.teams[team_id]["members_with_roles"].append(
                    {"user_id": user["user_id"], "user_email": email, "role": "user"}
                )
            for _ in range(keys):
                self._insert_key(user["user_id"], None, None)
            return user["user_id"]

    def seed_team(self, alias: str | None, team_id: str | None = None) -> str:
        with self.lock:
            return self._insert_team(team_id or str(uuid.uuid4()), alias, [])["team_id"]

    def delete_user(self, user_id: str) -> None:
        """Someone else deletes a user (no request counted)."""
        with self.lock:
            for token in [t for t, k in self.keys.items() if k["user_id"] == user_id]:
                del self.keys[token]
            self._remove_user(user_id)
            self.changed()

    def user_by_email(self, email: str) -> list[dict[str, Any]]:
        with self.lock:
            return [u for u in self.users.values() if (u["user_email"] or "").lower() == email.lower()]

    def user_emails(self) -> list[str]:
        """The emails of the users on the proxy, sorted (the proxy's own default_user_id has none)."""
        with self.lock:
            return sorted(u["user_email"] for u in self.users.values() if u["user_email"])

    def roster(self, team_id: str) -> list[str]:
        with self.lock:
            return [m["user_id"] for m in self.teams[team_id]["members_with_roles"]]

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path == "/health/liveliness":
            return 200, "I'm alive!", {}
        if path == "/health/readiness":
            if self.roster_lock:  # 1.100+ answers the public probe without details
                return 200, {"status": "healthy", "db": "connected"}, {}
            return 200, {"status": "connected", "db": "connected", "litellm_version": self.release}, {}
        caller = self._authenticate(headers.get("Authorization"))
        if path == "/health/readiness/details":
            if not self.roster_lock:
                raise Answer(404, {"detail": "Not Found"})
            return 200, {"status": "healthy", "db": "connected", "litellm_version": self.release}, {}
        if (method, path) == ("GET", "/key/info"):
            return 200, key_info(self, query, caller), {}
        route = ROUTES.get((method, path))
        if route is None:
            raise Answer(404, {"detail": "Not Found"})
        if caller != "admin":
            if path == "/user/list":
                raise Answer(403, {"detail": {"error": "Only proxy admins and organization admins can list users."}})
            raise _error(
                401,
                "Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
                f"keys/users/teams. Route={path}.",
                "auth_error",
            )
        payload: Any = None
        if method == "POST":
            if not body:
                raise _invalid(["body"], "Field required", "missing")
            try:
                payload = json.loads(body)
            except ValueError:
                raise Answer(
                    422, {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]}
                ) from None
        return 200, route(self, query if method == "GET" else payload), {}

    def _authenticate(self, header: str | None) -> str:
        if not header:
            raise _error(401, "Authentication Error, No api key passed in.", "auth_error", "None")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise _error(
                401,
                "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.",
                "auth_error",
                "None",
            )
        token = header[7:].strip()
        if secrets.compare_digest(token, self.master_key):
            return "admin"
        with self.lock:
            key = self.keys.get(key_hash(token))
            if key and key.get("blocked"):
                raise _error(
                    401,
                    "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.",
                    "auth_error",
                )
            if key:
                return key_hash(token)
        raise _error(401, "Authentication Error, Invalid API key provided.", "token_not_found_in_db", "key")

    def fault_for(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path == path:
                    fault.seen += 1
                    if fault.skip < fault.seen <= fault.skip + fault.times:
                        return fault
        return None

    def changed(self) -> None:
        self._cache.clear()

    def key_counts(self) -> Counter[str]:
        counts = self._cache.get(("key_counts",))
        if counts is None:
            counts = self._cache[("key_counts",)] = Counter(k["user_id"] for k in self.keys.values())
        return counts

    # -- rows --------------------------------------------------------------------------------

    def _insert_user(self, user_id: str, email: str | None, role: str | None, teams: list[str]) -> dict[str, Any]:
        stamp = now()
        user = {
            "user_id": user_id,
            "user_alias": None,
            "team_id": None,
            "sso_user_id": None,
            "organization_id": None,
            "teams": teams,
            "user_role": role,
            "max_budget": None,
            "budget_duration": None,
            "budget_reset_at": None,
            "tpm_limit": None,
            "rpm_limit": None,
            "max_parallel_requests": None,
            "spend": 0.0,
            "user_email": email,
            "models": [],
            "metadata": {},
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.users[user_id] = user
        if email:
            self.emails[email.strip().lower()] += 1
        self.changed()
        return user

    def _remove_user(self, user_id: str) -> None:
        user = self.users.pop(user_id)
        if user["user_email"]:
            self.emails[user["user_email"].strip().lower()] -= 1

    def _insert_team(self, team_id: str, alias: str | None, members: list[dict[str, Any]]) -> dict[str, Any]:
        stamp = now()
        if "default_user_id" not in self.users:  # what a real proxy does for a master-key caller
            self._insert_user("default_user_id", None, "internal_user", [])
        self.users["default_user_id"]["teams"].append(team_id)
        team = {
            "team_alias": alias,
            "team_id": team_id,
            "organization_id": None,
            "admins": [],
            "members": [],
            "members_with_roles": [*members, {"user_id": "default_user_id", "user_email": None, "role": "admin"}],
            "metadata": {},
            "max_budget": None,
            "models": [],
            "blocked": False,
            "spend": 0.0,
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.teams[team_id] = team
        self.changed()
        return team

    def _insert_key(
        self, user_id: str | None, team_id: str | None, alias: str | None, duration: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        raw = "sk-" + secrets.token_urlsafe(16)
        self.issued.append(raw)
        stamp = now()
        row = {
            "token": key_hash(raw),
            "key_name": f"sk-...{raw[-4:]}",
            "key_alias": alias,
            "spend": 0.0,
            "max_budget": None,
            "expires": _expiry(duration),
            "blocked": None,
            "models": [],
            "user_id": user_id,
            "team_id": team_id,
            "metadata": {},
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.keys[row["token"]] = row
        self.changed()
        return raw, row

    def user_row(self, user: dict[str, Any]) -> dict[str, Any]:
        return {**user, "teams": list(user["teams"]), "key_count": self.key_counts()[user["user_id"]]}

    def team_lock(self, team_id: str) -> threading.Lock:
        with self.lock:
            return self._team_locks.setdefault(team_id, threading.Lock())

    def write_roster(self, team_id: str, change: Any) -> None:
        """Change a team's roster: under a per-team lock from 1.100 on; before that, a copy is
        read, held a moment and written back, so concurrent writers lose each other's members."""
        if self.roster_lock:
            with self.team_lock(team_id), self.lock:
                team = self.teams[team_id]
                team["members_with_roles"] = change(list(team["members_with_roles"]))
                self.changed()
            return
        with self.lock:
            copy = list(self.teams[team_id]["members_with_roles"])
        time.sleep(OLD_ROSTER_RACE_SECONDS)
        with self.lock:
            if team_id in self.teams:
                self.teams[team_id]["members_with_roles"] = change(copy)
                self.changed()


def _expiry(duration: str | None) -> str | None:
    if not duration:
        return None
    number = duration.rstrip("smhdwo")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 2592000}[duration[len(number) :]]
    return datetime.fromtimestamp(time.time() + int(number) * seconds, timezone.utc).isoformat()


def _error(status: int, message: str, error_type: str = "internal_server_error", param: str | None = None) -> Answer:
    """The OpenAI-style error shape (A)."""
    return Answer(status, {"error": {"message": message, "type": error_type, "param": param, "code": str(status)}})


def _wrapped(proxy: StandIn, status: int, message: str) -> Answer:
    """A handler's HTTPException(detail={'error': ...}) after handle_exception_on_proxy."""
    return _error(status, "{'error': " + repr(message) + "}", param="None" if proxy.old else None)


def _invalid(loc: list[Any], msg: str, error_type: str = "value_error") -> Answer:
    return Answer(422, {"detail": [{"type": error_type, "loc": loc, "msg": msg}]})


# -- /user ----------------------------------------------------------------------------------------


def user_new(proxy: StandIn, body: dict[str, Any]) -> Any:
    role = body.get("user_role")
    if role is not None and role not in ROLES:
        raise _invalid(["body", "user_role"], ROLE_LITERALS, "literal_error")
    _check_user_fields(proxy, body)
    email = body.get("user_email")
    team_id = body.get("team_id")
    teams = list(body.get("teams") or [])
    with proxy.lock:
        user_id = body.get("user_id")
        if user_id and user_id in proxy.users:
            if not proxy.old:
                raise _wrapped(proxy, 409, f"User with id {user_id} already exists")
            raw, key = proxy._insert_key(user_id, team_id, body.get("key_alias"))  # 1.80: a new key, nothing else
            return _new_user_answer(proxy.users[user_id], raw if body.get("auto_create_key", True) else "", key, None)
        if email and proxy.emails[email.strip().lower()] > 0:
            raise _wrapped(proxy, 400 if proxy.old else 409, f"User with email {email} already exists")
        user = proxy._insert_user(
            user_id or str(uuid.uuid4()), email, role, [] if team_id or proxy.roster_lock else teams
        )
        for field in USER_FIELDS:
            if body.get(field) is not None:
                user[field] = body[field]
        raw, key = ("", None)
        if body.get("auto_create_key", True):
            raw, key = proxy._insert_key(user["user_id"], team_id, body.get("key_alias"), body.get("duration"))
            key["models"] = list(user["models"])
    joined = []
    for team in [team_id] if team_id else teams:
        if team in proxy.teams:
            proxy.write_roster(
                team, lambda roster, u=user: [*roster, {"user_id": u["user_id"], "user_email": email, "role": "user"}]
            )
            joined.append(team)
    with proxy.lock:
        user["teams"] = list(dict.fromkeys([*user["teams"], *joined]))
        proxy.changed()
        sent_teams = bool(team_id or teams)
        return _new_user_answer(user, raw, key, joined if sent_teams and proxy.roster_lock else None)


USER_FIELDS = (
    "user_alias",
    "max_budget",
    "budget_duration",
    "models",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "metadata",
)
CLEARED_BY_NULL = ("max_budget", "budget_duration", "tpm_limit", "rpm_limit")  # the others ignore null, [] and {}
DURATION_UNITS = ("s", "m", "h", "d", "w", "mo")


def _check_user_fields(proxy: StandIn, body: dict[str, Any]) -> None:
    """What a real proxy refuses in the user fields: a bad duration (400), a wrong type (422)."""
    duration = body.get("budget_duration")
    if duration is not None and not _duration_ok(duration):
        raise _wrapped(
            proxy, 400, f"Invalid budget_duration '{duration}'. Use a format like '1h', '24h', '7d', or '30d'."
        )
    for field in ("tpm_limit", "rpm_limit", "max_parallel_requests"):
        if body.get(field) is not None and not isinstance(body[field], int):
            raise _invalid(["body", field], "Input should be a valid integer", "int_type")
    if body.get("models") is not None and not isinstance(body["models"], list):
        raise _invalid(["body", "models"], "Input should be a valid list", "list_type")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise _invalid(["body", "metadata"], "Input should be a valid dictionary", "dict_type")


def _duration_ok(text: str) -> bool:
    number = text.rstrip("smhdwo")
    unit = text[len(number) :]
    return number.isdigit() and int(number) > 0 and unit in DURATION_UNITS


def _new_user_answer(
    user: dict[str, Any], raw: str, key: dict[str, Any] | None, teams: list[str] | None
) -> dict[str, Any]:
    return {
        **{field: user[field] for field in USER_FIELDS},
        "key_alias": key["key_alias"] if key else None,
        "spend": 0.0,
        "user_id": user["user_id"],
        "team_id": key["team_id"] if key else None,
        "key": raw,
        "key_name": key["key_name"] if key else None,
        "expires": None,
        "token_id": None,
        "token": None,
        "created_at": key["created_at"] if key else None,
        "updated_at": key["updated_at"] if key else None,
        "user_email": user["user_email"],
        "user_role": user["user_role"],
        "teams": teams,
    }


def user_list(proxy: StandIn, query: dict[str, str]) -> Any:
    page = _int_param(query, "page", 1, low=1)
    size = _int_param(query, "page_size", 25, low=1, high=100)
    sort_by = query.get("sort_by")
    if sort_by and sort_by not in USER_SORT_COLUMNS:
        raise Answer(400, {"detail": {"error": "Invalid sort column. Must be one of: " + ", ".join(USER_SORT_COLUMNS)}})
    with proxy.lock:
        key = ("users", tuple(sorted((k, v) for k, v in query.items() if k not in ("page", "page_size"))))
        ids = proxy._cache.get(key)
        if ids is None:
            ids = [u["user_id"] for u in proxy.users.values() if _user_matches(proxy, u, query)]
            if sort_by:
                ids.sort(
                    key=lambda i: (proxy.users[i].get(sort_by) is None, proxy.users[i].get(sort_by) or ""),
                    reverse=query.get("sort_order") == "desc",
                )
            else:  # created_at desc, with no tie-breaker: equal stamps come in any order
                ids.sort(key=lambda i: (proxy.users[i]["created_at"], secrets.randbits(16)), reverse=True)
            proxy._cache[key] = ids
        rows = [proxy.user_row(proxy.users[i]) for i in ids[(page - 1) * size : page * size]]
        return {
            "users": rows,
            "total": len(ids),
            "page": page,
            "page_size": size,
            "total_pages": math.ceil(len(ids) / size),
        }


def _user_matches(proxy: StandIn, user: dict[str, Any], query: dict[str, str]) -> bool:
    if query.get("role") and user["user_role"] != query["role"]:
        return False
    if query.get("user_email") and query["user_email"].lower() not in (user["user_email"] or "").lower():
        return False
    if query.get("team") and query["team"] not in user["teams"]:
        return False
    if query.get("user_ids"):
        ids = [i for i in query["user_ids"].split(",") if i]
        if len(ids) == 1 and not proxy.old:  # one id is a case-insensitive substring from 1.81 on
            return ids[0].lower() in user["user_id"].lower()
        return user["user_id"] in ids
    return True


def user_info(proxy: StandIn, query: dict[str, str]) -> Any:
    user_id = query.get("user_id", "")
    with proxy.lock:
        user = proxy.users.get(user_id)
        if user is None:
            if proxy.old:
                return {"user_id": user_id, "user_info": {"spend": 0}, "keys": [], "teams": []}
            raise _error(404, f"User {user_id} not found")
        keys = [k for k in proxy.keys.values() if k["user_id"] == user_id]
        teams = [proxy.teams[t] for t in user["teams"] if t in proxy.teams]
        return {"user_id": user_id, "user_info": dict(user), "keys": keys, "teams": teams}


def user_update(proxy: StandIn, body: dict[str, Any]) -> Any:
    """As LiteLLM's _update_internal_user_params: max_budget, budget_duration, tpm_limit and
    rpm_limit are set whenever sent (null clears them); the other fields only when not null, [] or
    {}; metadata replaces the whole object."""
    if not body.get("user_id") and not body.get("user_email"):
        raise _invalid(["body"], "Value error, Either user id or user email must be provided")
    role = body.get("user_role")
    if role is not None and role not in ROLES:
        raise _invalid(["body", "user_role"], ROLE_LITERALS, "literal_error")
    _check_user_fields(proxy, body)
    with proxy.lock:
        if body.get("user_id"):
            user = proxy.users.get(body["user_id"])
        else:
            user = next((u for u in proxy.users.values() if u["user_email"] == body["user_email"]), None)
        if user is None:  # upsert: an unknown user is created
            user = proxy._insert_user(body.get("user_id") or str(uuid.uuid4()), body.get("user_email"), role, [])
        else:
            user["updated_at"] = now()
        for field, value in body.items():
            if field in CLEARED_BY_NULL or (field in (*USER_FIELDS, "user_role") and value not in (None, [], {})):
                user[field] = value
        proxy.changed()
        return {"user_id": user["user_id"], "data": dict(user)}


def user_delete(proxy: StandIn, body: dict[str, Any]) -> Any:
    if "user_ids" not in body:
        raise _invalid(["body", "user_ids"], "Field required", "missing")
    ids = list(dict.fromkeys(body["user_ids"]))
    with proxy.lock:
        for user_id in ids:
            if user_id not in proxy.users:
                raise Answer(404, {"detail": {"error": f"User not found, passed user_id={user_id}"}})
        teams = {t for user_id in ids for t in proxy.users[user_id]["teams"]}
    gone = set(ids)
    for team_id in teams:
        if team_id in proxy.teams:
            proxy.write_roster(team_id, lambda roster: [m for m in roster if m["user_id"] not in gone])
    with proxy.lock:
        for token in [t for t, k in proxy.keys.items() if k["user_id"] in gone]:
            del proxy.keys[token]
        for invitation in [i for i, v in proxy.invitations.items() if v["user_id"] in gone]:
            del proxy.invitations[invitation]
        deleted = 0
        for user_id in ids:
            if user_id in proxy.users:
                proxy._remove_user(user_id)
                deleted += 1
        proxy.changed()
        return deleted


def invitation_new(proxy: StandIn, body: dict[str, Any]) -> Any:
    with proxy.lock:
        creator_missing = proxy.roster_lock and "default_user_id" not in proxy.users
        if body.get("user_id") not in proxy.users or creator_missing:
            raise _wrapped(
                proxy, 400, "User id does not exist in 'LiteLLM_UserTable'. Fix this by creating user via `/user/new`."
            )
        invitation = {
            "id": str(uuid.uuid4()),
            "user_id": body["user_id"],
            "is_accepted": False,
            "accepted_at": None,
            "expires_at": now(),
            "created_at": now(),
            "created_by": "default_user_id",
            "updated_at": now(),
            "updated_by": "default_user_id",
        }
        proxy.invitations[invitation["id"]] = invitation
        return invitation


# -- /team ----------------------------------------------------------------------------------------


def team_new(proxy: StandIn, body: dict[str, Any]) -> Any:
    with proxy.lock:
        team_id = body.get("team_id")
        if team_id and team_id in proxy.teams:
            raise _wrapped(proxy, 400, f"Team id = {team_id} already exists. Please use a different team id.")
        team = proxy._insert_team(
            team_id or str(uuid.uuid4()), body.get("team_alias"), list(body.get("members_with_roles") or [])
        )
        team["metadata"] = dict(body.get("metadata") or {})
        return dict(team)


def team_update(proxy: StandIn, body: dict[str, Any]) -> Any:
    with proxy.lock:
        team = proxy.teams.get(body.get("team_id", ""))
        if team is None:
            raise _error(404, f"Team not found, passed team_id={body.get('team_id')}", "not_found_error")
        for field in ("team_alias", "metadata", "max_budget", "models"):
            if body.get(field) is not None:
                team[field] = body[field]
        team["updated_at"] = now()
        proxy.changed()
        return {"team_id": team["team_id"], "data": dict(team)}


def team_delete(proxy: StandIn, body: dict[str, Any]) -> Any:
    ids = list(body.get("team_ids") or [])
    with proxy.lock:
        for team_id in ids:
            if team_id not in proxy.teams:
                raise Answer(404, {"detail": {"error": f"Team not found, passed team_id={team_id}"}})
        for team_id in ids:
            del proxy.teams[team_id]
            for token in [t for t, k in proxy.keys.items() if k["team_id"] == team_id]:
                del proxy.keys[token]
            for user in proxy.users.values():
                user["teams"] = [t for t in user["teams"] if t != team_id]
        proxy.changed()
        return {"deleted_teams": ids}


def team_list(proxy: StandIn, query: dict[str, str]) -> Any:
    with proxy.lock:
        teams = sorted(proxy.teams.values(), key=lambda t: t["team_alias"] or "")
        if query.get("user_id"):
            teams = [t for t in teams if any(m["user_id"] == query["user_id"] for m in t["members_with_roles"])]
        by_team: dict[str, list[dict[str, Any]]] = {}
        for key in proxy.keys.values():
            if key["team_id"]:
                by_team.setdefault(key["team_id"], []).append(key)
        return [
            {
                **team,
                "team_memberships": [
                    {"user_id": m["user_id"], "team_id": team["team_id"], "budget_id": None}
                    for m in team["members_with_roles"]
                ],
                "keys": by_team.get(team["team_id"], []),
            }
            for team in teams
        ]


def team_info(proxy: StandIn, query: dict[str, str]) -> Any:
    with proxy.lock:
        team = proxy.teams.get(query.get("team_id", ""))
        if team is None:
            raise _error(404, f"{{'message': 'Team not found, passed team id: {query.get('team_id')}.'}}")
        keys = [k for k in proxy.keys.values() if k["team_id"] == team["team_id"]]
        return {"team_id": team["team_id"], "team_info": dict(team), "keys": keys, "team_memberships": []}


def team_member_add(proxy: StandIn, body: dict[str, Any]) -> Any:
    members = body.get("member")
    members = members if isinstance(members, list) else [members]
    for member in members:
        if not isinstance(member, dict) or member.get("role") not in ("admin", "user"):
            raise _invalid(["body", "role"], "Input should be 'admin' or 'user'", "literal_error")
        if member["role"] == "admin":
            raise Answer(
                400,
                {
                    "detail": {
                        "error": "Assigning team admins is a premium feature. You must be a LiteLLM Enterprise "
                        "user to use this feature."
                    }
                },
            )
    team_id = body.get("team_id")
    with proxy.lock:
        team = proxy.teams.get(team_id)
        if team is None:
            raise Answer(
                404,
                {"detail": {"error": f"Team doesn't exist in db. Team={team_id}. Create team via `/team/new` call."}},
            )
        roster = team["members_with_roles"]
        present = [
            m
            for m in members
            if any(
                (m.get("user_id") and m.get("user_id") == r["user_id"])
                or (m.get("user_email") and m.get("user_email") == r["user_email"])
                for r in roster
            )
        ]
        if len(present) == len(members):
            text = "All users are already in team" if isinstance(body.get("member"), list) else "User already in team"
            raise _error(400, f"{text}. Existing members={roster}", "team_member_already_in_team", "member")
        added = []
        for member in members:
            if member in present:
                continue
            user = _member_user(proxy, member, team_id)
            added.append({"user_id": user["user_id"], "user_email": user["user_email"], "role": member["role"]})
    proxy.write_roster(team_id, lambda roster: [*roster, *added])
    with proxy.lock:
        return {
            **proxy.teams[team_id],
            "updated_users": [dict(proxy.users[m["user_id"]]) for m in added],
            "updated_team_memberships": [],
        }


def _member_user(proxy: StandIn, member: dict[str, Any], team_id: str) -> dict[str, Any]:
    if member.get("user_id"):
        user = proxy.users.get(member["user_id"]) or proxy._insert_user(
            member["user_id"], member.get("user_email"), "internal_user", []
        )
    else:
        wanted = (member.get("user_email") or "").lower()
        found = [  # 1.80 looks the email up case-sensitively; 1.108 ignores case
            u
            for u in proxy.users.values()
            if u["user_email"] == member.get("user_email")
            or (not proxy.old and (u["user_email"] or "").lower() == wanted)
        ]
        if len(found) > 1:
            raise Answer(
                400, {"detail": {"error": "Multiple users with this email found in db. Please use 'user_id' instead."}}
            )
        user = (
            found[0] if found else proxy._insert_user(str(uuid.uuid4()), member.get("user_email"), "internal_user", [])
        )
    if proxy.old or team_id not in user["teams"]:
        user["teams"].append(team_id)  # 1.80 pushes even when the team is listed already
    return user


def team_member_delete(proxy: StandIn, body: dict[str, Any]) -> Any:
    team_id, user_id, email = body.get("team_id"), body.get("user_id"), body.get("user_email")
    if not user_id and not email:
        raise Answer(400, {"detail": {"error": "Either user_id or user_email needs to be passed in"}})
    with proxy.lock:
        team = proxy.teams.get(team_id)
        if team is None:
            raise Answer(400, {"detail": {"error": f"Team id={team_id} does not exist in db"}})
        member = next(
            (
                m
                for m in team["members_with_roles"]
                if (user_id and m["user_id"] == user_id) or (email and m["user_email"] == email)
            ),
            None,
        )
        if member is None:
            raise Answer(400, {"detail": {"error": "User not found in team"}})
        gone = member["user_id"]
    proxy.write_roster(team_id, lambda roster: [m for m in roster if m["user_id"] != gone])
    with proxy.lock:
        if gone in proxy.users:
            proxy.users[gone]["teams"] = [t for t in proxy.users[gone]["teams"] if t != team_id]
        for token in [t for t, k in proxy.keys.items() if k["user_id"] == gone and k["team_id"] == team_id]:
            del proxy.keys[token]
        proxy.changed()
        return dict(proxy.teams[team_id])


# -- /key -----------------------------------------------------------------------------------------


def key_generate(proxy: StandIn, body: dict[str, Any]) -> Any:
    alias = body.get("key_alias")
    with proxy.lock:
        if alias and any(k["key_alias"] == alias for k in proxy.keys.values()):
            raise _error(
                400,
                f"Key with alias '{alias}' already exists. Unique key aliases across all keys are required.",
                "bad_request_error",
                "key_alias",
            )
        raw, row = proxy._insert_key(body.get("user_id"), body.get("team_id"), alias, body.get("duration"))
        return {**row, "key": raw, "token_id": row["token"]}


def key_block(proxy: StandIn, body: dict[str, Any], blocked: bool = True) -> Any:
    with proxy.lock:
        wanted = body.get("key") or ""
        token = key_hash(wanted) if wanted.startswith("sk-") else wanted
        if token not in proxy.keys:
            raise _error(404, f"Key not found. Passed key={wanted}", "not_found_error")
        proxy.keys[token]["blocked"] = blocked
        proxy.changed()
        return dict(proxy.keys[token])


def key_unblock(proxy: StandIn, body: dict[str, Any]) -> Any:
    return key_block(proxy, body, blocked=False)


def models_list(proxy: StandIn, _query: dict[str, str]) -> Any:
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "openai"} for name in proxy.models]}


def key_list(proxy: StandIn, query: dict[str, str]) -> Any:
    page = _int_param(query, "page", 1, low=1)
    size = _int_param(query, "size", 10, low=1, high=100)
    with proxy.lock:
        key = ("keys", tuple(sorted((k, v) for k, v in query.items() if k not in ("page", "size"))))
        tokens = proxy._cache.get(key)
        if tokens is None:
            rows = [
                k
                for k in proxy.keys.values()
                if all(not query.get(f) or k[f] == query[f] for f in ("user_id", "team_id", "key_alias"))
            ]
            rows.sort(key=lambda k: (k["created_at"], k["token"]), reverse=True)
            tokens = proxy._cache[key] = [k["token"] for k in rows]
        chosen = tokens[(page - 1) * size : page * size]
        full = query.get("return_full_object") == "true"
        items = [dict(proxy.keys[t]) if full else t for t in chosen]
        return {
            "keys": items,
            "total_count": len(tokens),
            "current_page": page,
            "total_pages": math.ceil(len(tokens) / size),
        }


def key_info(proxy: StandIn, query: dict[str, str], caller: str) -> Any:
    with proxy.lock:
        wanted = query.get("key")
        token = (key_hash(wanted) if wanted.startswith("sk-") else wanted) if wanted else caller
        if token == "admin" or token not in proxy.keys:
            raise _error(404, "Key not found in database", "not_found_error")
        if caller not in ("admin", token):
            raise _error(403, "You are not allowed to access this key's info.", "auth_error")
        info = {k: v for k, v in proxy.keys[token].items() if k != "token"}
        return {"key": wanted or token, "info": {**info, "status": "active"}}


def key_delete(proxy: StandIn, body: dict[str, Any]) -> Any:
    keys, aliases = body.get("keys"), body.get("key_aliases")
    if not keys and not aliases:
        raise _invalid(["body"], "Value error, At least one of 'keys' or 'key_aliases' must be provided.")
    with proxy.lock:
        if keys:
            tokens = [key_hash(k) if k.startswith("sk-") else k for k in keys]
            found = [t for t in tokens if t in proxy.keys]
        else:
            found = [t for t, k in proxy.keys.items() if k["key_alias"] in aliases]
        if not found:
            raise _wrapped(proxy, 404, "No keys found")
        for token in found:
            proxy.keys.pop(token, None)
        proxy.changed()
        return {"deleted_keys": keys or aliases}


def _int_param(query: dict[str, str], name: str, default: int, *, low: int, high: int | None = None) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise _invalid(
            ["query", name], "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
        ) from None
    if value < low:
        raise _invalid(["query", name], f"Input should be greater than or equal to {low}", "greater_than_equal")
    if high is not None and value > high:
        raise _invalid(["query", name], f"Input should be less than or equal to {high}", "less_than_equal")
    return value


ROUTES = {
    ("POST", "/user/new"): user_new,
    ("GET", "/user/list"): user_list,
    ("GET", "/user/info"): user_info,
    ("POST", "/user/update"): user_update,
    ("POST", "/user/delete"): user_delete,
    ("POST", "/invitation/new"): invitation_new,
    ("POST", "/team/new"): team_new,
    ("GET", "/team/list"): team_list,
    ("GET", "/team/info"): team_info,
    ("POST", "/team/member_add"): team_member_add,
    ("POST", "/team/member_delete"): team_member_delete,
    ("POST", "/key/generate"): key_generate,
    ("GET", "/key/list"): key_list,
    ("POST", "/key/delete"): key_delete,
    ("POST", "/key/block"): key_block,
    ("POST", "/key/unblock"): key_unblock,
    ("POST", "/team/update"): team_update,
    ("POST", "/team/delete"): team_delete,
    ("GET", "/v1/models"): models_list,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections when 8 workers connect at once


def _fault_answer(fault: Fault) -> tuple[int, Any, dict[str, str]]:
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    message = "Rate limit exceeded" if fault.status == 429 else "Service unavailable"
    return (
        fault.status,
        {"error": {"message": message, "type": "None", "param": None, "code": str(fault.status)}},
        headers,
    )


def _handler_for(proxy: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
        disable_nagle_algorithm = True  # as uvicorn: no 40 ms wait between the headers and the body

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the stand-in counts requests instead of printing them."""

        def setup(self) -> None:
            super().setup()
            with proxy.lock:
                proxy._connections.add(self.connection)

        def finish(self) -> None:
            with proxy.lock:
                proxy._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:  # the client died mid-request: like uvicorn, nothing is handled
                self.close_connection = True
                return
            path = urlsplit(self.path).path
            if proxy.latency:
                time.sleep(proxy.latency)
            fault = proxy.fault_for(path)
            action = fault.action if fault else ""
            if fault and action == "status":
                status, payload, headers = _fault_answer(fault)
            elif action == "drop_before":
                status, payload, headers = 0, None, {}
            else:
                if fault and action == "delay_before":
                    time.sleep(fault.seconds)
                if fault and fault.call:
                    fault.call()
                try:
                    status, payload, headers = proxy.handle(method, self.path, self.headers, body)
                except Answer as answer:
                    status, payload, headers = answer.status, answer.body, answer.headers
            with proxy.lock:
                proxy.log.append((method, path, status))
            if fault and action == "delay_after":
                time.sleep(fault.seconds)
            if action in ("drop_before", "drop_after"):
                self._drop()
            else:
                self._send(status, payload, headers)

        def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


def main() -> None:
    cli = argparse.ArgumentParser(description="Run the LiteLLM stand-in until Ctrl-C; prints its URL and master key.")
    cli.add_argument("--port", type=int, default=4000, help="0 picks a free port (default: %(default)s)")
    cli.add_argument("--release", default="1.108.7", help="answer as this LiteLLM release: 1.108.7 or 1.80.7")
    cli.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    cli.add_argument("--teams", default="", help="comma-separated aliases of teams to start with")
    args = cli.parse_args()
    proxy = StandIn(release=args.release, latency=args.latency, port=args.port).start()
    for alias in filter(None, args.teams.split(",")):
        proxy.seed_team(alias)
    print(f"LITELLM_BASE_URL={proxy.url}")
    print(f"LITELLM_MASTER_KEY={proxy.master_key}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    proxy.stop()


if __name__ == "__main__":
    main()
