"""A LiteLLM Proxy stand-in: a small HTTP server on 127.0.0.1 that answers the /user, /team, /key,
/invitation, bulk, model and health endpoints the way the real releases do, with their status
codes and error shapes (../shared/litellm-api.md, and the answers recorded from real 1.65.8,
1.80.7, 1.108.7 and 1.110.2 proxies; tests/test_client_contract.py pins each one against a real
proxy).

- release: "1.65.8", "1.80.7", "1.108.7" (default) or "1.110.2". What differs between them is
  a set of named properties of StandIn (old, rosters_locked, lean_user_list, ...), each saying what
  it changes; the endpoint functions ask those, never the version.
- Faults: latency on every request, and per path: a status (with Retry-After), a dropped
  connection before or after the work, a slow answer, someone else acting first.
- It counts requests, so tests can assert how many were made.

Standalone, for trying the tools without a proxy:  python -m tests.support.standin [--port 4000] [--release 1.80.7]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MASTER_KEY = "sk-standin-master-key"
RELEASES = ("1.65.8", "1.80.7", "1.108.7", "1.110.2")
ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")
ROLE_LITERALS = (
    "Input should be <LitellmUserRoles.PROXY_ADMIN: 'proxy_admin'>, <LitellmUserRoles.PROXY_ADMIN_VIEW_ONLY: "
    "'proxy_admin_viewer'>, <LitellmUserRoles.INTERNAL_USER: 'internal_user'> or "
    "<LitellmUserRoles.INTERNAL_USER_VIEW_ONLY: 'internal_user_viewer'>"
)
USER_SORT_COLUMNS = ("user_id", "user_email", "created_at", "spend", "user_alias", "user_role")
OLD_ROSTER_RACE_SECONDS = 0.01  # how long an old release holds a roster copy before writing it back
BULK_LIMIT = 500  # items per request on every bulk endpoint
# what a wildcard route such as "openai/*" expands to in /v1/models (real proxies know ~200 models)
WILDCARD_MODELS = {"openai": ("gpt-4o", "gpt-4o-mini", "o3"), "anthropic": ("claude-3-5-sonnet", "claude-3-haiku")}
ENTERPRISE_ONLY = (
    "This feature is only available for LiteLLM Enterprise users: {}. You must be a LiteLLM Enterprise user to "
    "use this feature. If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key "
    "here: https://www.litellm.ai/enterprise#trial. \nPricing: https://www.litellm.ai/#pricing"
)


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
    watch: bool = False  # a hook that only looks at requests (StandIn.watch): it need not fire

    @property
    def fired(self) -> bool:
        return self.seen > self.skip


class StandIn:
    """State of one fake proxy, and the server that answers for it.

    access_groups: model name -> the access groups it belongs to (model_info.access_groups);
    wildcard_routes: deployments such as "openai/*"; proxy_base_url: PROXY_BASE_URL, as the UI
    config reports it. The launcher's real proxies have none of the three.
    """

    def __init__(
        self,
        *,
        release: str = "1.108.7",
        latency: float = 0.0,
        master_key: str = MASTER_KEY,
        port: int = 0,
        tls: tuple[str, str] | None = None,
        proxy_base_url: str | None = None,
        access_groups: Mapping[str, Sequence[str]] | None = None,
        wildcard_routes: Sequence[str] = (),
        licensed: bool = False,
    ):
        if release not in RELEASES:
            raise ValueError(f"release {release!r}: the stand-in answers as one of {', '.join(RELEASES)}")
        self.release = release
        self._version = tuple(int(part) for part in release.split("."))
        self.latency = latency
        self.master_key = master_key
        self.port = port
        self.tls = tls  # (certificate file, key file): serve HTTPS
        self.proxy_base_url = proxy_base_url
        self.access_groups = {name: list(groups) for name, groups in (access_groups or {}).items()}
        self.wildcard_routes = list(wildcard_routes)
        self.licensed = licensed  # LITELLM_LICENSE set: team admins can be assigned (the launcher's proxies have none)
        self.users: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {}  # by hash
        self.invitations: dict[str, dict[str, Any]] = {}
        self.issued: list[str] = []  # every raw key handed out, for tests that look for leaks
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every answered request
        self.faults: list[Fault] = []
        self.models = ["gpt-4o", "claude-3-5-sonnet", "llama-3-8b"]  # what the launcher's real proxy serves
        self.unblock_hashes_again = False  # as 1.74.15's /key/unblock does (a release between those served)
        self.replicas_without_redis = False  # what /health/readiness/details says of several processes, no Redis
        self.changed_by: list[tuple[str, str | None]] = []  # each write's path and litellm-changed-by header
        self.lock = threading.RLock()
        self._team_locks: dict[str, threading.Lock] = {}
        self.emails: Counter[str] = Counter()  # lower-cased, for the duplicate check
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    # -- what differs between releases (each seen on the real releases it names) ------------

    def _since(self, major: int, minor: int) -> bool:
        return self._version >= (major, minor)

    @property
    def old(self) -> bool:
        """1.65.8, 1.80.7: a duplicate email is 400 (409 later), an unknown user's /user/info an
        empty 200 (404 later), /user/new with a known user_id makes a key (409 later), and
        member_add pushes the team onto user.teams even when it is listed there already."""
        return not self._since(1, 81)

    @property
    def admins_need_licence(self) -> bool:
        """From 1.74: /team/member_update refuses role admin without LITELLM_LICENSE (1.74.15, 1.80.7 and
        later refuse; 1.65.8 sets it; the releases between are taken to be like 1.74.15)."""
        return self._since(1, 74)

    @property
    def user_delete_cleans_rosters(self) -> bool:
        """From 1.80: /user/delete takes the user off its teams' rosters (1.65.8 leaves it there,
        and member_delete takes it off)."""
        return self._since(1, 80)

    @property
    def rosters_locked(self) -> bool:
        """1.108.7, 1.110.2 (from 1.100): a team's roster is written under a lock. Before, it is read,
        changed and written back, so parallel writes to one team lose members (measured on 1.80.7)."""
        return self._since(1, 100)

    @property
    def public_version(self) -> bool:
        """1.65.8, 1.80.7: the public /health/readiness shows litellm_version, /health/readiness/
        details is 404, and answers carry `server: uvicorn`. Later only details (master key) tell."""
        return not self._since(1, 100)

    @property
    def legacy_errors(self) -> bool:
        """1.65.8, 1.80.7: error bodies say param "None" (null later, but for auth errors), a 500's
        message starts "Internal Server Error, ", and a blocked key is told "if you're admin."."""
        return not self._since(1, 100)

    @property
    def status_error_types(self) -> bool:
        """1.110.2: an error's type follows its status (invalid_request_error below 500) and
        param is null everywhere; /user/update errors lose their "Authentication Error, "."""
        return self._since(1, 110)

    @property
    def lean_user_list(self) -> bool:
        """1.65.8: /user/list ignores user_email, team, sort_by and sort_order; role is a
        case-insensitive substring; one user_ids value is exact (a substring later); its rows
        carry no created_at/updated_at."""
        return not self._since(1, 74)

    @property
    def list_rows_show_parallel(self) -> bool:
        """From 1.90 (seen on 1.90.7): /user/list rows have max_parallel_requests (stored before, not listed)."""
        return self._since(1, 90)

    @property
    def emails_case_sensitive(self) -> bool:
        """1.65.8: /user/new's duplicate-email check is exact, so A@x.com and a@x.com both exist."""
        return not self._since(1, 74)

    @property
    def user_new_writes_rosters(self) -> bool:
        """From 1.80.7: /user/new with teams=[...] puts the user on their rosters. 1.65.8 writes
        only the user's own teams list (team_id=... writes the roster on every release)."""
        return self._since(1, 74)

    @property
    def terse_user_new_answer(self) -> bool:
        """1.65.8: /user/new's answer says key_alias and max_parallel_requests are null (both are stored)."""
        return not self._since(1, 74)

    @property
    def update_sets_alias_and_zero(self) -> bool:
        """From 1.80: /user/update takes user_alias, and 0 for a budget or limit (1.65.8 has no such
        field, and ignores 0 as it ignores null, [] and {})."""
        return self._since(1, 80)

    @property
    def update_clears_with_null(self) -> bool:
        """1.108.7, 1.110.2: /user/update with null clears max_budget, budget_duration, tpm_limit
        and rpm_limit (ignored before, as null is for every other field; 1.90.7 and 1.100.5 clear
        max_budget only)."""
        return self._since(1, 108)

    @property
    def update_by_email_answers(self) -> bool:
        """1.65.8: /user/update with an unknown email alone creates the user and answers 200 with
        the bare row. Later it creates the user too, then fails with 400."""
        return not self._since(1, 74)

    @property
    def budget_duration_rule(self) -> str:
        """How budget_duration is checked: "parse" (1.65.8: an unknown unit fails /user/new with
        500, /user/update with 400), "lax" (1.80.7: anything goes but N months, N != 1),
        "strict" (1.108.7, 1.110.2: 400 unless it is a duration that resets, words included)."""
        if not self._since(1, 74):
            return "parse"
        return "strict" if self._since(1, 100) else "lax"

    @property
    def negative_limits_refused(self) -> bool:
        """1.110.2: tpm_limit and rpm_limit below 0 are 422 (stored as sent before)."""
        return self._since(1, 110)

    @property
    def raw_handler_errors(self) -> bool:
        """1.65.8: member_add's "already in team" and /invitation/new's unknown user come out as
        {"detail": {"error": ...}} (shape B); later as {"error": {...}} (shape A)."""
        return not self._since(1, 74)

    @property
    def member_delete_deletes_keys(self) -> bool:
        """From 1.80: /team/member_delete deletes the user's keys for that team (1.65.8 keeps them,
        and takes one occurrence of the team off user.teams)."""
        return self._since(1, 80)

    @property
    def member_update_refuses_strangers(self) -> bool:
        """1.108.7, 1.110.2: /team/member_update of a user not on the roster is a 404 (1.100.5 and
        before: a 200 that changes nothing)."""
        return self._since(1, 108)

    @property
    def hydrated_rosters(self) -> bool:
        """1.108.7, 1.110.2: roster entries of members added by user_id carry their email."""
        return self._since(1, 100)

    @property
    def updated_users_before_add(self) -> bool:
        """1.108.7, 1.110.2: member_add's updated_users show an existing user as it was before."""
        return self._since(1, 100)

    @property
    def team_rows_dated(self) -> bool:
        """From 1.80.7: team rows (/team/new, /team/list, /team/info) carry updated_at. 1.65.8
        stores it (the /team/update answer has it) but never shows it there."""
        return self._since(1, 74)

    @property
    def team_update_error_wrapped(self) -> bool:
        """From 1.90 (seen on 1.90.7): /team/update of an unknown team is 404 shape A (shape B before)."""
        return self._since(1, 90)

    @property
    def unknown_key_is_404(self) -> bool:
        """From 1.90 (seen on 1.90.7): /key/block of an unknown key is 404 not_found_error (401 before)."""
        return self._since(1, 90)

    @property
    def unknown_key_delete_ok(self) -> bool:
        """1.65.8: /key/delete of unknown keys answers 200 (404 "No keys found" later)."""
        return not self._since(1, 74)

    @property
    def pages_teams(self) -> bool:
        """From 1.74: /v2/team/list (a substring alias filter, paginated)."""
        return self._since(1, 74)

    @property
    def bulk_user_update(self) -> bool:
        """From 1.80: /user/bulk_update."""
        return self._since(1, 80)

    @property
    def bulk_users(self) -> bool:
        """1.108.7, 1.110.2: /management/v1/users/bulk, /management/v1/users/bulk_delete and
        /key/bulk_update (1.100.5 has none of them)."""
        return self._since(1, 108)

    @property
    def lists_key_aliases(self) -> bool:
        """From 1.80: /key/aliases (1.65.8 has none)."""
        return self._since(1, 80)

    @property
    def pages_key_aliases(self) -> bool:
        """1.108.7, 1.110.2: /key/aliases a page at a time, with a search (1.80.7 sends every alias
        at once; 1.65.8 has no /key/aliases)."""
        return self._since(1, 108)

    @property
    def has_ui_config(self) -> bool:
        """From 1.74 (seen on 1.74.15): /.well-known/litellm-ui-config (1.108.7 adds gateway_base_url and more)."""
        return self._since(1, 74)

    @property
    def model_access_groups(self) -> bool:
        """From 1.80.7: /v1/models?include_model_access_groups=true lists the groups too."""
        return self._since(1, 80)

    @property
    def lists_wildcard_routes(self) -> bool:
        """1.80.7: /v1/models lists a wildcard route ("openai/*") itself, and again with
        return_wildcard_routes=true; the others only with return_wildcard_routes=true."""
        return self._since(1, 74) and not self._since(1, 100)

    def serves(self, path: str) -> bool:
        """Whether this release has the path at all (404 {"detail": "Not Found"} if not)."""
        needs = {
            "/health/readiness/details": not self.public_version,
            "/v2/team/list": self.pages_teams,
            "/user/bulk_update": self.bulk_user_update,
            "/management/v1/users/bulk": self.bulk_users,
            "/management/v1/users/bulk_delete": self.bulk_users,
            "/key/bulk_update": self.bulk_users,
            "/key/aliases": self.lists_key_aliases,
        }
        return needs.get(path, True)

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

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """Stop; and fail the test if a fault it injected never fired (the request it aimed at went
        elsewhere: a bulk endpoint, a look-up instead of a listing), unless the test failed already."""
        self.stop()
        unfired = [fault for fault in self.faults if not fault.fired and not fault.watch]
        if exc_type is None and unfired:
            raise AssertionError(f"faults that never fired (their requests went elsewhere?): {unfired}")

    # -- test controls -----------------------------------------------------------------------

    def fail(self, path: str, action: str = "status", **options: Any) -> Fault:
        """Inject a fault into the requests for a path; the test fails if it never fires."""
        fault = Fault(path, action, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def watch(self, path: str, call: Callable[[], None]) -> Fault:
        """Call this before each request for a path is handled (to look, not to break anything)."""
        return self.fail(path, "call", times=10**9, call=call, watch=True)

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
        """Put a user on the proxy directly (no request counted), with keys if asked: the team's
        keys where the user has one team, as add_user.py makes them."""
        with self.lock:
            user = self._insert_user(user_id or str(uuid.uuid4()), email, role, list(teams))
            for team_id in teams:
                self.teams[team_id]["members_with_roles"].append(
                    {"user_id": user["user_id"], "user_email": email, "role": "user"}
                )
            for _ in range(keys):
                self._insert_key(user["user_id"], teams[0] if len(teams) == 1 else None, None)
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
        if path in PUBLIC_ROUTES:
            return 200, PUBLIC_ROUTES[path](self), {}
        route = ROUTES.get((method, path))
        if (route is None and (method, path) not in KEY_ROUTES) or not self.serves(path):
            raise Answer(404, {"detail": "Not Found"})  # FastAPI answers an unknown route before any auth
        caller = self._authenticate(headers.get("Authorization"))
        if method == "POST":
            with self.lock:  # who the audit log would name as the author (litellm-changed-by)
                self.changed_by.append((path, headers.get("litellm-changed-by")))
        if (method, path) in KEY_ROUTES:
            return 200, KEY_ROUTES[(method, path)](self, query, caller), {}
        if caller != "admin":
            if path == "/user/list":
                raise Answer(403, {"detail": {"error": "Only proxy admins and organization admins can list users."}})
            raise self.auth_error(
                "Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
                f"keys/users/teams. Route={path}."
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
        assert route is not None
        return 200, route(self, query if method == "GET" else payload), {}

    def _authenticate(self, header: str | None) -> str:
        if not header:
            raise self.auth_error("Authentication Error, No api key passed in.")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise self.auth_error("Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.")
        token = header[7:].strip()
        if secrets.compare_digest(token, self.master_key):
            return "admin"
        with self.lock:
            key = self.keys.get(key_hash(token))
            if key and key.get("blocked"):
                admin = "admin" if self.legacy_errors else "an admin"
                raise self.auth_error(
                    f"Authentication Error, Key is blocked. Update via `/key/unblock` if you're {admin}."
                )
            if key:
                return key_hash(token)
        raise _error(401, "Authentication Error, Invalid API key provided.", "token_not_found_in_db", "key")

    # -- error shapes ------------------------------------------------------------------------

    def auth_error(self, message: str, status: int = 401) -> Answer:
        """The auth layer's refusal (shape A, type auth_error)."""
        return _error(status, message, "auth_error", None if self.status_error_types else "None")

    def handler_error(self, status: int, message: str) -> Answer:
        """A handler's exception after handle_exception_on_proxy (shape A)."""
        if self.status_error_types:
            return _error(status, message, "invalid_request_error" if status < 500 else "internal_server_error")
        return _error(status, message, param="None" if self.legacy_errors else None)

    def wrapped(self, status: int, message: str) -> Answer:
        """A handler's HTTPException(detail={'error': ...}): its message is the repr of that dict."""
        return self.handler_error(status, "{'error': " + repr(message) + "}")

    def crashed(self, message: str) -> Answer:
        """An exception the handler did not expect: 500."""
        return self.handler_error(500, ("Internal Server Error, " if self.legacy_errors else "") + message)

    def update_refused(self, status: int, message: str, *, wrapped: bool = False) -> Answer:
        """/user/update's errors go through the auth layer's handler: type auth_error and, for a
        plain exception, "Authentication Error, " before the message (not on 1.110.2)."""
        if wrapped:
            message = "{'error': " + repr(message) + "}"
        if self.status_error_types:
            return _error(status, message, "invalid_request_error")
        return _error(status, message if wrapped else f"Authentication Error, {message}", "auth_error", "None")

    # -- bookkeeping -------------------------------------------------------------------------

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

    def email_taken(self, email: str) -> bool:
        if self.emails_case_sensitive:
            return any(u["user_email"] == email for u in self.users.values())
        return self.emails[email.strip().lower()] > 0

    # -- rows --------------------------------------------------------------------------------

    def _insert_user(
        self, user_id: str, email: str | None, role: str | None, teams: list[str], stamp: str | None = None
    ) -> dict[str, Any]:
        stamp = stamp or now()
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
            "budget_duration": None,
            "budget_reset_at": None,
            "tpm_limit": None,
            "rpm_limit": None,
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
        self, user_id: str | None, team_id: str | None, alias: str | None, expires: str | None = None
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
            "budget_duration": None,
            "expires": expires,
            "blocked": None,
            "models": [],
            "tpm_limit": None,
            "rpm_limit": None,
            "max_parallel_requests": None,
            "user_id": user_id,
            "team_id": team_id,
            "metadata": {},
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.keys[row["token"]] = row
        self.changed()
        return raw, row

    def _user_key(self, user: dict[str, Any], team_id: str | None, alias: str | None, expires: str | None) -> Any:
        """The key /user/new makes: it copies the user's models, limits and metadata (not the budget)."""
        raw, key = self._insert_key(user["user_id"], team_id, alias, expires)
        key.update({field: _copy(user[field]) for field in KEY_COPIES})
        return raw, key

    def user_row(self, user: dict[str, Any]) -> dict[str, Any]:
        """A /user/list row."""
        row = {**user, "teams": list(user["teams"]), "key_count": self.key_counts()[user["user_id"]]}
        if not self.list_rows_show_parallel:
            del row["max_parallel_requests"]
        if self.lean_user_list:
            del row["created_at"], row["updated_at"]
        return row

    def team_row(self, team: dict[str, Any]) -> dict[str, Any]:
        row = {**team, "members_with_roles": [dict(m) for m in team["members_with_roles"]]}
        if not self.team_rows_dated:
            del row["updated_at"]
        return row

    def team_lock(self, team_id: str) -> threading.Lock:
        with self.lock:
            return self._team_locks.setdefault(team_id, threading.Lock())

    def write_roster(self, team_id: str, change: Any) -> None:
        """Change a team's roster: under a per-team lock from 1.100 on; before that, a copy is
        read, held a moment and written back, so concurrent writers lose each other's members."""
        if self.rosters_locked:
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

    def join(self, team_id: str, user: dict[str, Any]) -> None:
        """Put a user on a team's roster (as /user/new and the bulk create do)."""
        entry = {"user_id": user["user_id"], "user_email": user["user_email"], "role": "user"}
        self.write_roster(team_id, lambda roster: [*roster, entry])

    def leave(self, team_ids: Sequence[str], user_ids: set[str]) -> None:
        for team_id in team_ids:
            if team_id in self.teams:
                self.write_roster(team_id, lambda roster: [m for m in roster if m["user_id"] not in user_ids])


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def _error(status: int, message: str, error_type: str = "internal_server_error", param: str | None = None) -> Answer:
    """The OpenAI-style error shape (A)."""
    return Answer(status, {"error": {"message": message, "type": error_type, "param": param, "code": str(status)}})


def _invalid(loc: list[Any], msg: str, error_type: str = "value_error") -> Answer:
    """FastAPI's validation error (shape C)."""
    return Answer(422, {"detail": [{"type": error_type, "loc": loc, "msg": msg}]})


def _problem(detail: str) -> Answer:
    """/management/v1's RFC 9457 problem (shape D) for a body its extra="forbid" models refuse."""
    body = {"type": "urn:litellm:error:invalid-request-body", "title": "Invalid request body", "status": 422}
    return Answer(422, {**body, "detail": detail}, {"Content-Type": "application/problem+json"})


# -- durations ------------------------------------------------------------------------------------

DURATION = re.compile(r"(\d+)(mo|[smhdw]?)")  # duration_in_seconds: a prefix match, so "30days" is 30d
RESET_DURATION = re.compile(r"(\d+)([a-z]+)")  # get_budget_reset_time's own parse
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 30 * 86400}
DURATION_WORDS = {"hourly": "1h", "daily": "24h", "weekly": "7d", "monthly": "30d"}  # 1.108.7 on
BAD_BUDGET_DURATION = "Invalid budget_duration '{}'. Use a format like '1h', '24h', '7d', or '30d'."
MONTHS_BUT_ONE = "Monthly resets currently only support 1 month intervals"


def duration_seconds(text: str) -> int:
    """LiteLLM's duration_in_seconds: s, m, h, d, w, mo; '1.5h', '30', '30D' have no unit it knows."""
    match = DURATION.match(text)
    if not match:
        raise ValueError("Invalid duration format")
    number, unit = match.groups()
    if not unit:
        raise ValueError(f"Unsupported duration unit, passed duration: {text}")
    return int(number) * UNIT_SECONDS[unit]


def _months_but_one(text: str) -> bool:
    """'3mo': budget resets only know one month (1.80.7 on)."""
    match = RESET_DURATION.match(text)
    return bool(match) and match.group(2) == "mo" and int(match.group(1)) != 1


def budget_duration_problem(proxy: StandIn, text: str) -> str | None:
    """What this release says about a budget_duration it cannot use; None if it takes it."""
    rule = proxy.budget_duration_rule
    if rule == "lax":
        return MONTHS_BUT_ONE if _months_but_one(text) else None
    spelled = DURATION_WORDS.get(text, text) if rule == "strict" else text
    try:
        seconds = duration_seconds(spelled)
    except ValueError as exc:
        return str(exc) if rule == "parse" else BAD_BUDGET_DURATION.format(text)
    if rule == "strict" and (seconds <= 0 or _months_but_one(spelled)):
        return BAD_BUDGET_DURATION.format(text)
    return None


def key_expiry(proxy: StandIn, duration: str | None) -> str | None:
    """A key's expires for its duration; an unknown unit is a 500 (1.80.7: next midnight)."""
    if not duration:
        return None
    if proxy.budget_duration_rule == "lax" and _months_but_one(duration):
        raise proxy.crashed(MONTHS_BUT_ONE)
    try:
        seconds = duration_seconds(duration)
    except ValueError as exc:
        if proxy.budget_duration_rule != "lax":
            raise proxy.crashed(str(exc)) from None
        midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight + timedelta(days=1)).isoformat()
    return datetime.fromtimestamp(time.time() + seconds, timezone.utc).isoformat()


