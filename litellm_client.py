"""A small typed client for the LiteLLM Proxy's /user, /team, /key and /invitation endpoints.

It knows HTTP and LiteLLM, prints nothing and knows nothing of CSV. It hides from the scripts
the ways proxy releases differ (see docs/litellm-notes.md):

- "already exists" is 409 from 1.81 on and 400 before; an unknown user is 404 on /user/info
  from 1.81 on and an empty 200 before;
- /user/delete is all-or-nothing: one unknown id fails the whole batch with 404;
- before 1.100 a team's roster is read, changed and written back without a lock, so parallel
  writes to one team lose members: this client lets them overlap only once the proxy is known
  to lock rosters itself.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

log = logging.getLogger("litellm_client")

ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")
PAGE_SIZE = 100  # the proxy answers 422 above 100
BATCH_SIZE = 100  # ids per /user/delete, members per /team/member_add
RETRIES = 5
RECHECK_DELAYS = (0.0, 1.0, 2.0, 4.0)  # seconds before each look for what a lost create made
# Requests that are not repeated blindly once the proxy may have acted on them: creates, and
# /user/delete (a repeat would answer 404 for users this run deleted).
NOT_RESENT = ("/user/new", "/team/new", "/key/generate", "/invitation/new", "/user/delete")
# The first release that rewrites a team's roster under a per-team database lock.
LOCKED_ROSTER_RELEASE = (1, 100, 0)
SECRET_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-]{3,}")
_REPR_ERROR = re.compile(r"""^\{['"](?:error|message)['"]:\s*['"](.*)['"]\}$""", re.S)
_MISSING_USER = re.compile(r"passed user_id=(\S+)")
T = TypeVar("T")


def redact(text: str) -> str:
    """Hide every virtual key (sk-...) in text; abbreviated names like 'sk-...abcd' stay."""
    return SECRET_PATTERN.sub("sk-***", text)


class ProxyError(Exception):
    """The proxy refused a request, or gave no answer (status None).

    answer_lost means the request may have been applied although no answer arrived.
    user_id names a user that was created before the failure, so it can be reported.
    """

    def __init__(self, message: str, status: int | None = None, body: object = None, *, answer_lost: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.answer_lost = answer_lost
        self.user_id: str | None = None  # a user the failed operation had already created

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status else self.message

    @property
    def already_exists(self) -> bool:
        return self.status == 409 or (self.status == 400 and "already exist" in self.message.lower())

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def auth_refused(self) -> bool:
        return self.status in (401, 403)


def error_message(body: object) -> str:
    """A readable message from any of the proxy's error shapes (OpenAI, FastAPI, problem+json)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return _unwrap(error.get("message", error))
        if isinstance(error, str):
            return _unwrap(error)
        detail = body.get("detail")
        if "title" in body and "status" in body:
            return f"{body['title']}: {detail}" if detail else str(body["title"])
        if isinstance(detail, list):
            return "; ".join(_validation_item(item) for item in detail)
        if detail is not None:
            return _unwrap(detail)
    return _unwrap(body)


def _unwrap(value: object) -> str:
    if isinstance(value, dict):
        value = value.get("error") or value.get("message") or value
    text = str(value).strip()
    match = _REPR_ERROR.match(text)  # LiteLLM puts a Python repr of {'error': ...} in messages
    return match.group(1) if match else text


def _validation_item(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
    return f"{where}: {item.get('msg')}" if where else str(item.get("msg"))


def _release(text: object) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", str(text or ""))
    return tuple(int(part) for part in match.groups()) if match else None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def chunks(items: Sequence[Any], size: int = BATCH_SIZE) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class User:
    """The fields of a /user/list row the tools use (a slim copy: 100,000 of them fit in memory)."""

    user_id: str
    email: str | None
    role: str | None
    teams: tuple[str, ...]
    key_count: int
    user_alias: str | None = None
    max_budget: float | None = None
    spend: float = 0.0
    models: tuple[str, ...] = ()
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> User:
        return cls(
            user_id=str(row["user_id"]),
            email=row.get("user_email") or None,
            role=sys.intern(row["user_role"]) if row.get("user_role") else None,  # shared: 100,000 users, 4 roles
            teams=_unique(sys.intern(team) for team in row.get("teams") or ()),  # 1.80 can list a team twice
            key_count=int(row.get("key_count") or 0),
            user_alias=row.get("user_alias"),
            max_budget=row.get("max_budget"),
            spend=float(row.get("spend") or 0.0),
            models=tuple(row.get("models") or ()),
            created_at=row.get("created_at"),
            updated_at=row.get("updated_at"),
        )

    @property
    def is_managed(self) -> bool:
        """Users the tools may delete: with an email and one of the four roles."""
        return bool(self.email) and self.role in ROLES


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    alias: str | None
    member_ids: frozenset[str]
    keys_by_user: dict[str, int]  # this team's keys per owner: leaving the team deletes them


@dataclass(frozen=True, slots=True)
class NewUser:
    user_id: str
    key: str  # "" without a key
    models: tuple[str, ...]
    problem: str = ""  # created, but something after that failed


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    deleted: list[User]
    missing: list[User]  # gone before this batch reached the proxy


class UserPages:
    """Every user matching a filter, read page by page in a stable order.

    The first page is read at once, so an unusable proxy fails here, and says how many follow.
    """

    def __init__(self, client: LiteLLMClient, params: dict[str, str]):
        self._client = client
        self._params = params
        self._first = client._user_page(params, 1)
        self.total = int(self._first.get("total") or 0)

    def __iter__(self) -> Iterator[User]:
        seen: set[str] = set()
        pages = int(self._first.get("total_pages") or 1)
        for page in _pages(
            lambda n: self._client._user_page(self._params, n), self._first, pages, self._client.workers
        ):
            for row in page.get("users") or ():
                user = User.from_api(row)
                if user.user_id not in seen:  # pages shift when users are added meanwhile
                    seen.add(user.user_id)
                    yield user


def _pages(
    fetch: Callable[[int], dict[str, Any]], first: dict[str, Any], count: int, ahead: int
) -> Iterator[dict[str, Any]]:
    """The first page, then pages 2..count read `ahead` at a time, yielded in order."""
    yield first
    numbers = iter(range(2, count + 1))
    with ThreadPoolExecutor(max(1, ahead), thread_name_prefix="page") as pool:
        pending = [pool.submit(fetch, n) for n in itertools.islice(numbers, ahead)]
        while pending:
            page = pending.pop(0).result()
            pending.extend(pool.submit(fetch, n) for n in itertools.islice(numbers, 1))
            yield page


class LiteLLMClient:
    """One keep-alive session to one proxy, authenticated with the master key."""

    def __init__(
        self,
        base_url: str,
        master_key: str,
        *,
        timeout: float = 60.0,
        verify: bool | str = True,
        workers: int = 4,
        read_only: bool = False,
    ):
        self.base_url = base_url.rstrip("/")
        self.workers = workers
        self.read_only = read_only
        self._timeout = (min(timeout, 10.0), timeout)
        self._sort_by_user_id = True
        self._release: tuple[int, ...] | None = None
        self._release_known = False
        self._rosters_locked: bool | None = None  # does the proxy lock team rosters? None: unknown
        self._silent_about_teams = False  # its /user/new answers do not say which teams were joined
        self._gone: ProxyError | None = None  # the last request's failure, if it proves the proxy gone
        self._guard = threading.Lock()
        self._release_lock = threading.Lock()
        self._team_locks: dict[str, threading.Lock] = {}
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {master_key}"
        # given with each request: a session-wide setting loses to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        self._verify = verify
        pool = workers + 4
        self._session.mount(self.base_url, HTTPAdapter(pool_maxsize=pool, max_retries=_retry(resend=True)))
        for path in NOT_RESENT:
            self._session.mount(self.base_url + path, HTTPAdapter(pool_maxsize=pool, max_retries=_retry(resend=False)))

    def __enter__(self) -> LiteLLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._session.close()

    # -- transport -------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        if self.read_only and method != "GET":
            raise RuntimeError(f"read-only client asked to {method} {path}")
        started = time.monotonic()
        try:
            response = self._session.request(
                method, self.base_url + path, params=params, json=body, timeout=self._timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            error = _transport_error(exc, self.base_url)
            if not error.answer_lost or path not in NOT_RESENT:
                self._gone = error  # refused after every retry, or silent through every retry
            raise error from exc
        self._gone = None
        try:
            payload: Any = json.loads(response.content)  # from bytes: no decoded copy of a big answer
        except ValueError:
            payload = response.text
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s %s%s -> %s in %.0f ms", method, path, _query(params), response.status_code, elapsed)
            if body is not None:
                log.debug("  request: %s", redact(str(body)[:2000]))
            log.debug("  answer: %s", redact(response.text[:2000]))
        if response.status_code >= 400:
            lost = response.status_code in (502, 504) and path in NOT_RESENT
            raise ProxyError(error_message(payload), response.status_code, payload, answer_lost=lost)
        return payload

    @property
    def unreachable(self) -> str | None:
        """Why the proxy looks gone (the last request got no answer through all its retries), or
        None while it answers. A create whose one answer was lost proves nothing by itself."""
        return self._gone.message if self._gone else None

    # -- releases and team rosters ---------------------------------------------------------

    @property
    def release(self) -> tuple[int, ...] | None:
        """The proxy's LiteLLM release, or None where it does not say (asked once)."""
        with self._release_lock:
            if not self._release_known:
                self._release = self._read_release()
                self._release_known = True
                log.debug("proxy release: %s", self._release)
            return self._release

    def _read_release(self) -> tuple[int, ...] | None:
        # recent releases tell the master key only; older ones tell anyone on the public probe
        for path in ("/health/readiness/details", "/health/readiness"):
            try:
                answer = self._call("GET", path)
            except ProxyError:
                continue
            if isinstance(answer, dict) and _release(answer.get("litellm_version")):
                return _release(answer["litellm_version"])
        return None

    def _proxy_locks_rosters(self) -> bool:
        if self._rosters_locked is None:
            release = self.release
            self._rosters_locked = release is not None and release >= LOCKED_ROSTER_RELEASE
        return self._rosters_locked

    @contextmanager
    def team_writes(self, team_ids: Iterable[str], *, ask: bool = True) -> Iterator[None]:
        """Hold the given teams while changing their rosters, unless the proxy locks them itself.

        While that is unknown, writes to one team wait for each other. The first time one would
        wait, the proxy's release is asked (once), unless ask is False: a /user/new answer that
        lists the teams joined (recent releases) will tell, for free.
        """
        ids = sorted(set(team_ids))
        if not ids or self._rosters_locked:
            yield
            return
        with self._guard:
            locks = [self._team_locks.setdefault(team_id, threading.Lock()) for team_id in ids]
        if ask and any(lock.locked() for lock in locks) and self._proxy_locks_rosters():
            yield
            return
        with ExitStack() as held:
            for lock in locks:  # always in sorted order, so two writers never deadlock
                held.enter_context(lock)
            if self._rosters_locked:  # learned while waiting
                held.close()
            yield

    # -- users -------------------------------------------------------------------------------

    def users(
        self, *, role: str | None = None, email_contains: str | None = None, team_id: str | None = None
    ) -> UserPages:
        """Every user (or those matching the filters, as the proxy applies them), page by page."""
        params = {"role": role, "user_email": email_contains, "team": team_id}
        return UserPages(self, {name: value for name, value in params.items() if value})

    def _user_page(self, params: dict[str, str], page: int) -> dict[str, Any]:
        query: dict[str, Any] = {**params, "page": page, "page_size": PAGE_SIZE}
        if self._sort_by_user_id:
            try:
                return self._call("GET", "/user/list", params={**query, "sort_by": "user_id", "sort_order": "asc"})
            except ProxyError as exc:
                if exc.status not in (400, 422) or "sort" not in exc.message.lower():
                    raise
                log.debug("proxy cannot sort users by user_id; paging in its default order")
                self._sort_by_user_id = False
        return self._call("GET", "/user/list", params=query)

    def find_users_by_email(self, email: str) -> list[User]:
        """Users whose email equals this one, ignoring case (the proxy's filter is a substring)."""
        wanted = email.strip().lower()
        return [user for user in self.users(email_contains=wanted) if (user.email or "").strip().lower() == wanted]

    def create_user(
        self,
        email: str,
        *,
        role: str | None,
        team_ids: Sequence[str] = (),
        key_alias: str | None = None,
        with_key: bool = True,
    ) -> NewUser:
        """Create a user with its key and teams, never twice.

        With one team the key belongs to that team too. If the answer is lost, the user is looked
        up: found, its unseen key is replaced; not found, the row fails and nothing is sent again.
        Once the user exists nothing raises without naming it (ProxyError.user_id), so a key
        that was issued is never dropped.
        """
        body: dict[str, Any] = {"user_email": email, "auto_create_key": with_key}
        if role:
            body["user_role"] = role
        if with_key and key_alias:
            body["key_alias"] = key_alias
        if len(team_ids) == 1:
            body["team_id"] = team_ids[0]  # joins the team and gives the key to it
        elif team_ids:
            body["teams"] = list(team_ids)
        with self.team_writes(team_ids, ask=self._silent_about_teams):
            try:
                answer = self._call("POST", "/user/new", body=body)
            except ProxyError as exc:
                if not exc.answer_lost:
                    raise
                log.warning("no answer to /user/new for %s; checking whether it was created", email)
                found = self._appeared(lambda: self.find_users_by_email(email))
                if len(found) > 1:
                    raise ProxyError(f"{exc.message}; {len(found)} users now have this email") from exc
                if not found:
                    raise ProxyError(
                        f"{exc.message}; the user did not appear afterwards and was not sent again, "
                        "so it cannot exist twice",
                        answer_lost=True,
                    ) from exc
                return self._recover(found[0], team_ids, key_alias, with_key)
            user = NewUser(str(answer["user_id"]), str(answer.get("key") or ""), tuple(answer.get("models") or ()))
            joined = answer.get("teams")  # the teams it really joined; a failed join is silent
            if joined is None:
                if team_ids:
                    self._silent_about_teams = True  # this release will not tell: ask it when it matters
                return user
            self._rosters_locked = True  # only releases that lock rosters (1.100 on) say which teams
            try:
                for team_id in sorted(set(team_ids) - set(joined)):
                    self._member_add_batch(team_id, [user.user_id])
            except ProxyError as exc:
                return NewUser(user.user_id, user.key, user.models, problem=f"not added to every team: {exc}")
        return user

    def _recover(self, user: User, team_ids: Sequence[str], key_alias: str | None, with_key: bool) -> NewUser:
        """The user was created but its key never seen: replace the key, same alias."""
        key = ""
        if with_key:
            try:
                stale = [
                    item["token"]
                    for item in self._user_keys(user.user_id)
                    if item.get("key_alias") == (key_alias or None)
                ]
                if stale:
                    self.delete_keys(stale)
                key = self.generate_key(
                    user.user_id, team_id=team_ids[0] if len(team_ids) == 1 else None, alias=key_alias
                )
            except ProxyError as exc:
                exc.user_id = user.user_id
                exc.message = f"created, but its key was lost and could not be replaced: {exc.message}"
                raise
        return NewUser(user.user_id, key, user.models)

    def update_user_role(self, user_id: str, role: str) -> None:
        """Set a user's role. /user/update creates unknown ids, so a user deleted meanwhile is
        created again: that ghost is removed and the update reported as not found."""
        answer = self._call("POST", "/user/update", body={"user_id": user_id, "user_role": role})
        data = answer.get("data") or {} if isinstance(answer, dict) else {}
        if (
            data
            and not data.get("user_email")
            and data.get("created_at")
            and data.get("created_at") == data.get("updated_at")
        ):
            self._call("POST", "/user/delete", body={"user_ids": [user_id]})
            raise ProxyError(f"User {user_id} not found", 404)

    def delete_user_batch(self, batch: Sequence[User]) -> DeleteOutcome:
        """Delete up to BATCH_SIZE users (and, on the proxy, their keys) in one request.

        The proxy deletes nothing when one id is unknown: such a user is set aside as missing and
        the rest is sent again. After a lost answer, the users still there are sent again.
        """
        remaining = {user.user_id: user for user in batch}
        deleted: list[User] = []
        missing: list[User] = []
        with self.team_writes(team for user in batch for team in user.teams):
            while remaining:
                try:
                    self._call("POST", "/user/delete", body={"user_ids": list(remaining)})
                except ProxyError as exc:
                    if exc.not_found:
                        gone = self._missing_ids(exc, list(remaining))
                        missing.extend(remaining.pop(user_id) for user_id in gone)
                    elif exc.answer_lost:
                        log.warning("no answer to /user/delete; checking which users are left")
                        gone = set(remaining) - self._existing_ids(list(remaining))
                        deleted.extend(remaining.pop(user_id) for user_id in gone)  # this run deleted them
                    else:
                        raise
                    if not gone:
                        raise
                else:
                    deleted.extend(remaining.values())
                    remaining.clear()
        return DeleteOutcome(deleted, missing)

    def _missing_ids(self, exc: ProxyError, ids: list[str]) -> set[str]:
        match = _MISSING_USER.search(exc.message)
        if match and match.group(1) in ids:
            return {match.group(1)}
        return set(ids) - self._existing_ids(ids)

    def _existing_ids(self, ids: list[str]) -> set[str]:
        # user_ids with two or more ids is an exact match; one id is a substring from 1.81 on
        query = ",".join(ids if len(ids) > 1 else ids * 2)
        answer = self._call("GET", "/user/list", params={"user_ids": query, "page": 1, "page_size": PAGE_SIZE})
        return {str(row["user_id"]) for row in answer.get("users") or ()} & set(ids)

    def create_invitation(self, user_id: str) -> str:
        """A password-setup link for a user (valid for 7 days). A lost answer is asked again:
        a second invitation for the same user does no harm."""
        try:
            try:
                answer = self._call("POST", "/invitation/new", body={"user_id": user_id})
            except ProxyError as exc:
                if not exc.answer_lost:
                    raise
                answer = self._call("POST", "/invitation/new", body={"user_id": user_id})  # once more
        except ProxyError as exc:
            if "LiteLLM_UserTable" in exc.message:
                raise ProxyError(
                    "the proxy has no user row for the master key's own user (default_user_id), which "
                    "invitations need: create any team once (the proxy adds that user), then retry",
                    exc.status,
                    exc.body,
                ) from exc
            raise
        return f"{self.base_url}/ui/onboarding?id={answer['id']}"

    # -- teams -------------------------------------------------------------------------------

    def teams(self) -> list[Team]:
        """Every team, with its members and how many of its keys each member owns."""
        teams = []
        for row in self._call("GET", "/team/list"):
            owners = Counter(
                str(key["user_id"]) for key in row.get("keys") or () if isinstance(key, dict) and key.get("user_id")
            )
            members = {str(m["user_id"]) for m in row.get("members_with_roles") or () if m.get("user_id")}
            teams.append(Team(str(row["team_id"]), row.get("team_alias"), frozenset(members), dict(owners)))
        return teams

    def create_team(self, alias: str) -> Team:
        """Create a team; if the answer is lost, a team that now has this alias is that team."""
        try:
            row = self._call("POST", "/team/new", body={"team_alias": alias})
        except ProxyError as exc:
            if not exc.answer_lost:
                raise
            found = self._appeared(lambda: [team for team in self.teams() if team.alias == alias])
            if not found:
                raise ProxyError(
                    f"{exc.message}; the team did not appear afterwards and was not sent again", answer_lost=True
                ) from exc
            return found[0]
        return Team(str(row["team_id"]), row.get("team_alias"), frozenset(), {})

    def _appeared(self, lookup: Callable[[], list[T]]) -> list[T]:
        """After a lost answer: look for what the request would have created, a few times, since
        a slow proxy may still be working on it. Nothing is sent twice."""
        for delay in RECHECK_DELAYS:
            time.sleep(delay)
            found = lookup()
            if found:
                return found
        return []

    def add_team_members(self, team_id: str, user_ids: Sequence[str]) -> None:
        """Add users to a team, BATCH_SIZE per request, and check the roster each answer shows."""
        for batch in chunks(list(user_ids)):
            with self.team_writes([team_id]):
                self._member_add_batch(team_id, batch)

    def _member_add_batch(self, team_id: str, user_ids: Sequence[str]) -> None:
        members = [{"role": "user", "user_id": user_id} for user_id in user_ids]
        try:
            answer = self._call("POST", "/team/member_add", body={"team_id": team_id, "member": members})
        except ProxyError as exc:
            if exc.status == 400 and "already in team" in exc.message.lower():
                return
            raise
        roster = {m.get("user_id") for m in answer.get("members_with_roles") or ()}
        absent = [user_id for user_id in user_ids if user_id not in roster]
        if absent:
            raise ProxyError(f"team {team_id}: {len(absent)} member(s) missing from the roster after member_add")

    def remove_team_member(self, team_id: str, user_id: str) -> None:
        """Take a user out of a team; the proxy deletes the user's keys for that team."""
        with self.team_writes([team_id]):
            try:
                self._call("POST", "/team/member_delete", body={"team_id": team_id, "user_id": user_id})
            except ProxyError as exc:
                if not (exc.status == 400 and "not found in team" in exc.message.lower()):
                    raise

    # -- keys --------------------------------------------------------------------------------

    def key_aliases(self) -> set[str]:
        """The alias of every key on the proxy."""
        return {str(item["key_alias"]) for item in self._keys({}) if item.get("key_alias")}

    def _user_keys(self, user_id: str) -> list[dict[str, Any]]:
        # user_id was a substring filter for admins on 1.86: keep exact matches only
        return [item for item in self._keys({"user_id": user_id}) if item.get("user_id") == user_id]

    def _keys(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        def fetch(page: int) -> dict[str, Any]:
            query = {**params, "return_full_object": "true", "page": page, "size": PAGE_SIZE}
            answer: dict[str, Any] = self._call("GET", "/key/list", params=query)
            return answer

        first = fetch(1)
        for answer in _pages(fetch, first, int(first.get("total_pages") or 0), self.workers):
            yield from (item for item in answer.get("keys") or () if isinstance(item, dict))

    def generate_key(self, user_id: str, *, team_id: str | None, alias: str | None) -> str:
        body: dict[str, Any] = {"user_id": user_id, "key_alias": alias}
        if team_id:
            body["team_id"] = team_id
        return str(self._call("POST", "/key/generate", body=body)["key"])

    def delete_keys(self, tokens: Sequence[str]) -> None:
        """Delete keys by raw key or hash; keys already gone are not an error."""
        try:
            self._call("POST", "/key/delete", body={"keys": list(tokens)})
        except ProxyError as exc:
            if not exc.not_found:
                raise


def _retry(*, resend: bool) -> Retry:
    """Retries with exponential backoff and jitter, honouring Retry-After.

    A connection that failed before the request went out is always retried. Requests in
    NOT_RESENT are not repeated after a read error or a gateway error (the proxy may have acted),
    only after 429 and 503, which say it did not.
    """
    return Retry(
        total=RETRIES,
        connect=RETRIES,
        read=2 if resend else 0,  # a read timeout already waited --timeout seconds
        status=RETRIES,
        other=0,
        allowed_methods=None,
        status_forcelist=(429, 502, 503, 504) if resend else (429, 503),
        backoff_factor=0.5,
        backoff_max=20,
        backoff_jitter=0.5,
        raise_on_status=False,
    )


def _transport_error(exc: requests.RequestException, base_url: str) -> ProxyError:
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)) or isinstance(
        reason, ConnectTimeoutError
    ):
        return ProxyError(f"cannot reach the proxy at {base_url}: {_short(reason)}")
    return ProxyError(f"no answer from the proxy at {base_url}: {_short(reason)}", answer_lost=True)


def _short(reason: object) -> str:
    text = str(reason)
    return text.split(": ", 1)[-1] if "object at 0x" in text else text


def _query(params: dict[str, Any] | None) -> str:
    return "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