# -- /user ----------------------------------------------------------------------------------------

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
KEY_COPIES = ("models", "tpm_limit", "rpm_limit", "max_parallel_requests", "metadata")
CLEARED_BY_NULL = ("max_budget", "budget_duration", "tpm_limit", "rpm_limit")  # 1.108 on; the others ignore null
NEW_USER_FIELDS = (  # NewUserRequest, as far as a client of these tools sends it
    *USER_FIELDS,
    "user_id",
    "user_email",
    "user_role",
    "teams",
    "team_id",
    "auto_create_key",
    "send_invite_email",
    "key_alias",
    "duration",
    "spend",
    "blocked",
    "sso_user_id",
    "organizations",
    "aliases",
    "config",
    "permissions",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
    "guardrails",
    "allowed_cache_controls",
)


def _check_user_fields(proxy: StandIn, body: dict[str, Any], loc: tuple[Any, ...] = ("body",)) -> None:
    """What pydantic refuses in a user's fields (422): a role, a type, a negative limit (1.110.2)."""
    role = body.get("user_role")
    if role is not None and role not in ROLES:
        raise _invalid([*loc, "user_role"], ROLE_LITERALS, "literal_error")
    for field in ("tpm_limit", "rpm_limit", "max_parallel_requests"):
        value = body.get(field)
        if isinstance(value, str):
            raise _invalid(
                [*loc, field], "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
            )
        if isinstance(value, float) and not value.is_integer():
            raise _invalid(
                [*loc, field], "Input should be a valid integer, got a number with a fractional part", "int_from_float"
            )
        if value is not None and not isinstance(value, (int, float)):
            raise _invalid([*loc, field], "Input should be a valid integer", "int_type")
        if field != "max_parallel_requests" and proxy.negative_limits_refused and value is not None and value < 0:
            raise _invalid([*loc, field], "Input should be greater than or equal to 0", "greater_than_equal")
    budget = body.get("max_budget")
    if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool)):
        raise _invalid([*loc, "max_budget"], "Input should be a valid number", "float_type")
    if body.get("models") is not None and not isinstance(body["models"], list):
        raise _invalid([*loc, "models"], "Input should be a valid list", "list_type")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise _invalid([*loc, "metadata"], "Input should be a valid dictionary", "dict_type")


def _check_new_budget_duration(proxy: StandIn, body: dict[str, Any]) -> None:
    problem = body.get("budget_duration") and budget_duration_problem(proxy, body["budget_duration"])
    if problem:
        raise proxy.wrapped(400, problem) if proxy.budget_duration_rule == "strict" else proxy.crashed(problem)


def user_new(proxy: StandIn, body: dict[str, Any]) -> Any:
    _check_user_fields(proxy, body)
    _check_new_budget_duration(proxy, body)
    email = body.get("user_email")
    team_id = body.get("team_id")
    teams = [t for t in body.get("teams") or [] if isinstance(t, str)]
    with_key = body.get("auto_create_key", True)
    expires = key_expiry(proxy, body.get("duration")) if with_key else None
    with proxy.lock:
        user_id = body.get("user_id")
        if user_id and user_id in proxy.users:
            if not proxy.old:
                raise proxy.wrapped(409, f"User with id {user_id} already exists")
            raw, key = proxy._insert_key(user_id, team_id, body.get("key_alias"), expires) if with_key else ("", None)
            return _new_user_answer(proxy, proxy.users[user_id], raw, key, None)  # a new key, nothing else
        if email and proxy.email_taken(email):
            raise proxy.wrapped(400 if proxy.old else 409, f"User with email {email} already exists")
        own_teams = [] if team_id or proxy.rosters_locked else list(teams)  # old releases write the list as sent
        user = proxy._insert_user(user_id or str(uuid.uuid4()), email, body.get("user_role"), own_teams)
        for field in USER_FIELDS:
            if body.get(field) is not None:
                user[field] = _copy(body[field])
        user["team_id"] = team_id
        raw, key = proxy._user_key(user, team_id, body.get("key_alias"), expires) if with_key else ("", None)
    rosters = [team_id] if team_id else teams if proxy.user_new_writes_rosters else []
    joined = [team for team in rosters if team in proxy.teams]
    for team in joined:
        proxy.join(team, user)
    with proxy.lock:
        user["teams"] = list(dict.fromkeys([*user["teams"], *joined]))
        proxy.changed()
        if proxy.rosters_locked:  # the teams really joined
            answer_teams = joined if team_id or teams else None
        elif proxy.user_new_writes_rosters:
            answer_teams = None
        else:  # 1.65.8 echoes the list it was sent
            answer_teams = body.get("teams")
        return _new_user_answer(proxy, user, raw, key, answer_teams)


def _new_user_answer(
    proxy: StandIn, user: dict[str, Any], raw: str, key: dict[str, Any] | None, teams: list[str] | None
) -> dict[str, Any]:
    answer = {
        **{field: user[field] for field in USER_FIELDS},
        "key_alias": key["key_alias"] if key else None,
        "duration": None,
        "spend": 0.0,
        "user_id": user["user_id"],
        "team_id": key["team_id"] if key else user["team_id"],
        "key": raw,
        "key_name": key["key_name"] if key else None,
        "expires": key["expires"] if key else None,
        "token_id": None,
        "token": None,
        "created_at": key["created_at"] if key else None,
        "updated_at": key["updated_at"] if key else None,
        "user_email": user["user_email"],
        "user_role": user["user_role"],
        "teams": teams,
    }
    if proxy.terse_user_new_answer:
        answer["key_alias"] = answer["max_parallel_requests"] = None
    return answer


def user_list(proxy: StandIn, query: dict[str, str]) -> Any:
    page = _int_param(query, "page", 1, low=1)
    size = _int_param(query, "page_size", 25, low=1, high=100)
    sort_by = None if proxy.lean_user_list else query.get("sort_by")
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
    role = query.get("role")
    if role and proxy.lean_user_list and role.lower() not in (user["user_role"] or "").lower():
        return False
    if role and not proxy.lean_user_list and user["user_role"] != role:
        return False
    if not proxy.lean_user_list:
        if query.get("user_email") and query["user_email"].lower() not in (user["user_email"] or "").lower():
            return False
        if query.get("team") and query["team"] not in user["teams"]:
            return False
    if query.get("user_ids"):
        ids = [i for i in query["user_ids"].split(",") if i]
        if len(ids) == 1 and not proxy.lean_user_list:  # one id is a case-insensitive substring from 1.80 on
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
            raise proxy.handler_error(404, f"User {user_id} not found")
        keys = [dict(k) for k in proxy.keys.values() if k["user_id"] == user_id]
        teams = [proxy.team_row(proxy.teams[t]) for t in user["teams"] if t in proxy.teams]
        return {"user_id": user_id, "user_info": dict(user), "keys": keys, "teams": teams}


def spend_users(proxy: StandIn, query: dict[str, str]) -> Any:
    """The user table as the database holds it, every column (password too), on every release:
    all rows, or [row] ([null] for an unknown id) with user_id."""
    with proxy.lock:
        if query.get("user_id"):
            user = proxy.users.get(query["user_id"])
            return [{**user, "password": None} if user else None]
        return [{**user, "password": None} for user in proxy.users.values()]


class _UpdateFailed(Exception):
    """A /user/update that failed after the proxy may have written (message as the handler has it)."""

    def __init__(self, status: int, message: str, *, wrapped: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.wrapped = wrapped


def user_update(proxy: StandIn, body: dict[str, Any]) -> Any:
    """As LiteLLM's _update_internal_user_params: a field is applied when it is not null, [] or {}
    (nor 0 on 1.65.8); from 1.108 max_budget, budget_duration, tpm_limit and rpm_limit whenever
    sent, so null clears them; metadata replaces the whole object. An unknown user is created."""
    if not isinstance(body, dict) or (not body.get("user_id") and not body.get("user_email")):
        raise _invalid(["body"], "Value error, Either user id or user email must be provided")
    _check_user_fields(proxy, body)
    try:
        return _update_user(proxy, body)
    except _UpdateFailed as failed:
        raise proxy.update_refused(failed.status, failed.message, wrapped=failed.wrapped) from None


def _update_user(proxy: StandIn, body: dict[str, Any]) -> Any:
    duration = body.get("budget_duration")
    problem = duration and budget_duration_problem(proxy, duration)
    if problem:
        raise _UpdateFailed(400, problem, wrapped=proxy.budget_duration_rule == "strict")
    updatable = (
        "user_role",
        "user_email",
        *(f for f in USER_FIELDS if f != "user_alias" or proxy.update_sets_alias_and_zero),
    )
    with proxy.lock:
        if body.get("user_id"):
            user = proxy.users.get(body["user_id"])
        else:
            user = next((u for u in proxy.users.values() if u["user_email"] == body["user_email"]), None)
        created = user is None
        if user is None:  # upsert: an unknown user is created
            user = proxy._insert_user(body.get("user_id") or str(uuid.uuid4()), body.get("user_email"), None, [])
        else:
            user["updated_at"] = now()
        for field, value in body.items():
            ignored = value in (None, [], {}) or (not proxy.update_sets_alias_and_zero and value == 0)
            if field in updatable and (not ignored or (field in CLEARED_BY_NULL and proxy.update_clears_with_null)):
                if field == "user_email" and user["user_email"] != value:
                    if user["user_email"]:
                        proxy.emails[user["user_email"].strip().lower()] -= 1
                    proxy.emails[value.strip().lower()] += 1
                user[field] = _copy(value)
        proxy.changed()
        if created and not body.get("user_id"):  # the email branch: created, then it trips over its own row
            if proxy.update_by_email_answers:
                return dict(user)
            raise _UpdateFailed(400, "'LiteLLM_UserTable' object has no attribute 'get'")
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
    if proxy.user_delete_cleans_rosters:
        proxy.leave(sorted(teams), set(ids))
    with proxy.lock:
        return _forget_users(proxy, ids)


def _forget_users(proxy: StandIn, ids: Sequence[str]) -> int:
    """Delete users with their keys and invitations (the rosters are done)."""
    gone = set(ids)
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
    """An invitation row names its creator, default_user_id: a proxy without that user (before its
    first /team/new) says the invitee does not exist, on every release."""
    with proxy.lock:
        if body.get("user_id") not in proxy.users or "default_user_id" not in proxy.users:
            message = "User id does not exist in 'LiteLLM_UserTable'. Fix this by creating user via `/user/new`."
            if proxy.raw_handler_errors:
                raise Answer(400, {"detail": {"error": message}})
            raise proxy.wrapped(400, message)
        invitation = {
            "id": str(uuid.uuid4()),
            "user_id": body["user_id"],
            "is_accepted": False,
            "accepted_at": None,
            "expires_at": (datetime.now(timezone.utc) + timedelta(days=7)).isoformat(),
            "created_at": now(),
            "created_by": "default_user_id",
            "updated_at": now(),
            "updated_by": "default_user_id",
        }
        proxy.invitations[invitation["id"]] = invitation
        return invitation


# -- bulk users -----------------------------------------------------------------------------------


def users_bulk(proxy: StandIn, body: Any) -> Any:
    """/management/v1/users/bulk: each row as /user/new (auto_create_key false by default), checked
    and answered row by row; the rows created share one created_at. teams=[...] puts the user on
    those rosters; team_id also gives its key to that team."""
    users = _bulk_body(body, "users", allowed=("users",))
    problems = []
    for n, row in enumerate(users):
        if not isinstance(row, dict):
            problems.append(f"users.{n}: Input should be a valid dictionary or instance of BulkNewUserItem")
            continue
        problems += [
            f"users.{n}.{field}: Extra inputs are not permitted" for field in row if field not in NEW_USER_FIELDS
        ]
        if row.get("send_invite_email"):
            problems.append(
                f"users.{n}.send_invite_email: Value error, send_invite_email is not supported on "
                "/management/v1/users/bulk; invite users separately"
            )
    if problems:
        raise _problem("; ".join(problems))
    for n, row in enumerate(users):
        try:
            _check_user_fields(proxy, row, ("users", n))
        except Answer as refused:
            item = refused.body["detail"][0]
            raise _problem(f"{'.'.join(map(str, item['loc']))}: {item['msg']}") from None
    stamp = now()
    results, seen_ids, seen_emails = [], set(), set()
    for row in users:
        email = row.get("user_email")
        user_id = row.get("user_id") or str(uuid.uuid4())
        with proxy.lock:
            error = _bulk_row_problem(proxy, row, user_id, seen_ids, seen_emails)
            seen_ids.add(user_id)
            seen_emails.add((email or "").lower())
            if error:
                results.append(_bulk_result(user_id, email, error=error))
                continue
            teams = [t for t in [*(row.get("teams") or []), row.get("team_id")] if t]
            user = proxy._insert_user(user_id, email, row.get("user_role"), list(dict.fromkeys(teams)), stamp)
            for field in USER_FIELDS:
                if row.get(field) is not None:
                    user[field] = _copy(row[field])
            user["team_id"] = row.get("team_id")
            raw = None
            if row.get("auto_create_key", False):
                expires = key_expiry(proxy, row.get("duration"))
                raw, _ = proxy._user_key(user, row.get("team_id"), row.get("key_alias"), expires)
        for team_id in user["teams"]:
            proxy.join(team_id, user)
        results.append(_bulk_result(user_id, email, teams=list(user["teams"]), key=raw))
    created = sum(1 for r in results if r["success"])
    return {
        "data": results,
        "meta": {"total_requested": len(users), "created": created, "failed": len(users) - created},
    }


def _bulk_row_problem(
    proxy: StandIn, row: dict[str, Any], user_id: str, seen_ids: set[str], seen_emails: set[str]
) -> str | None:
    email = row.get("user_email")
    if email and email.lower() in seen_emails:
        return f"Duplicate user_email in request: {email}"
    if row.get("user_id") and user_id in seen_ids:
        return f"Duplicate user_id in request: {user_id}"
    if user_id in proxy.users:
        return f"User id={user_id} already exists"
    if email and proxy.emails[email.strip().lower()] > 0:
        return f"User email={email} already exists"
    for team_id in [*(row.get("teams") or []), row.get("team_id")]:
        if team_id and team_id not in proxy.teams:
            return f"Team id={team_id} does not exist"
    duration = row.get("budget_duration")
    if duration and budget_duration_problem(proxy, duration):
        return budget_duration_problem(proxy, duration)
    if row.get("auto_create_key") and row.get("duration"):
        try:
            duration_seconds(row["duration"])
        except ValueError as exc:
            return str(exc)
    return None


def _bulk_result(
    user_id: str, email: str | None, *, error: str | None = None, teams: list[str] | None = None, key: str | None = None
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "user_email": email,
        "success": error is None,
        "teams": teams,
        "key": key,
        "error": error,
    }


def _bulk_body(body: Any, field: str, *, allowed: tuple[str, ...], kind: str = "Value") -> list[Any]:
    """The list a /management/v1 bulk body carries, or the 422 problem its model gives (kind:
    "Tuple" where the model declares one)."""
    if not isinstance(body, dict):
        raise _problem("Input should be a valid dictionary or object to extract fields from")
    problems = [] if field in body else [f"{field}: Field required"]
    problems += [f"{name}: Extra inputs are not permitted" for name in body if name not in allowed]
    items = body.get(field)
    if not problems and isinstance(items, str):
        problems.append(f"{field}: 'str' instances are not allowed as a Sequence value")
    elif not problems and not isinstance(items, list):
        problems.append(f"{field}: Input should be a valid list")
    elif not problems and not items:
        problems.append(f"{field}: {kind} should have at least 1 item after validation, not 0")
    elif not problems and len(items) > BULK_LIMIT:
        problems.append(f"{field}: {kind} should have at most {BULK_LIMIT} items after validation, not {len(items)}")
    if problems:
        raise _problem("; ".join(problems))
    return items


def users_bulk_delete(proxy: StandIn, body: Any) -> Any:
    """/management/v1/users/bulk_delete: per-id results; the known users go with their keys and
    memberships, unknown and repeated ids fail alone."""
    ids = _bulk_body(body, "user_ids", allowed=("user_ids",), kind="Tuple")
    results, found, seen = [], [], set()
    with proxy.lock:
        for user_id in ids:
            user = proxy.users.get(user_id)
            if user_id in seen:
                error = f"Duplicate user_id in request: {user_id}"
            elif user is None:
                error = f"User id={user_id} not found"
            else:
                error = None
                found.append(user_id)
            seen.add(user_id)
            results.append(
                {
                    "user_id": user_id,
                    "user_email": user["user_email"] if user and not error else None,
                    "success": error is None,
                    "teams_removed": list(user["teams"]) if user and not error else [],
                    "error": error,
                }
            )
        teams = sorted({t for user_id in found for t in proxy.users[user_id]["teams"]})
    proxy.leave(teams, set(found))
    with proxy.lock:
        _forget_users(proxy, found)
    return {"data": results}


def user_bulk_update(proxy: StandIn, body: Any) -> Any:
    """/user/bulk_update: each user as /user/update (an unknown id is created, an unknown email
    created and failed), the results per user."""
    users = body.get("users") if isinstance(body, dict) else None
    if not users:  # (all_users=true with user_updates, which updates every user, is not modelled)
        raise Answer(
            400,
            {
                "detail": {
                    "error": "Must specify either 'users' for individual updates or 'all_users=True' with "
                    "'user_updates' for bulk updates"
                }
            },
        )
    if len(users) > BULK_LIMIT:
        raise Answer(
            400, {"detail": {"error": f"Maximum {BULK_LIMIT} users can be updated at once. Found {len(users)} users."}}
        )
    for n, item in enumerate(users):
        if not isinstance(item, dict) or (not item.get("user_id") and not item.get("user_email")):
            raise _invalid(["body", "users", n], "Value error, Either user id or user email must be provided")
        _check_user_fields(proxy, item, ("body", "users", n))
    results = []
    for item in users:
        try:
            updated, error = _update_user(proxy, item), None
        except _UpdateFailed as failed:
            updated, error = None, failed.message
        results.append(
            {
                "user_id": item.get("user_id"),
                "user_email": item.get("user_email"),
                "success": error is None,
                "error": error,
                "updated_user": updated,
            }
        )
    done = sum(1 for r in results if r["success"])
    return {
        "results": results,
        "total_requested": len(users),
        "successful_updates": done,
        "failed_updates": len(users) - done,
    }


# -- /team ----------------------------------------------------------------------------------------


TEAM_SETTINGS = ("max_budget", "budget_duration", "tpm_limit", "rpm_limit")  # null clears each (/team/update)


def team_new(proxy: StandIn, body: dict[str, Any]) -> Any:
    """Admins in members_with_roles are taken without a licence: only when a team is created."""
    _check_new_budget_duration(proxy, body)
    with proxy.lock:
        team_id = body.get("team_id")
        if team_id and team_id in proxy.teams:
            raise proxy.wrapped(400, f"Team id = {team_id} already exists. Please use a different team id.")
        team = proxy._insert_team(
            team_id or str(uuid.uuid4()), body.get("team_alias"), list(body.get("members_with_roles") or [])
        )
        team["metadata"] = dict(body.get("metadata") or {})
        for name in TEAM_SETTINGS:
            team[name] = body.get(name)
        team["models"] = list(body.get("models") or [])
        return proxy.team_row(team)


MODELS_NULL = (  # 1.110.2's /team/update with "models": null (1.65.8 and 1.80.7: a bare "Internal Server Error")
    "Unable to match input value to any allowed input type for the field. Parse errors: [Unable to match input "
    "value to any allowed input type for the field. Parse errors: [`data.models`: A value is required but not set, "
    "`data.models`: A value is required but not set], Unable to match input value to any allowed input type for "
    "the field. Parse errors: [`data.models`: A value is required but not set, `data.models`: A value is required "
    "but not set]]"
)


def team_update(proxy: StandIn, body: dict[str, Any]) -> Any:
    """null clears team_alias, the budget, limits and duration; models null is a 500 on every
    release seen (1.65.8, 1.80.7, 1.110.2), and [] clears them; metadata is replaced whole."""
    with proxy.lock:
        team = proxy.teams.get(body.get("team_id", ""))
        if team is None:
            message = f"Team not found, passed team_id={body.get('team_id')}"
            raise (
                proxy.wrapped(404, message)
                if proxy.team_update_error_wrapped
                else Answer(404, {"detail": {"error": message}})
            )
        if body.get("budget_duration") and proxy.budget_duration_rule == "strict":
            problem = budget_duration_problem(proxy, body["budget_duration"])
            if problem:
                raise proxy.wrapped(400, problem)
        if "models" in body and body["models"] is None:  # the database write fails: nothing is applied
            if proxy.legacy_errors:  # a bare 500 (its body is JSON-encoded here: _send encodes every answer)
                raise Answer(500, "Internal Server Error", {"Content-Type": "text/plain; charset=utf-8"})
            raise proxy.crashed(MODELS_NULL)
        for field in ("team_alias", "metadata", *TEAM_SETTINGS):  # null clears or is stored (metadata)
            if field in body:
                team[field] = _copy(body[field])
        if body.get("models") is not None:
            team["models"] = list(body["models"])
        team["updated_at"] = now()
        proxy.changed()
        return {"team_id": team["team_id"], "data": {**team}}  # the answer has updated_at on every release


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
                by_team.setdefault(key["team_id"], []).append(dict(key))
        return [
            {
                **proxy.team_row(team),
                "team_memberships": [
                    {"user_id": m["user_id"], "team_id": team["team_id"], "budget_id": None}
                    for m in team["members_with_roles"]
                ],
                "keys": by_team.get(team["team_id"], []),
            }
            for team in teams
        ]


def team_list_v2(proxy: StandIn, query: dict[str, str]) -> Any:
    """/v2/team/list: team_alias is a case-insensitive substring; pages of 10 by default; newest
    first unless sort_by names team_id, team_alias or created_at (others are ignored)."""
    page = _int_param(query, "page", 1, low=1)
    size = _int_param(query, "page_size", 10, low=1, high=100)
    alias = (query.get("team_alias") or "").lower()
    sort_by = query.get("sort_by")
    with proxy.lock:
        teams = [
            proxy.team_row(t)
            for t in proxy.teams.values()
            if alias in (t["team_alias"] or "").lower() and query.get("team_id") in (None, "", t["team_id"])
        ]
    if sort_by in ("team_id", "team_alias", "created_at"):
        teams.sort(key=lambda t: t.get(sort_by) or "", reverse=query.get("sort_order", "asc").lower() == "desc")
    else:
        teams.reverse()  # created_at desc: the dict holds teams in the order they were made
    return {
        "teams": teams[(page - 1) * size : page * size],
        "total": len(teams),
        "page": page,
        "page_size": size,
        "total_pages": math.ceil(len(teams) / size),
    }


def team_info(proxy: StandIn, query: dict[str, str]) -> Any:
    with proxy.lock:
        team = proxy.teams.get(query.get("team_id", ""))
        if team is None:
            message = f"{{'message': 'Team not found, passed team id: {query.get('team_id')}.'}}"
            if proxy.status_error_types:
                raise _error(404, message, "invalid_request_error")
            raise _error(404, message, "auth_error", "None")
        keys = [dict(k) for k in proxy.keys.values() if k["team_id"] == team["team_id"]]
        return {"team_id": team["team_id"], "team_info": proxy.team_row(team), "keys": keys, "team_memberships": []}


def _members_text(roster: list[dict[str, Any]]) -> str:
    members = (f"Member(user_id={m['user_id']!r}, user_email={m['user_email']!r}, role={m['role']!r})" for m in roster)
    return "[" + ", ".join(members) + "]"


def team_member_add(proxy: StandIn, body: dict[str, Any]) -> Any:
    members = body.get("member")
    members = members if isinstance(members, list) else [members]
    for member in members:
        if not isinstance(member, dict) or member.get("role") not in ("admin", "user"):
            raise _invalid(["body", "role"], "Input should be 'admin' or 'user'", "literal_error")
        if member["role"] == "admin" and not proxy.licensed:
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
            raise _already_in_team(proxy, members, roster, listed=isinstance(body.get("member"), list))
        added, updated = [], []
        for member in members:
            if member in present:
                continue
            user, before = _member_user(proxy, member, team_id)
            email = user["user_email"] if proxy.hydrated_rosters else member.get("user_email")
            added.append({"user_id": user["user_id"], "user_email": email, "role": member["role"]})
            updated.append(before if before and proxy.updated_users_before_add else proxy.user_row(user))
    proxy.write_roster(team_id, lambda roster: [*roster, *added])
    with proxy.lock:
        return {**proxy.team_row(proxy.teams[team_id]), "updated_users": updated, "updated_team_memberships": []}


PREMIUM_ADMINS = (
    "Assigning team admins is a premium feature. You must be a LiteLLM Enterprise user to use this feature. "
    "If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key here: "
    "https://www.litellm.ai/#trial. Pricing: https://www.litellm.ai/#pricing"
)


def team_member_update(proxy: StandIn, body: dict[str, Any]) -> Any:
    """A member's role: admin needs a licence from 1.74 (1.65.8 sets it without). A user not on the
    roster: 404 from 1.100 (seen on 1.110.2), a 200 that changes nothing before (1.65.8, 1.80.7)."""
    team_id, user_id, role = body.get("team_id"), body.get("user_id"), body.get("role")
    if role not in (None, "admin", "user"):
        raise _invalid(["body", "role"], "Input should be 'admin' or 'user'", "literal_error")
    with proxy.lock:
        if team_id not in proxy.teams:
            raise Answer(400, {"detail": {"error": f"Team id={team_id} does not exist in db"}})
        if role == "admin" and proxy.admins_need_licence and not proxy.licensed:
            raise Answer(400, {"detail": PREMIUM_ADMINS})
        member = [m for m in proxy.teams[team_id]["members_with_roles"] if m["user_id"] == user_id]
        if not member and proxy.member_update_refuses_strangers:
            raise Answer(404, {"detail": {"error": f"User {user_id} is not a member of team {team_id}"}})
        email = proxy.users[user_id]["user_email"] if user_id in proxy.users else None
    if member and role:
        proxy.write_roster(
            team_id, lambda roster: [{**m, "role": role} if m["user_id"] == user_id else m for m in roster]
        )
    return {"user_id": user_id, "user_email": email, "team_id": team_id, "max_budget_in_team": None}


def _already_in_team(
    proxy: StandIn, members: list[dict[str, Any]], roster: list[dict[str, Any]], *, listed: bool
) -> Any:
    first = members[0]
    if proxy.raw_handler_errors:
        who = first.get("user_id") or first.get("user_email")
        return Answer(
            400, {"detail": {"error": f"User={who} already in team. Existing members={_members_text(roster)}"}}
        )
    if listed:
        text = "All users are already in team"
    else:
        text = f"User already in team. Member: user_id={first.get('user_id')}, user_email={first.get('user_email')}"
    return _error(400, f"{text}. Existing members={_members_text(roster)}", "team_member_already_in_team", "member")


def _member_user(proxy: StandIn, member: dict[str, Any], team_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The user a member names (created if unknown, with no email when named by id), now with the
    team in its own list; and its row from before, if it existed."""
    if member.get("user_id"):
        user = proxy.users.get(member["user_id"])
        before = proxy.user_row(user) if user else None
        user = user or proxy._insert_user(member["user_id"], member.get("user_email"), "internal_user", [])
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
        before = proxy.user_row(found[0]) if found else None
        user = (
            found[0] if found else proxy._insert_user(str(uuid.uuid4()), member.get("user_email"), "internal_user", [])
        )
    if proxy.old or team_id not in user["teams"]:
        user["teams"].append(team_id)  # old releases push even when the team is listed already
    proxy.changed()
    return user, before


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
        user = proxy.users.get(gone)
        if user and not proxy.member_delete_deletes_keys:
            if team_id in user["teams"]:
                user["teams"].remove(team_id)  # one occurrence
        elif user:
            user["teams"] = [t for t in user["teams"] if t != team_id]
        if proxy.member_delete_deletes_keys:
            for token in [t for t, k in proxy.keys.items() if k["user_id"] == gone and k["team_id"] == team_id]:
                del proxy.keys[token]
        proxy.changed()
        return proxy.team_row(proxy.teams[team_id])


# -- /key -----------------------------------------------------------------------------------------


def key_generate(proxy: StandIn, body: dict[str, Any]) -> Any:
    alias = body.get("key_alias")
    expires = key_expiry(proxy, body.get("duration"))
    with proxy.lock:
        if alias and any(k["key_alias"] == alias for k in proxy.keys.values()):
            raise _error(
                400,
                f"Key with alias '{alias}' already exists. Unique key aliases across all keys are required.",
                "bad_request_error",
                "key_alias",
            )
        raw, row = proxy._insert_key(body.get("user_id"), body.get("team_id"), alias, expires)
        row.update({field: _copy(body[field]) for field in (*KEY_COPIES, "max_budget") if body.get(field) is not None})
        return {**row, "key": raw, "token_id": row["token"]}


def _token(wanted: str) -> str:
    """Keys are named by their hash, or by the raw key."""
    return key_hash(wanted) if wanted.startswith("sk-") else wanted


def key_block(proxy: StandIn, body: dict[str, Any], blocked: bool = True) -> Any:
    with proxy.lock:
        wanted = body.get("key") or ""
        token = _token(wanted)
        if token not in proxy.keys:
            if proxy.unknown_key_is_404:
                raise _error(404, "Key not found.", "not_found_error", "key")
            raise _error(
                401,
                f"Authentication Error, Invalid proxy server token passed. key={wanted}, not found in db. "
                "Create key via `/key/generate` call.",
                "token_not_found_in_db",
                "key",
            )
        proxy.keys[token]["blocked"] = blocked
        proxy.keys[token]["updated_at"] = now()
        proxy.changed()
        return dict(proxy.keys[token])


def key_unblock(proxy: StandIn, body: dict[str, Any]) -> Any:
    wanted = body.get("key") or ""
    if proxy.unblock_hashes_again and key_hash(wanted) not in proxy.keys:  # 1.74.15 hashes even a hash
        raise _error(
            401,
            f"Authentication Error, Invalid proxy server token passed. key={key_hash(wanted)}, not found in db. "
            "Create key via `/key/generate` call.",
            "token_not_found_in_db",
            "key",
        )
    return key_block(proxy, body, blocked=False)


def key_update(proxy: StandIn, body: dict[str, Any]) -> Any:
    """/key/update, for what the tools send: blocked (the key named by its hash or raw)."""
    with proxy.lock:
        token = _token(body.get("key") or "")
        if token not in proxy.keys:
            raise _error(404, f"Key not found: {body.get('key')}", "not_found_error", "key")
        if "blocked" in body:
            proxy.keys[token]["blocked"] = bool(body["blocked"])
        proxy.keys[token]["updated_at"] = now()
        proxy.changed()
        return dict(proxy.keys[token])


KEY_BULK_FIELDS = ("max_budget", "team_id", "budget_id")  # what /key/bulk_update applies (tags: enterprise)


def key_bulk_update(proxy: StandIn, body: Any) -> Any:
    """/key/bulk_update: per key; a team_id needs the key's owner on that team's roster; other
    fields than key, budget_id, max_budget, team_id and tags are ignored (blocked included)."""
    if not isinstance(body, dict):
        if proxy.status_error_types:
            raise _error(400, "Invalid JSON payload: expected an object", "invalid_request_error", "request_body")
        raise Answer(500, {"error": {"message": "Internal server error", "type": "internal_server_error"}})
    items = body.get("keys")
    if not isinstance(items, list):
        raise _invalid(["body", "keys"], "Field required", "missing")
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _invalid(["body", "keys", n, "key"], "Field required", "missing")
    if not items:
        raise Answer(400, {"detail": {"error": "No keys provided for update"}})
    if len(items) > BULK_LIMIT:
        raise Answer(
            400, {"detail": {"error": f"Maximum {BULK_LIMIT} keys can be updated at once. Found {len(items)} keys."}}
        )
    done, failed = [], []
    with proxy.lock:
        for item in items:
            row = proxy.keys.get(_token(item["key"]))
            shown = {k: v for k, v in row.items() if k != "token"} if row else None
            reason = _key_update_problem(proxy, item, row)
            if reason:
                failed.append({"key": item["key"], "key_info": shown, "failed_reason": reason})
                continue
            assert row is not None
            row.update({field: item[field] for field in KEY_BULK_FIELDS if field in item})
            row["updated_at"] = now()
            done.append({"key": item["key"], "key_info": {k: v for k, v in row.items() if k != "token"}})
        proxy.changed()
    return {"total_requested": len(items), "successful_updates": done, "failed_updates": failed}


def _key_update_problem(proxy: StandIn, item: dict[str, Any], row: dict[str, Any] | None) -> str | None:
    if row is None:
        return "Key not found."
    if item.get("tags") is not None:
        return ENTERPRISE_ONLY.format("tags")
    team_id = item.get("team_id")
    if team_id:
        team = proxy.teams.get(team_id)
        if team is None:
            return f"Team not found for team_id={team_id}"
        if not any(m["user_id"] == row["user_id"] for m in team["members_with_roles"]):
            return f"User={row['user_id']} is not a member of the team={team_id}. Check team members via `/team/info`."
    return None


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


def key_aliases(proxy: StandIn, query: dict[str, str]) -> Any:
    """1.80.7: every alias at once, whatever the query; later 100 a page, sorted, with a search
    (a substring, any case, where _ and % match anything, as SQL's ILIKE)."""
    with proxy.lock:
        aliases = sorted(k["key_alias"] for k in proxy.keys.values() if k["key_alias"])
    if not proxy.pages_key_aliases:
        return {"aliases": sorted(set(aliases))}
    page = _int_param(query, "page", 1, low=1)
    size = _int_param(query, "size", 50, low=1, high=100)
    search = query.get("search")
    if search:
        pattern = re.compile(".*".join(re.escape(part).replace("_", ".") for part in search.split("%")), re.I)
        aliases = [alias for alias in aliases if pattern.search(alias)]
    return {
        "aliases": aliases[(page - 1) * size : page * size],
        "total_count": len(aliases),
        "current_page": page,
        "total_pages": math.ceil(len(aliases) / size),
        "size": size,
    }


def key_info(proxy: StandIn, query: dict[str, str], caller: str) -> Any:
    with proxy.lock:
        wanted = query.get("key")
        token = _token(wanted) if wanted else caller
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
            found = [t for t in map(_token, keys) if t in proxy.keys]
        else:
            found = [t for t, k in proxy.keys.items() if k["key_alias"] in aliases]
        if not found and not proxy.unknown_key_delete_ok:
            raise proxy.wrapped(404, "No keys found")
        for token in found:
            proxy.keys.pop(token, None)
        proxy.changed()
        return {"deleted_keys": keys or aliases}


# -- models and discovery -------------------------------------------------------------------------


def models_list(proxy: StandIn, query: dict[str, str], _caller: str) -> Any:
    """/v1/models: the model names, a wildcard route's known models ("openai/gpt-4o"), the route
    itself with return_wildcard_routes=true, and the access groups with include_model_access_groups."""
    routes = proxy.wildcard_routes
    ids = [*proxy.models, *(routes if proxy.lists_wildcard_routes else [])]
    ids += [f"{route[:-2]}/{model}" for route in routes for model in WILDCARD_MODELS.get(route[:-2], ())]
    if query.get("return_wildcard_routes") == "true":
        ids += routes
    if proxy.model_access_groups:
        groups = list(dict.fromkeys(g for name in proxy.models for g in proxy.access_groups.get(name, ())))
        if query.get("only_model_access_groups") == "true":
            ids = groups if query.get("include_model_access_groups") == "true" else []
        elif query.get("include_model_access_groups") == "true":
            ids += groups
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 1677610602, "owned_by": "openai"} for name in ids],
    }


def readiness(proxy: StandIn) -> Any:
    """The public probe: the version too, before 1.100."""
    if proxy.public_version:
        return {"status": "connected", "db": "connected", "cache": None, "litellm_version": proxy.release}
    return {"status": "healthy", "db": "connected"}


def readiness_details(proxy: StandIn, _query: dict[str, str], _caller: str) -> Any:
    """From 1.100, for any key: the version; and show_no_redis_warning, true when several proxy
    processes run without Redis (seen on 1.110.2 with two replicas over one database)."""
    return {
        "status": "healthy",
        "db": "connected",
        "cache": None,
        "litellm_version": proxy.release,
        "show_no_redis_warning": proxy.replicas_without_redis,
    }


def ui_config(proxy: StandIn) -> Any:
    """/.well-known/litellm-ui-config (no key needed): where the UI and the API are served."""
    if not proxy.has_ui_config:
        raise Answer(404, {"detail": "Not Found"})
    if not proxy.bulk_users:  # 1.80.7's short form
        return {"server_root_path": "/", "proxy_base_url": proxy.proxy_base_url}
    return {
        "server_root_path": "",
        "proxy_base_url": proxy.proxy_base_url,
        "gateway_base_url": None,
        "auto_redirect_to_sso": False,
        "admin_ui_disabled": False,
        "sso_configured": False,
        "hide_default_credentials_hint": False,
        "is_control_plane": False,
        "mcp_stdio_enabled": False,
        "workers": [],
    }


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
    ("GET", "/spend/users"): spend_users,
    ("POST", "/user/update"): user_update,
    ("POST", "/user/delete"): user_delete,
    ("POST", "/user/bulk_update"): user_bulk_update,
    ("POST", "/management/v1/users/bulk"): users_bulk,
    ("POST", "/management/v1/users/bulk_delete"): users_bulk_delete,
    ("POST", "/invitation/new"): invitation_new,
    ("POST", "/team/new"): team_new,
    ("GET", "/team/list"): team_list,
    ("GET", "/v2/team/list"): team_list_v2,
    ("GET", "/team/info"): team_info,
    ("POST", "/team/member_add"): team_member_add,
    ("POST", "/team/member_delete"): team_member_delete,
    ("POST", "/team/member_update"): team_member_update,
    ("POST", "/team/update"): team_update,
    ("POST", "/team/delete"): team_delete,
    ("POST", "/key/generate"): key_generate,
    ("GET", "/key/list"): key_list,
    ("GET", "/key/aliases"): key_aliases,
    ("POST", "/key/delete"): key_delete,
    ("POST", "/key/block"): key_block,
    ("POST", "/key/unblock"): key_unblock,
    ("POST", "/key/update"): key_update,
    ("POST", "/key/bulk_update"): key_bulk_update,
}
KEY_ROUTES = {  # any valid key may call these: (proxy, query, caller)
    ("GET", "/key/info"): key_info,
    ("GET", "/v1/models"): models_list,
    ("GET", "/health/readiness/details"): readiness_details,
}
PUBLIC_ROUTES = {  # no key needed, any method
    "/health/liveliness": lambda _proxy: "I'm alive!",
    "/health/readiness": readiness,
    "/.well-known/litellm-ui-config": ui_config,
    "/litellm/.well-known/litellm-ui-config": ui_config,
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
                self.send_response_only(status)
                self.send_header("Date", self.date_time_string())  # every answer, as uvicorn
                if proxy.public_version:
                    self.send_header("Server", "uvicorn")  # later releases switch it off
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
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
    cli.add_argument("--release", default="1.108.7", choices=RELEASES, help="answer as this LiteLLM release")
    cli.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    cli.add_argument("--teams", default="", help="comma-separated aliases of teams to start with")
    cli.add_argument("--proxy-base-url", help="the PROXY_BASE_URL the UI config reports")
    args = cli.parse_args()
    proxy = StandIn(
        release=args.release, latency=args.latency, port=args.port, proxy_base_url=args.proxy_base_url
    ).start()
    for alias in filter(None, args.teams.split(",")):
        proxy.seed_team(alias)
    print(f"LITELLM_BASE_URL={proxy.url}")
    print(f"LITELLM_MASTER_KEY={proxy.master_key}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    proxy.stop()


if __name__ == "__main__":
    main()
