"""A small typed client for the LiteLLM Proxy's /user, /team, /key and /invitation endpoints.

It knows HTTP and LiteLLM, prints nothing and knows nothing of CSV. What differs between proxy
releases is decided once, in Release, from the release the proxy reports (docs/litellm-notes.md):

- "already exists" is 409 from 1.81 on and 400 before; an unknown user is 404 on /user/info
  from 1.81 on and an empty 200 before;
- /user/delete is all-or-nothing: one unknown id fails the whole batch with 404;
- before 1.100 a team's roster is read, changed and written back without a lock, so parallel
  writes to one team lose members: this client serializes them there;
- before 1.74 /user/new does not write the team's roster: members are added with member_add.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import math
import random
import re
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

log = logging.getLogger("litellm_client")

ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")
PAGE_SIZE = 100  # the proxy answers 422 above 100
BATCH_SIZE = 100  # ids per /user/delete, members per /team/member_add
BULK_SIZE = 500  # users per request on the bulk endpoints
FEW_LOOKUPS = 10  # emails of new users looked up before creating them; more are left to the create's refusal
RETRIES = 5
BACKOFF_MAX = 20.0  # seconds, before jitter
# what /user/new copies from the user onto the key it creates: a key issued again copies it too
KEY_COPIES = ("models", "tpm_limit", "rpm_limit", "max_parallel_requests", "metadata")
SOMETIMES_UNLISTED = ("max_parallel_requests",)  # user fields some releases' listings leave out
SWEEPS = 3  # readings of a listing that came back short
RECHECK_DELAYS = (0.0, 1.0, 2.0, 4.0)  # seconds before each look for what a lost create made
GONE_AFTER = 3  # requests in a row without an answer, across all threads: the proxy is gone
OLDEST_RELEASE = (1, 65, 0)
# Requests that are not repeated blindly once the proxy may have acted on them: creates, and
# /user/delete (a repeat would answer 404 for users this run deleted).
BULK_CREATE = "/management/v1/users/bulk"
BULK_DELETE = "/management/v1/users/bulk_delete"
NOT_RESENT = ("/user/new", "/team/new", "/key/generate", "/invitation/new", "/user/delete", BULK_CREATE, BULK_DELETE)
SECRET_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-]{3,}")
URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)
_REPR_ERROR = re.compile(r"""^\{['"](?:error|message)['"]:\s*['"](.*)['"]\}$""", re.S)
_MISSING_USER = re.compile(r"passed user_id=(\S+)")
T = TypeVar("T")


def redact(text: str) -> str:
    """Hide every virtual key (sk-...) in text, and the credentials of any URL in it (a proxy URL
    given as https://user:password@host); abbreviated key names like 'sk-...abcd' stay."""
    return URL_CREDENTIALS.sub(r"\1***@", SECRET_PATTERN.sub("sk-***", text))


class ProxyError(Exception):
    """The proxy refused a request, gave no answer (status None), or is not the LiteLLM API.

    answer_lost means the request may have been applied although no answer arrived.
    user_id names a user that exists, or may exist, because of the failed operation.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        body: object = None,
        *,
        answer_lost: bool = False,
        user_id: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.answer_lost = answer_lost
        self.user_id = user_id

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status else self.message

    # What an error means. Where the status alone does not say, the proxy's message text does:
    # every match on that text is here, in one block.

    @property
    def already_exists(self) -> bool:
        """A user (or key alias) that exists already: 409 from 1.81, 400 before."""
        return self.status == 409 or (self.status == 400 and "already exist" in self._text)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def needs_licence(self) -> bool:
        """A premium feature (team admins from 1.74) refused without LiteLLM's Enterprise licence."""
        return "premium feature" in self._text

    @property
    def auth_refused(self) -> bool:
        return self.status in (401, 403)

    @property
    def user_not_found(self) -> bool:
        """A user that is not there (a bulk row's error, or a 404)."""
        return self.status == 404 or "not found" in self._text

    @property
    def already_in_team(self) -> bool:
        return self.status == 400 and "already in team" in self._text

    @property
    def not_in_team(self) -> bool:
        return self.status == 400 and "not found in team" in self._text

    @property
    def cannot_sort(self) -> bool:
        """/user/list refused its sort_by (a release that cannot sort by that column)."""
        return self.status in (400, 422) and "sort" in self._text

    @property
    def key_hashed_again(self) -> bool:
        """1.74.15's /key/unblock hashes the hash it is given and finds no such key."""
        return self.status == 401 and "not found in db" in self._text

    @property
    def default_user_missing(self) -> bool:
        """/invitation/new needs a user row for the master key's own user (default_user_id)."""
        return "litellm_usertable" in self._text

    @property
    def missing_user_id(self) -> str | None:
        """The id /user/delete names when it refuses a batch for one unknown user."""
        match = _MISSING_USER.search(self.message)
        return match.group(1) if match else None

    @property
    def _text(self) -> str:
        return self.message.lower()


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


DURATION_WORDS = ("hourly", "daily", "weekly", "monthly")  # read by 1.108 and later


def duration_problem(text: str) -> str | None:
    """Why no release of LiteLLM reads a duration as written, or None: its parser takes a whole
    number, more than 0, then s, m, h, d, w or mo (anything after that is ignored: `24hr` is 24
    hours), and months only one at a time."""
    match = re.match(r"(\d+)(mo|[smhdw])", text)
    if not match or int(match.group(1)) == 0:
        return f"'{text}' is not a duration such as 30s, 30m, 24h, 30d, 2w or 1mo"
    if match.group(2) == "mo" and int(match.group(1)) != 1:
        return f"'{text}': LiteLLM resets budgets monthly only as 1mo"
    return None


def _version(text: object) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", str(text or ""))
    return tuple(int(part) for part in match.groups()) if match else None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def chunks(items: Sequence[T], size: int = BATCH_SIZE) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class Release:
    """What this proxy release can do, decided once from the version it reports. A proxy that
    does not say is treated as the oldest supported release: the safe paths work everywhere."""

    version: tuple[int, ...] | None

    def at_least(self, *version: int) -> bool:
        return self.version is not None and self.version >= version

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "an unknown release"

    @property
    def supported(self) -> bool:
        return self.version is None or self.version >= OLDEST_RELEASE

    @property
    def rosters_locked(self) -> bool:
        """Writes to one team may overlap: the proxy locks the roster (seen on 1.108.7, not 1.80.7)."""
        return self.at_least(1, 100)

    @property
    def user_new_writes_rosters(self) -> bool:
        """/user/new with a list of teams puts the user on their rosters (1.65.8 only sets the
        user's own list; a single team_id works everywhere)."""
        return self.at_least(1, 74)

    @property
    def refuses_taken_emails(self) -> bool:
        """/user/new and the bulk create refuse an email a user has, in any case (from 1.80;
        1.65 and 1.74 compare it exactly)."""
        return self.at_least(1, 80)

    @property
    def filters_users_by_email(self) -> bool:
        """/user/list?user_email=: a case-insensitive substring match (from 1.74; 1.65.8 ignores it)."""
        return self.at_least(1, 74)

    @property
    def lists_key_aliases(self) -> bool:
        """/key/aliases: every key's alias and nothing else (from 1.80; paged, with a search, later)."""
        return self.at_least(1, 80)

    @property
    def pages_teams(self) -> bool:
        """/v2/team/list: teams a page at a time, without their keys, filtered by alias (from 1.74)."""
        return self.at_least(1, 74)

    @property
    def bulk_users(self) -> bool:
        """/management/v1/users/bulk and .../bulk_delete: 500 users a request (seen on 1.108.7)."""
        return self.at_least(1, 108)

    @property
    def bulk_user_update(self) -> bool:
        """/user/bulk_update: 500 users a request (from 1.80)."""
        return self.at_least(1, 80)

    @property
    def user_delete_cleans_rosters(self) -> bool:
        """/user/delete takes the user off its teams' rosters (1.65.8 leaves it there; 1.80.7 does)."""
        return self.at_least(1, 80)

    @property
    def member_delete_deletes_keys(self) -> bool:
        """Leaving a team deletes the user's keys for it (not on 1.65.8 nor 1.74.15; 1.80.7 does)."""
        return self.at_least(1, 80)

    @property
    def update_clears_with_null(self) -> bool:
        """/user/update applies a null max_budget, budget_duration, tpm_limit or rpm_limit (1.108.7;
        1.90.7 and 1.100.5 clear max_budget only, 1.80.7 none of them)."""
        return self.at_least(1, 108)

    @property
    def update_sets_alias_and_zero(self) -> bool:
        """/user/update can set user_alias, and a 0 budget or limit (1.65.8 ignores both)."""
        return self.at_least(1, 80)

    @property
    def weekly_durations(self) -> bool:
        """A duration in weeks lasts weeks: 1.80.7 resets a 2w budget, and ends a 2w key, the next
        day (1.65.8 and 1.108.7 read weeks; the releases between are taken to be like 1.80.7)."""
        return self.version is not None and (not self.at_least(1, 74) or self.at_least(1, 108))

    # What the planners ask: a change this release cannot make is a row error before any change.

    def update_refusal(self, column: str, *, clearing_with_null: bool = False, zero: bool = False) -> str | None:
        """Why this release's /user/update cannot make a change to a column, or None."""
        if clearing_with_null and not self.update_clears_with_null:
            return f"{column} cannot be cleared on LiteLLM {self.label}: its /user/update ignores null"
        if column == "user_alias" and not self.update_sets_alias_and_zero:
            return f"user_alias cannot be changed on LiteLLM {self.label}: its /user/update has no such field"
        if zero and not self.update_sets_alias_and_zero:
            return f"{column} cannot be set to 0 on LiteLLM {self.label}: its /user/update ignores 0"
        return None

    def duration_refusal(self, column: str, text: str) -> str | None:
        """Why this release would not take a duration as written, or read it otherwise, or None.
        Every release stores the text as sent; what each reads (docs/litellm-notes.md):
        - 1.108 on: its own parser's forms (`30s`, `24h`, `24hr`, `60min`, `2w`, `1mo`, `daily`),
          more than 0, months only as 1mo; anything else is a 400;
        - 1.74 to 1.107: the letters after the number must be one of s, m, h, d, mo, or the budget
          resets at every midnight (`24hr`, `60min`, `2w` do), and N months but 1 fail with a 500;
        - 1.65 to 1.73: the parser's forms, but not the words (a 500 there)."""
        word = text.strip().lower() in DURATION_WORDS
        problem = None if word and self.at_least(1, 108) else duration_problem(text)
        if problem:
            return f"{column} {problem}"
        match = re.match(r"(\d+)([a-z]*)", text)
        value, letters = (int(match.group(1)), match.group(2)) if match else (0, "")
        if letters.startswith("w") and not self.weekly_durations:
            return (
                f"{column} '{text}': LiteLLM {self.label} reads a duration in weeks as one day; write it in days "
                f"({value * 7}d)"
            )
        midnight_reader = self.version is None or (self.at_least(1, 74) and not self.at_least(1, 108))
        if midnight_reader and letters not in ("s", "m", "h", "d", "mo", "w"):
            return (
                f"{column} '{text}': LiteLLM {self.label} reads it as 'every midnight'; write it as 24h, 60m, 30d ..."
            )
        return None


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
    budget_duration: str | None = None
    models: tuple[str, ...] = ()
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    max_parallel_requests: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    spend: float = 0.0
    created_at: str | None = None
    updated_at: str | None = None
    unlisted: frozenset[str] = frozenset()  # columns the answer did not carry (unknown, not unset)

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> User:
        metadata = row.get("metadata") or {}
        if isinstance(metadata, str):  # some releases hand metadata back as JSON text
            try:
                metadata = json.loads(metadata)
            except ValueError:
                metadata = {}
        return cls(
            user_id=str(row["user_id"]),
            email=row.get("user_email") or None,
            role=sys.intern(row["user_role"]) if row.get("user_role") else None,  # shared: 100,000 users, 4 roles
            teams=_unique(sys.intern(team) for team in row.get("teams") or ()),  # 1.80 can list a team twice
            key_count=int(row.get("key_count") or 0),
            user_alias=row.get("user_alias"),
            max_budget=_float(row.get("max_budget")),
            budget_duration=row.get("budget_duration"),
            models=tuple(row.get("models") or ()),
            tpm_limit=_int(row.get("tpm_limit")),
            rpm_limit=_int(row.get("rpm_limit")),
            max_parallel_requests=_int(row.get("max_parallel_requests")),
            metadata=metadata if isinstance(metadata, dict) else {},
            spend=float(row.get("spend") or 0.0),
            created_at=row.get("created_at"),
            updated_at=row.get("updated_at"),
            unlisted=frozenset(name for name in SOMETIMES_UNLISTED if name not in row),
        )

    def knows(self, column: str) -> bool:
        """Whether this copy holds the user's value of a column (before 1.90 the listing leaves
        max_parallel_requests out, and only /user/info shows it)."""
        return column not in self.unlisted

    @property
    def is_managed(self) -> bool:
        """Users the tools may delete: with an email and one of the four roles."""
        return bool(self.email) and self.role in ROLES


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class Team:
    """A team with its roster and the settings its keys spend under (budget, models, limits)."""

    team_id: str
    alias: str | None
    member_ids: frozenset[str]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    updated_at: str | None = None
    admin_ids: frozenset[str] = frozenset()  # the members whose role in the team is admin
    max_budget: float | None = None
    budget_duration: str | None = None
    models: tuple[str, ...] = ()
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    spend: float = 0.0

    @classmethod
    def from_api(cls, row: dict[str, Any]) -> Team:
        roster = [m for m in row.get("members_with_roles") or () if isinstance(m, dict) and m.get("user_id")]
        metadata = row.get("metadata")
        return cls(
            str(row["team_id"]),
            row.get("team_alias"),
            frozenset(str(m["user_id"]) for m in roster),
            metadata if isinstance(metadata, dict) else {},
            row.get("updated_at"),
            frozenset(str(m["user_id"]) for m in roster if m.get("role") == "admin"),
            _float(row.get("max_budget")),
            row.get("budget_duration") or None,
            tuple(row.get("models") or ()),
            _int(row.get("tpm_limit")),
            _int(row.get("rpm_limit")),
            float(row.get("spend") or 0.0),
        )


@dataclass(frozen=True)
class NewUserSpec:
    """A user to create. user_id: given to restore a user under its former id; otherwise the
    client picks one, so that a create whose answer is lost can be looked up exactly."""

    email: str
    role: str | None
    team_ids: tuple[str, ...] = ()
    key_alias: str | None = None
    with_key: bool = True
    key_duration: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)  # the access columns, as /user/new takes them
    user_id: str | None = None


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
    unconfirmed: list[User] = field(default_factory=list)  # gone after a lost answer: this run, or someone else
    failed: dict[str, str] = field(default_factory=dict)  # user_id -> why the proxy did not delete it
    left_on_rosters: dict[str, str] = field(default_factory=dict)  # user_id -> deleted, but a roster still has it


@dataclass(frozen=True, slots=True)
class Key:
    token: str  # the hash the proxy names the key by
    alias: str | None
    team_id: str | None
    blocked: bool


class UserPages:
    """Every user matching a filter, read page by page, in the order of their user_id.

    The first page is read at once, so an unusable proxy fails here, and says how many follow.
    What 1.65 does not do, this does: it ignores some filters and matches others differently,
    so they are applied here too (`unfiltered` counts the rows the proxy sent that did not
    match); it cannot sort, so a listing that comes back unsorted is sorted here.

    Pages are read by their number, so a user deleted meanwhile from a page already read moves
    every later user one place up, and one of them slips past the page boundary unread. Where the
    users changed while the pages were read (a page counts another total, the pages hold another
    number of users than they count, or a user was created after the reading began) the listing
    is read again, and the users it missed are added: an export never leaves out a user who was
    there all along, even while another run adds and deletes users.
    """

    def __init__(self, client: LiteLLMClient, params: dict[str, str], first: dict[str, Any] | None = None):
        self._client = client
        self._params = params
        self._first = first or client._user_page(params, 1)
        self._began = client.proxy_time()  # the proxy's clock as the reading began
        self.total = int(self._first.get("total") or 0)
        self.unfiltered = 0

    def __iter__(self) -> Iterator[User]:
        ids = [str(row["user_id"]) for row in self._first["users"]]
        if ids == sorted(ids):
            yield from self._read()
        else:  # the proxy did not sort: a listing in a stable order needs them all first
            yield from sorted(self._read(), key=lambda user: user.user_id)

    def _read(self) -> Iterator[User]:
        seen: set[str] = set()
        first, began = self._first, self._began
        for _ in range(SWEEPS):
            pages = int(first.get("total_pages") or 1)
            totals: set[int] = set()
            read: set[str] = set()
            created_meanwhile = False
            for page in _pages(lambda n: self._client._user_page(self._params, n), first, pages, self._client.workers):
                if isinstance(page.get("total"), int):
                    totals.add(page["total"])
                for row in page["users"]:
                    user = User.from_api(row)
                    read.add(user.user_id)
                    created_meanwhile = created_meanwhile or _later(user.created_at, began)
                    if user.user_id not in seen:  # pages shift when users are added meanwhile
                        seen.add(user.user_id)
                        if self._wanted(user):
                            yield user
                        else:
                            self.unfiltered += 1
            if totals <= {len(read)} and not created_meanwhile:
                return
            first = self._client._user_page(self._params, 1)
            began = self._client.proxy_time()

    def _wanted(self, user: User) -> bool:
        role, email, team = (self._params.get(name) for name in ("role", "user_email", "team"))
        return (
            (not role or user.role == role)
            and (not email or email.lower() in (user.email or "").lower())
            and (not team or team in user.teams)
        )


def _later(stamp: str | None, began: datetime | None) -> bool:
    """Whether a user was created after a reading began: more than a second after it by the
    proxy's clock (its Date header counts whole seconds)."""
    if not stamp or began is None:
        return False
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)) > began + timedelta(seconds=1)


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


class _Health:
    """Whether the proxy still answers, across every thread: GONE_AFTER requests in a row with no
    answer (after their retries) mean it is gone; any answer at all means it is not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._last = ""

    def answered(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self, error: ProxyError) -> None:
        with self._lock:
            self._failures += 1
            self._last = error.message

    @property
    def gone(self) -> str | None:
        with self._lock:
            return f"the proxy stopped answering ({self._last})" if self._failures >= GONE_AFTER else None


def _shape(answer: Any, kind: type, *keys: str) -> bool:
    return isinstance(answer, kind) and all(key in answer for key in keys)  # type: ignore[operator]


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
        changed_by: str | None = None,
    ):
        """changed_by: who the proxy's audit log names as the author of each change (the header
        litellm-changed-by; LiteLLM honours it where its audit log is enabled)."""
        self.base_url = base_url.rstrip("/")
        self.workers = workers
        self.read_only = read_only
        self._timeout = (min(timeout, 10.0), timeout)
        self._sort_by_user_id = True
        self._release: Release | None = None
        self._readiness: dict[str, Any] = {}  # what the release look-up's answer said about the proxy
        self._clock: tuple[datetime, float] | None = None
        self._health = _Health()
        self._guard = threading.Lock()
        self._team_locks: dict[str, threading.RLock] = {}  # re-entered when a lost create is finished
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {master_key}"
        if changed_by:
            self._session.headers["litellm-changed-by"] = changed_by
        # given with each request: a session-wide setting loses to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        self._verify = verify
        pool = workers + 4
        self._session.mount(self.base_url, HTTPAdapter(pool_maxsize=pool, max_retries=_retry(resend=True)))
        for path in NOT_RESENT:
            self._session.mount(self.base_url + path, HTTPAdapter(pool_maxsize=pool, max_retries=_retry(resend=False)))
        self._quick = requests.Session()  # one try, for calls that must not wait (the lease's renewals)
        self._quick.headers.update(self._session.headers)
        self._quick.mount(self.base_url, HTTPAdapter(pool_maxsize=2, max_retries=0))

    def __enter__(self) -> LiteLLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._session.close()
        self._quick.close()

    # -- transport -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        shape: Callable[[Any], bool] | None = None,
        quick: float | None = None,
    ) -> Any:
        """One request; its JSON answer, or ProxyError. shape: what a LiteLLM answer to this path
        looks like; anything else (a login page, a reverse proxy's landing page) is refused.
        quick: one try only, with this timeout in seconds."""
        if self.read_only and method != "GET":
            raise RuntimeError(f"read-only client asked to {method} {path}")
        started = time.monotonic()
        session, timeout = (self._quick, (quick, quick)) if quick else (self._session, self._timeout)
        try:
            response = session.request(
                method, self.base_url + path, params=params, json=body, timeout=timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            error = _transport_error(exc, self.base_url)
            self._health.failed(error)
            raise error from exc
        self._health.answered()
        self._note_clock(response)
        try:
            payload: Any = json.loads(response.content)  # from bytes: no decoded copy of a big answer
            is_json = True
        except ValueError:
            payload, is_json = response.text, False
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s %s%s -> %s in %.0f ms", method, path, _query(params), response.status_code, elapsed)
            if body is not None:
                log.debug("  request: %s", redact(str(body)[:2000]))
            log.debug("  answer: %s", redact(response.text[:2000]))
        if response.status_code >= 400:
            lost = response.status_code in (502, 504) and path in NOT_RESENT
            raise ProxyError(error_message(payload), response.status_code, payload, answer_lost=lost)
        if not is_json or (shape is not None and not shape(payload)):
            raise ProxyError(_not_the_api(response), response.status_code)
        return payload

    def _note_clock(self, response: requests.Response) -> None:
        try:
            stamp = email.utils.parsedate_to_datetime(response.headers["Date"])
        except (KeyError, TypeError, ValueError):
            return
        self._clock = (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc), time.monotonic())

    def proxy_time(self) -> datetime | None:
        """The proxy's clock (from the Date of its last answer): what its own timestamps compare with."""
        if self._clock is None:
            return None
        stamp, seen = self._clock
        return stamp + timedelta(seconds=time.monotonic() - seen)

    @property
    def stop_reason(self) -> str | None:
        """Why a run should stop starting rows: the proxy stopped answering, or None."""
        return self._health.gone

    # -- release ---------------------------------------------------------------------------

    @property
    def release(self) -> Release:
        """What the proxy's release can do (asked once, on first need)."""
        with self._guard:
            if self._release is None:
                self._release = Release(self._read_version())
                log.debug("proxy release: %s", self._release.label)
            return self._release

    def _read_version(self) -> tuple[int, ...] | None:
        # recent releases tell the master key only; older ones tell anyone on the public probe
        for path in ("/health/readiness/details", "/health/readiness"):
            try:
                answer = self._call("GET", path)
            except ProxyError as exc:
                if exc.status is None:
                    raise
                continue
            if isinstance(answer, dict) and _version(answer.get("litellm_version")):
                self._readiness = answer
                return _version(answer["litellm_version"])
        return None

    @property
    def known_release(self) -> str | None:
        """The release, if the run has asked for it already (never a request of its own)."""
        return self._release.label if self._release else None

    @property
    def caches_apart(self) -> bool:
        """The proxy says it runs several processes without Redis (/health/readiness/details,
        show_no_redis_warning, 1.108 on): each process keeps users and keys in its own cache, for
        60 s by default, so a blocked key or an old role can still be honoured by another one."""
        return bool(self.release and self._readiness.get("show_no_redis_warning"))

    def require_supported(self) -> None:
        """Refuse to write to a release older than the tools support (before any change)."""
        if not self.release.supported:
            raise ProxyError(
                f"this proxy runs LiteLLM {self.release.label}, older than 1.65, the oldest release these tools "
                "support (docs/litellm-notes.md)"
            )

    @property
    def rules(self) -> Release:
        """What this proxy's release can and cannot do, for planners that must refuse a change
        the proxy would not make (Release.update_refusal, Release.duration_refusal)."""
        return self.release

    @property
    def parallel_creates_lose_members(self) -> bool:
        """Whether users created into one team at once can be missing from its roster afterwards
        (before 1.100): the caller creates them in parallel anyway, then rejoins the lost ones."""
        return not self.release.rosters_locked

    @contextmanager
    def team_writes(self, team_ids: Iterable[str]) -> Iterator[None]:
        """Hold the given teams while changing their rosters, where the proxy does not lock them
        itself (before 1.100: parallel writes to one team lose members there)."""
        ids = sorted(set(team_ids))
        if not ids or self.release.rosters_locked:
            yield
            return
        with self._guard:
            locks = [self._team_locks.setdefault(team_id, threading.RLock()) for team_id in ids]
        with ExitStack() as held:
            for lock in locks:  # always in sorted order, so two writers never deadlock
                held.enter_context(lock)
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
        shape = lambda answer: _shape(answer, dict, "users") and isinstance(answer["users"], list)  # noqa: E731
        if self._sort_by_user_id:
            try:
                sorted_query = {**query, "sort_by": "user_id", "sort_order": "asc"}
                return dict(self._call("GET", "/user/list", params=sorted_query, shape=shape))
            except ProxyError as exc:
                if not exc.cannot_sort:
                    raise
                log.debug("proxy cannot sort users by user_id; paging in its default order")
                self._sort_by_user_id = False
        return dict(self._call("GET", "/user/list", params=query, shape=shape))

    def users_named(
        self, emails: Sequence[str], user_ids: Sequence[str], *, refused_if_taken: Sequence[str] = ()
    ) -> tuple[list[User], bool]:
        """The users a small file names, and whether that is every user: each email looked up
        (users whose email holds it, any case: the caller compares exactly) and the user_ids 100 a
        request, where that takes fewer requests than listing every user (the proxy's size is read
        first, one request); otherwise, or on a release that cannot filter by email, every user.

        refused_if_taken: emails of users about to be created, which the create itself refuses if
        a user has one, in any case (from 1.80): looked up too where they are few (FEW_LOOKUPS),
        and otherwise left to that refusal, which costs no request at all."""
        if len(refused_if_taken) <= FEW_LOOKUPS or not self.release.refuses_taken_emails:
            emails = [*emails, *refused_if_taken]
        if not emails and not user_ids:
            return [], False
        if emails and not self.release.filters_users_by_email:
            return list(self.users()), True
        listing = self._user_page({}, 1)  # the first page of every user: how many there are
        rest = int(listing.get("total_pages") or 1) - 1  # what listing them all takes from here
        by_id = math.ceil(len(user_ids) / PAGE_SIZE)
        if len(emails) + by_id >= rest:
            return list(UserPages(self, {}, listing)), True
        with ThreadPoolExecutor(self.workers, thread_name_prefix="lookup") as pool:
            answers = list(pool.map(lambda term: self._user_page({"user_email": term}, 1), emails))
        more = sum(max(0, int(answer.get("total_pages") or 1) - 1) for answer in answers)
        if len(emails) + more + by_id >= rest:  # emails that match many users: listing them all is cheaper
            return list(UserPages(self, {}, listing)), True
        found: dict[str, User] = {}
        for term, answer in zip(emails, answers, strict=True):
            found.update((user.user_id, user) for user in UserPages(self, {"user_email": term}, answer))
        found.update(self.existing(user_ids))
        return list(found.values()), False

    def existing(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users among these ids that exist now, by id: exact, whatever the ids hold."""
        found: dict[str, User] = {}
        listable = [user_id for user_id in user_ids if "," not in user_id]
        for batch in chunks(listable):
            # two or more ids are an exact match; one id alone is a substring from 1.81 on
            query = ",".join(batch if len(batch) > 1 else [*batch, *batch])
            answer = self._call(
                "GET", "/user/list", params={"user_ids": query, "page": 1, "page_size": PAGE_SIZE},
                shape=lambda a: _shape(a, dict, "users"),
            )  # fmt: skip
            found.update((user.user_id, user) for user in map(User.from_api, answer["users"]) if user.user_id in batch)
        for user_id in user_ids:
            if "," in user_id:  # a comma would split it in the listing's filter: ask for it alone
                user = self._user_info(user_id)
                if user:
                    found[user_id] = user
        return found

    def user_details(self, user_ids: Sequence[str], *, users_on_proxy: float = math.inf) -> dict[str, User]:
        """These users with all their fields, by id: one /user/info each or, where they outnumber
        the pages of a listing of every user (about users_on_proxy of them), the whole user table
        in one request (/spend/users: every row as the database holds it; 20,000 users in 2 s
        on 1.80.7, where 1,000 /user/info take 10)."""
        if len(user_ids) >= users_on_proxy / PAGE_SIZE:
            wanted = set(user_ids)
            try:
                rows = self._call("GET", "/spend/users", shape=lambda answer: isinstance(answer, list))
            except ProxyError as exc:
                if exc.status != 404:
                    raise
                rows = None  # a proxy without it (none seen): one by one
            if rows is not None:
                return {
                    str(row["user_id"]): User.from_api(row)
                    for row in rows
                    if isinstance(row, dict) and row.get("user_id") in wanted
                }
        with ThreadPoolExecutor(self.workers, thread_name_prefix="info") as pool:
            found = dict(zip(user_ids, pool.map(self._user_info, user_ids), strict=True))
        return {user_id: user for user_id, user in found.items() if user}

    def _user_info(self, user_id: str) -> User | None:
        try:
            answer = self._call("GET", "/user/info", params={"user_id": user_id}, shape=lambda a: _shape(a, dict))
        except ProxyError as exc:
            if exc.not_found:
                return None
            raise
        info = answer.get("user_info")  # up to 1.80 an unknown id is a 200 with an empty record
        if not isinstance(info, dict) or info.get("user_id") != user_id:
            return None
        return User.from_api({**info, "key_count": len(answer.get("keys") or ())})

    def create_user(self, spec: NewUserSpec, *, hold_teams: bool = True) -> NewUser:
        """Create a user with its key and teams, never twice.

        With one team the key belongs to that team too. If the answer is lost, the user is looked
        up by its id: found, its unseen key is replaced; not found, the row fails and nothing is
        sent again. Once the user exists (or may), nothing raises without naming it
        (ProxyError.user_id), so a key that was issued is never dropped. Without hold_teams, creates
        into one team run in parallel even where the proxy may then drop members from the roster
        (before 1.100): the caller puts them back (rejoin) once no create is in flight.
        """
        user_id = spec.user_id or str(uuid.uuid4())
        with self.team_writes(spec.team_ids if hold_teams else ()):
            try:
                answer = self._call(
                    "POST", "/user/new", body=self._new_user(spec, user_id), shape=lambda a: _shape(a, dict, "user_id")
                )
            except ProxyError as exc:
                if not exc.answer_lost:
                    raise
                log.warning("no answer to /user/new for user %s; checking whether it was created", user_id)
                outcome = self._recover([spec], [user_id], exc)[0]
                if isinstance(outcome, ProxyError):
                    raise outcome from exc
                return outcome
        new = NewUser(user_id, str(answer.get("key") or ""), tuple(answer.get("models") or ()))
        return self._join_missing(spec, new, answer.get("teams"))

    def _new_user(self, spec: NewUserSpec, user_id: str) -> dict[str, Any]:
        """The /user/new body (a row of the bulk create takes the same fields)."""
        body: dict[str, Any] = {
            **spec.fields,
            "user_id": user_id,
            "user_email": spec.email,
            "auto_create_key": spec.with_key,
        }
        if spec.role:
            body["user_role"] = spec.role
        if spec.with_key and spec.key_alias:
            body["key_alias"] = spec.key_alias
        if spec.with_key and spec.key_duration:
            body["duration"] = spec.key_duration
        if len(spec.team_ids) == 1:
            body["team_id"] = spec.team_ids[0]  # joins the team and gives the key to it, on every release
        elif spec.team_ids and self.release.user_new_writes_rosters:
            body["teams"] = list(spec.team_ids)
        return body

    def _join_missing(self, spec: NewUserSpec, new: NewUser, joined: Any) -> NewUser:
        """Check what the create really did with the teams, and add the user where it did not:
        from 1.100 the answer lists the teams joined (a failed join is silent); before 1.74 a
        list of teams never reaches the rosters."""
        if len(spec.team_ids) > 1 and not self.release.user_new_writes_rosters:
            missing = list(spec.team_ids)
        elif isinstance(joined, list) and self.release.rosters_locked:
            missing = [team_id for team_id in spec.team_ids if team_id not in joined]
        else:
            missing = []
        try:
            for team_id in missing:
                with self.team_writes([team_id]):
                    self._member_add_batch(team_id, [new.user_id])
        except ProxyError as exc:
            return NewUser(new.user_id, new.key, new.models, problem=f"not added to every team: {exc}")
        return new

    def rejoin(self, members: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """Put back on each team's roster (team_id -> user_ids) the users it lost while they were
        created in parallel: before 1.100 the proxy rewrites a roster whole, so of two writes at
        once one member is dropped. One /team/info per team, then the lost ones 100 a request,
        which is cheaper than one create at a time. Per user_id: why it is not on the roster."""
        problems: dict[str, str] = {}
        for team_id, user_ids in members.items():
            try:
                roster = self.team(team_id).member_ids
                lost = [user_id for user_id in user_ids if user_id not in roster]
                gone = self.add_team_members(team_id, lost) if lost else set()
            except ProxyError as exc:
                problems |= dict.fromkeys(user_ids, f"not added to team {team_id}: {exc}")
                continue
            problems |= dict.fromkeys(gone, f"not added to team {team_id}: deleted meanwhile")
        return problems

    def team(self, team_id: str) -> Team:
        """One team with its roster, as /team/info shows it."""
        shape = lambda answer: _shape(answer, dict, "team_info")  # noqa: E731
        answer = self._call("GET", "/team/info", params={"team_id": team_id}, shape=shape)
        return Team.from_api(answer["team_info"])

    @property
    def create_batch_size(self) -> int:
        """How many users create_many takes at once: the bulk create's 500 where the release has it."""
        return BULK_SIZE if self.release.bulk_users else 1

    def create_many(self, specs: Sequence[NewUserSpec], *, hold_teams: bool = True) -> list[NewUser | ProxyError]:
        """Create up to create_batch_size users: one outcome per spec, in order, the user or why not.
        Each gets the same end state on either path (see create_user, and its hold_teams)."""
        if self.release.bulk_users:
            try:
                return self._create_bulk(specs)
            except ProxyError as exc:  # the request failed as a whole (a lost answer is recovered inside)
                return [exc] * len(specs)
        outcomes: list[NewUser | ProxyError] = []
        for spec in specs:
            try:
                outcomes.append(self.create_user(spec, hold_teams=hold_teams))
            except ProxyError as exc:
                outcomes.append(exc)
        return outcomes

    def _create_bulk(self, specs: Sequence[NewUserSpec]) -> list[NewUser | ProxyError]:
        """Create up to BULK_SIZE users in one request (release.bulk_users), each with the end state
        create_user gives it: role, access columns, teams (rosters included), a key with its alias
        and, with one team, in that team. A lost answer is never sent again: the users are looked
        up by id and each is finished as after a single lost create."""
        ids = [spec.user_id or str(uuid.uuid4()) for spec in specs]
        rows = [self._new_user(spec, user_id) for spec, user_id in zip(specs, ids, strict=True)]
        with self.team_writes(team for spec in specs for team in spec.team_ids):
            try:
                answer = self._call("POST", BULK_CREATE, body={"users": rows}, shape=lambda a: _shape(a, dict, "data"))
            except ProxyError as exc:
                if not exc.answer_lost:
                    raise
                log.warning("no answer to a bulk create of %d users; checking which were created", len(specs))
                return self._recover(specs, ids, exc)
        outcomes: list[NewUser | ProxyError] = []
        for spec, user_id, row in zip(specs, ids, answer["data"], strict=True):
            if not row.get("success"):
                error = str(row.get("error") or "not created")
                outcomes.append(ProxyError(error, 400, row))
                continue
            new = NewUser(user_id, str(row.get("key") or ""), tuple(spec.fields.get("models") or ()))
            outcomes.append(self._join_missing(spec, new, row.get("teams")))
        return outcomes

    def _recover(
        self, specs: Sequence[NewUserSpec], ids: Sequence[str], lost: ProxyError
    ) -> list[NewUser | ProxyError]:
        """After a lost create: which of these users were created? Never sent again."""
        try:
            found = {user.user_id: user for user in self._look_for(lambda: list(self.existing(ids).values()))}
        except ProxyError as exc:
            return [
                ProxyError(
                    f"{lost.message}; then the proxy could not be asked whether it was created ({exc.message}): "
                    "the user may have been created: check",
                    answer_lost=True,
                    user_id=user_id,
                )
                for user_id in ids
            ]
        outcomes: list[NewUser | ProxyError] = []
        for spec, user_id in zip(specs, ids, strict=True):
            if user_id not in found:
                outcomes.append(
                    ProxyError(
                        f"{lost.message}; the user did not appear afterwards and was not sent again, so it "
                        "cannot exist twice",
                        answer_lost=True,
                    )
                )
                continue
            try:
                outcomes.append(self.reissue_key_and_join(spec, found[user_id]))
            except ProxyError as exc:
                outcomes.append(exc)
        return outcomes

    def reissue_key_and_join(self, spec: NewUserSpec, user: User) -> NewUser:
        """Finish a user whose creation's answer was never seen: its key was issued but nobody saw
        it, so replace it (same alias), and make sure it is on its teams' rosters."""
        key = ""
        try:
            if spec.with_key:
                stale = [item.token for item in self.user_keys(user.user_id) if item.alias == (spec.key_alias or None)]
                if stale:
                    self.delete_keys(stale)
                key = self.generate_key(
                    user.user_id,
                    team_id=spec.team_ids[0] if len(spec.team_ids) == 1 else None,
                    alias=spec.key_alias,
                    duration=spec.key_duration,
                    limits={name: value for name, value in spec.fields.items() if name in KEY_COPIES},
                )
            for team_id in spec.team_ids:
                with self.team_writes([team_id]):
                    self._member_add_batch(team_id, [user.user_id])
        except ProxyError as exc:
            exc.user_id = user.user_id
            exc.message = f"created, but its key could not be replaced or its teams joined: {exc.message}"
            raise
        return NewUser(user.user_id, key, user.models)

    def update_user(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """Change a user's fields in one request, and check the proxy applied each one.

        /user/update creates unknown ids, so a user deleted meanwhile would come back as a ghost:
        the ghost is removed and the update reported as not found."""
        answer = self._call(
            "POST", "/user/update", body={**fields, "user_id": user_id}, shape=lambda a: _shape(a, dict)
        )
        problem = self._update_problem(user_id, fields, answer.get("data"))
        if problem:
            raise problem

    @property
    def update_batch_size(self) -> int:
        """How many users update_many takes at once: /user/bulk_update's 500 where the release has it."""
        return BULK_SIZE if self.release.bulk_user_update else 1

    def update_many(self, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, ProxyError | None]:
        """Up to update_batch_size users' changes (user_id, fields), each checked as update_user
        checks one: by user_id, None where it was applied. A request that fails fails them all."""
        if self.release.bulk_user_update:
            try:
                return self._update_bulk(updates)
            except ProxyError as exc:
                return {user_id: exc for user_id, _ in updates}
        outcomes: dict[str, ProxyError | None] = {}
        for user_id, fields in updates:
            try:
                self.update_user(user_id, fields)
                outcomes[user_id] = None
            except ProxyError as exc:
                outcomes[user_id] = exc
        return outcomes

    def _update_bulk(self, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, ProxyError | None]:
        """Up to BULK_SIZE users' changes in one /user/bulk_update (release.bulk_user_update)."""
        body = {"users": [{**fields, "user_id": user_id} for user_id, fields in updates]}
        answer = self._call("POST", "/user/bulk_update", body=body, shape=lambda a: _shape(a, dict, "results"))
        outcomes: dict[str, ProxyError | None] = {}
        for (user_id, fields), result in zip(updates, answer["results"], strict=True):
            if not result.get("success"):
                outcomes[user_id] = ProxyError(str(result.get("error") or "not updated"), 400, result)
                continue
            updated = result.get("updated_user") if isinstance(result.get("updated_user"), dict) else {}
            outcomes[user_id] = self._update_problem(user_id, fields, updated.get("data", updated))
        return outcomes

    def _update_problem(self, user_id: str, fields: Mapping[str, Any], data: Any) -> ProxyError | None:
        """Why an update that the proxy answered did not do what was asked, or None."""
        data = data if isinstance(data, dict) else {}
        if (
            data
            and not data.get("user_email")
            and data.get("created_at")
            and data.get("created_at") == data.get("updated_at")
        ):
            self._call("POST", "/user/delete", body={"user_ids": [user_id]})
            return ProxyError(f"User {user_id} not found", 404)
        ignored = [name for name, value in fields.items() if name in data and not _applied(value, data[name])]
        if ignored:
            return ProxyError(
                f"LiteLLM {self.release.label} did not apply {', '.join(ignored)} "
                f"(it answered {', '.join(f'{name}={data[name]!r}' for name in ignored)})"
            )
        return None

    @property
    def delete_batch_size(self) -> int:
        return BULK_SIZE if self.release.bulk_users else BATCH_SIZE

    def delete_many(self, batch: Sequence[User]) -> DeleteOutcome:
        """Delete up to delete_batch_size users (and, on the proxy, their keys) in one request.

        /user/delete deletes nothing when one id is unknown: such a user is set aside as missing
        and the rest is sent again (the bulk delete of 1.108+ answers per id instead). After a
        lost answer, the users still there are sent again; those gone are reported as
        unconfirmed (this run deleted them, or someone else did meanwhile).
        """
        remaining = {user.user_id: user for user in batch}
        outcome = DeleteOutcome([], [], [])
        lost = 0
        with self.team_writes(team for user in batch for team in user.teams):
            while remaining:
                try:
                    self._delete(remaining, outcome)
                except ProxyError as exc:
                    if exc.not_found:
                        gone = self._missing_ids(exc, list(remaining))
                        outcome.missing.extend(remaining.pop(user_id) for user_id in gone)
                        if not gone:
                            raise
                    elif exc.answer_lost and lost < RETRIES:
                        lost += 1
                        log.warning("no answer to a delete; checking which users are left")
                        gone = set(remaining) - set(self.existing(list(remaining)))
                        outcome.unconfirmed.extend(remaining.pop(user_id) for user_id in gone)
                    else:
                        raise
        if not self.release.user_delete_cleans_rosters:  # 1.65 leaves a deleted user on its teams' rosters
            for user in [*outcome.deleted, *outcome.unconfirmed]:
                for team_id in user.teams:
                    try:
                        self.remove_team_member(team_id, user.user_id, with_keys=False)
                    except ProxyError as exc:
                        outcome.left_on_rosters[user.user_id] = f"still on the roster of team {team_id} ({exc})"
        return outcome

    def _delete(self, remaining: dict[str, User], outcome: DeleteOutcome) -> None:
        """One delete request for the remaining users; those it settled are taken out of it."""
        ids = list(remaining)
        if not self.release.bulk_users:
            self._call("POST", "/user/delete", body={"user_ids": ids})
            outcome.deleted.extend(remaining.values())
            remaining.clear()
            return
        answer = self._call("POST", BULK_DELETE, body={"user_ids": ids}, shape=lambda a: _shape(a, dict, "data"))
        for user_id, row in zip(ids, answer["data"], strict=True):
            user = remaining.pop(user_id)
            if row.get("success"):
                outcome.deleted.append(user)
            elif ProxyError(str(row.get("error")), 400).user_not_found:
                outcome.missing.append(user)
            else:
                outcome.failed[user_id] = str(row.get("error"))

    def _missing_ids(self, exc: ProxyError, ids: list[str]) -> set[str]:
        named = exc.missing_user_id
        if named in ids:
            return {named}
        return set(ids) - set(self.existing(ids))

    def create_invitation(self, user_id: str) -> str:
        """A password-setup invitation for a user (valid for 7 days): its id. A lost answer is
        asked again: a second invitation for the same user does no harm."""
        try:
            try:
                answer = self._call(
                    "POST", "/invitation/new", body={"user_id": user_id}, shape=lambda a: _shape(a, dict, "id")
                )
            except ProxyError as exc:
                if not exc.answer_lost:
                    raise
                answer = self._call(
                    "POST", "/invitation/new", body={"user_id": user_id}, shape=lambda a: _shape(a, dict, "id")
                )
        except ProxyError as exc:
            if exc.default_user_missing:
                raise ProxyError(
                    "the proxy has no user row for the master key's own user (default_user_id), which "
                    "invitations need: create any team once (the proxy adds that user), then retry",
                    exc.status,
                    exc.body,
                ) from exc
            raise
        return str(answer["id"])

    # -- teams -------------------------------------------------------------------------------

    def teams(self, *, alias: str | None = None) -> list[Team]:
        """Every team with its members; with alias, the teams whose alias holds it (a substring,
        any case: the caller matches exactly). From 1.74 a page at a time, without the keys that
        /team/list carries for every team (with 2,000 team keys: 1.5 s, against 0.05 s a page)."""
        if not self.release.pages_teams:
            rows = self._call("GET", "/team/list", shape=lambda a: isinstance(a, list))
            wanted = (alias or "").lower()
            return [Team.from_api(row) for row in rows if wanted in (row.get("team_alias") or "").lower()]

        def fetch(page: int) -> dict[str, Any]:
            query = {"page": page, "page_size": PAGE_SIZE, "sort_by": "team_id", "sort_order": "asc"}
            query |= {"team_alias": alias} if alias else {}
            return dict(self._call("GET", "/v2/team/list", params=query, shape=lambda a: _shape(a, dict, "teams")))

        first = fetch(1)
        pages = _pages(fetch, first, int(first.get("total_pages") or 0), self.workers)
        return [Team.from_api(row) for answer in pages for row in answer["teams"] or () if isinstance(row, dict)]

    def create_team(
        self,
        alias: str | None,
        *,
        team_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Team:
        """Create a team, with settings as /team/new takes them (max_budget, models, ...); if the
        answer is lost, a team that now has this alias (and the id asked for) is that team."""
        body: dict[str, Any] = {**(settings or {}), "team_alias": alias}
        if team_id:
            body["team_id"] = team_id
        if metadata:
            body["metadata"] = dict(metadata)
        try:
            row = self._call("POST", "/team/new", body=body, shape=lambda a: _shape(a, dict, "team_id"))
        except ProxyError as exc:
            if not exc.answer_lost:
                raise
            found = self._look_for(
                lambda: [
                    team for team in self.teams(alias=alias) if team.alias == alias and team_id in (None, team.team_id)
                ]
            )
            if not found:
                raise ProxyError(
                    f"{exc.message}; the team did not appear afterwards and was not sent again", answer_lost=True
                ) from exc
            return found[0]
        return Team.from_api(row)

    def update_team(self, team_id: str, fields: Mapping[str, Any]) -> None:
        """Change a team's settings in one request (null clears a budget, limit or duration; [] the
        models; metadata is replaced whole), and check the proxy applied each one."""
        answer = self._call(
            "POST", "/team/update", body={**fields, "team_id": team_id}, shape=lambda a: _shape(a, dict)
        )
        data = answer.get("data")
        if isinstance(data, dict):
            ignored = [name for name, sent in fields.items() if name in data and not _applied(sent, data[name])]
            if ignored:
                raise ProxyError(f"team {team_id}: the proxy answered 200 but did not change {', '.join(ignored)}")

    def set_team_role(self, team_id: str, user_id: str, *, admin: bool) -> None:
        """Make a member a team admin, or an ordinary member again (/team/member_update). Making
        an admin needs a LiteLLM Enterprise licence from 1.74 (ProxyError.needs_licence)."""
        body = {"team_id": team_id, "user_id": user_id, "role": "admin" if admin else "user"}
        with self.team_writes([team_id]):
            self._call("POST", "/team/member_update", body=body, shape=lambda a: _shape(a, dict))

    def update_team_metadata(self, team_id: str, metadata: Mapping[str, Any], *, timeout: float | None = None) -> None:
        """Replace a team's metadata; with a timeout, in one quick try (no retries)."""
        self._call("POST", "/team/update", body={"team_id": team_id, "metadata": dict(metadata)}, quick=timeout)

    def delete_team(self, team_id: str) -> bool:
        """Delete a team: True if this call deleted it; one that is gone already is not an error."""
        try:
            self._call("POST", "/team/delete", body={"team_ids": [team_id]})
        except ProxyError as exc:
            if not exc.not_found:
                raise
            return False
        return True

    def _look_for(self, lookup: Callable[[], list[T]]) -> list[T]:
        """After a lost answer: look for what the request would have created, a few times, since
        a slow proxy may still be working on it. Nothing is sent twice."""
        for delay in RECHECK_DELAYS:
            time.sleep(delay)
            found = lookup()
            if found:
                return found
        return []

    def add_team_members(self, team_id: str, user_ids: Sequence[str]) -> set[str]:
        """Add users to a team, BATCH_SIZE per request; the ids that turned out not to exist
        (member_add created them as ghosts: removed again)."""
        ghosts: set[str] = set()
        for batch in chunks(list(user_ids)):
            with self.team_writes([team_id]):
                ghosts |= self._member_add_batch(team_id, batch)
        return ghosts

    def _member_add_batch(self, team_id: str, user_ids: Sequence[str]) -> set[str]:
        members = [{"role": "user", "user_id": user_id} for user_id in user_ids]
        try:
            answer = self._call(
                "POST",
                "/team/member_add",
                body={"team_id": team_id, "member": members},
                shape=lambda a: _shape(a, dict),
            )
        except ProxyError as exc:
            if exc.already_in_team:
                return set()
            raise
        roster = {m.get("user_id") for m in answer.get("members_with_roles") or ()}
        absent = [user_id for user_id in user_ids if user_id not in roster]
        if absent:
            raise ProxyError(f"team {team_id}: {len(absent)} member(s) missing from the roster after member_add")
        # member_add creates a user_id it does not know: one deleted meanwhile comes back with no email
        ghosts = {
            str(row["user_id"])
            for row in answer.get("updated_users") or ()
            if isinstance(row, dict) and row.get("user_id") in user_ids and not row.get("user_email")
        }
        if ghosts:
            self._call("POST", "/user/delete", body={"user_ids": sorted(ghosts)})
        return ghosts

    def remove_team_member(self, team_id: str, user_id: str, *, with_keys: bool = True) -> None:
        """Take a user out of a team, with the user's keys for that team, as the proxy does from
        1.80 (older releases keep them, and they would still spend as the team's). Without keys:
        a deleted user's place on a roster that 1.65 leaves behind."""
        with self.team_writes([team_id]):
            try:
                self._call("POST", "/team/member_delete", body={"team_id": team_id, "user_id": user_id})
            except ProxyError as exc:
                if not exc.not_in_team:
                    raise
        if with_keys and not self.release.member_delete_deletes_keys:
            kept = [key.token for key in self.user_keys(user_id, team_id=team_id)]
            if kept:
                self.delete_keys(kept)

    # -- keys --------------------------------------------------------------------------------

    def key_aliases(self, among: Sequence[str] | None = None) -> set[str]:
        """The aliases keys on the proxy have; with `among`, those of these aliases that a key has.

        The proxy's key creation does not refuse an alias in use (/user/new and the bulk create
        both make a second key with it), so the tools check first, as cheaply as the proxy allows:
        /key/aliases (from 1.80: aliases only; 1.80 sends them all at once, later releases 100 a
        page, searched by a text the wanted aliases share), else each alias looked up, else every
        key listed, whichever takes fewer requests."""
        if among is not None:
            found = self._alias_listing(among)
            if found is not None:
                return found
        first = self._key_page({}, 1)
        if among is not None and len(among) < int(first.get("total_pages") or 0):
            with ThreadPoolExecutor(self.workers, thread_name_prefix="alias") as pool:
                pages = pool.map(lambda alias: self._key_page({"key_alias": alias}, 1), among)
                return {alias for alias, page in zip(among, pages, strict=True) if _holds_alias(page, alias)}
        every = {str(item["key_alias"]) for item in self._keys({}, first) if item.get("key_alias")}
        return every if among is None else every & set(among)

    def _alias_listing(self, among: Sequence[str]) -> set[str] | None:
        """Those of these aliases that /key/aliases lists, or None where that takes more requests
        than looking each up (or the release has no /key/aliases)."""
        if not among or not self.release.lists_key_aliases:
            return None
        shared = _shared_text(among)

        def fetch(page: int) -> dict[str, Any]:
            query = {"page": page, "size": PAGE_SIZE, **({"search": shared} if shared else {})}
            return dict(self._call("GET", "/key/aliases", params=query, shape=lambda a: _shape(a, dict, "aliases")))

        try:
            first = fetch(1)
        except ProxyError as exc:
            if exc.status == 404:  # a release between those seen, without it
                return None
            raise
        pages = int(first.get("total_pages") or 1)  # 1.80 sends every alias, with no pages
        if pages - 1 > len(among):
            return None
        answers = _pages(fetch, first, pages, self.workers)
        listed = {str(alias) for answer in answers for alias in answer["aliases"] or ()}
        return listed & set(among)

    def user_keys(self, user_id: str, *, team_id: str | None = None) -> list[Key]:
        # user_id was a substring filter for admins on 1.86: keep exact matches only
        params = {"user_id": user_id, **({"team_id": team_id} if team_id else {})}
        return [
            _key(item)
            for item in self._keys(params)
            if item.get("user_id") == user_id and (team_id is None or item.get("team_id") == team_id)
        ]

    def keys_of(self, users: Sequence[User], *, keys_on_proxy: float) -> dict[str, list[Key]]:
        """The keys of these users, by user_id: one request per user, or one listing of every key
        (about keys_on_proxy of them) where that takes fewer requests."""
        owners = [user for user in users if user.key_count]
        if len(owners) > keys_on_proxy / PAGE_SIZE:
            every = self.keys_by_owner() or {}
            return {user.user_id: every[user.user_id] for user in owners if user.user_id in every}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="keys") as pool:
            found = pool.map(lambda user: self.user_keys(user.user_id), owners)
            return dict(zip([user.user_id for user in owners], found, strict=True))

    def keys_by_owner(self, *, most_pages: float = math.inf) -> dict[str, list[Key]] | None:
        """Every key on the proxy, by owner; None where listing them would take more than
        most_pages requests (the first page says how many)."""
        first = self._key_page({}, 1)
        if int(first.get("total_pages") or 0) > most_pages:
            return None
        by_owner: dict[str, list[Key]] = defaultdict(list)
        for item in self._keys({}, first):
            if item.get("user_id"):
                by_owner[str(item["user_id"])].append(_key(item))
        return by_owner

    def _key_page(self, params: dict[str, str], page: int) -> dict[str, Any]:
        query = {**params, "return_full_object": "true", "page": page, "size": PAGE_SIZE}
        return dict(self._call("GET", "/key/list", params=query, shape=lambda a: _shape(a, dict, "keys")))

    def _keys(self, params: dict[str, str], first: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        first = first or self._key_page(params, 1)
        pages = _pages(lambda n: self._key_page(params, n), first, int(first.get("total_pages") or 0), self.workers)
        for answer in pages:
            yield from (item for item in answer["keys"] or () if isinstance(item, dict))

    def generate_key(
        self,
        user_id: str,
        *,
        team_id: str | None,
        alias: str | None,
        duration: str | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> str:
        """A new key for a user. limits: the key's models, rate limits and metadata."""
        body: dict[str, Any] = {**(limits or {}), "user_id": user_id, "key_alias": alias}
        if team_id:
            body["team_id"] = team_id
        if duration:
            body["duration"] = duration
        return str(self._call("POST", "/key/generate", body=body, shape=lambda a: _shape(a, dict, "key"))["key"])

    def delete_keys(self, tokens: Sequence[str]) -> None:
        """Delete keys by raw key or hash; keys already gone are not an error."""
        try:
            self._call("POST", "/key/delete", body={"keys": list(tokens)})
        except ProxyError as exc:
            if not exc.not_found:
                raise

    def block_key(self, token: str, *, blocked: bool = True) -> None:
        """Block a key (requests made with it are refused with 401), or unblock it. Some releases
        (1.74.15) hash the token /key/unblock is given once more and answer 401 "not found in db";
        there /key/update, which takes the hash as it is, sets blocked instead."""
        if blocked:
            self._call("POST", "/key/block", body={"key": token})
            return
        try:
            self._call("POST", "/key/unblock", body={"key": token})
        except ProxyError as exc:
            if not exc.key_hashed_again:
                raise
            self._call("POST", "/key/update", body={"key": token, "blocked": False})

    # -- models ------------------------------------------------------------------------------

    def models(self) -> frozenset[str]:
        """The model names the proxy answers to: its models, access groups and wildcard routes
        (releases before 1.80 ignore the two flags and list models only)."""
        answer = self._call(
            "GET",
            "/v1/models",
            params={"include_model_access_groups": "true", "return_wildcard_routes": "true"},
            shape=lambda a: _shape(a, dict, "data"),
        )
        return frozenset(str(item["id"]) for item in answer["data"] if isinstance(item, dict) and item.get("id"))

    def public_url(self) -> str | None:
        """The URL the proxy says its users reach it at (PROXY_BASE_URL; 1.74 on), or None."""
        try:
            answer = self._call("GET", "/.well-known/litellm-ui-config", shape=lambda a: _shape(a, dict))
        except ProxyError as exc:
            if exc.status is None:
                raise
            return None
        url = answer.get("proxy_base_url")
        return str(url).rstrip("/") if url else None


def _shared_text(texts: Sequence[str], shortest: int = 4) -> str | None:
    """The longest text (at least `shortest` characters) that every one of these holds, for the
    proxy's search (a substring, any case: the answer is matched exactly afterwards); never one
    with a backslash, which the search would read as an escape."""
    base = min(texts, key=len)
    for length in range(len(base), shortest - 1, -1):
        for start in range(len(base) - length + 1):
            part = base[start : start + length]
            if "\\" not in part and all(part in text for text in texts):
                return part
    return None


def _holds_alias(page: dict[str, Any], alias: str) -> bool:
    return any(isinstance(item, dict) and item.get("key_alias") == alias for item in page.get("keys") or ())


def _key(item: dict[str, Any]) -> Key:
    return Key(str(item["token"]), item.get("key_alias"), item.get("team_id"), bool(item.get("blocked")))


def _applied(sent: Any, stored: Any) -> bool:
    """Whether the proxy stored what was sent (numbers compared as numbers, metadata by its keys)."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        return all(stored.get(name) == value for name, value in sent.items())
    if isinstance(sent, (int, float)) and isinstance(stored, (int, float)):
        return float(sent) == float(stored)
    if isinstance(sent, list) and isinstance(stored, list):
        return sorted(sent) == sorted(stored)
    return bool(sent == stored)


class _Retry(Retry):
    """Exponential backoff with jitter, capped at BACKOFF_MAX, the same on urllib3 1.26 and 2.x."""

    def get_backoff_time(self) -> float:
        return min(BACKOFF_MAX, super().get_backoff_time()) * random.uniform(0.75, 1.25)


def _retry(*, resend: bool) -> Retry:
    """Retries with exponential backoff and jitter, honouring Retry-After.

    A connection that failed before the request went out is always retried. Requests in
    NOT_RESENT are not repeated after a read error or a gateway error (the proxy may have acted),
    only after 429 and 503, which say it did not.
    """
    return _Retry(
        total=RETRIES,
        connect=RETRIES,
        read=2 if resend else 0,  # a read timeout already waited --timeout seconds
        status=RETRIES,
        other=0,
        allowed_methods=None,
        status_forcelist=(429, 502, 503, 504) if resend else (429, 503),
        backoff_factor=0.5,
        raise_on_status=False,
    )


def _transport_error(exc: requests.RequestException, base_url: str) -> ProxyError:
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)) or isinstance(
        reason, ConnectTimeoutError
    ):
        return ProxyError(f"cannot reach the proxy at {base_url}: {_short(reason)}")
    if isinstance(exc, requests.ConnectionError) and "refused" in str(reason).lower():
        return ProxyError(f"cannot reach the proxy at {base_url}: {_short(reason)}")
    return ProxyError(f"no answer from the proxy at {base_url}: {_short(reason)}", answer_lost=True)


def _not_the_api(response: requests.Response) -> str:
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0]
    start = " ".join(response.text.split())[:80]
    return redact(
        f"the answer from {response.url.split('?')[0]} is not the LiteLLM API (HTTP {response.status_code}, "
        f"{kind}: '{start}'): check that the proxy URL points at the LiteLLM Proxy itself"
    )


def _short(reason: object) -> str:
    text = str(reason)
    return text.split(": ", 1)[-1] if "object at 0x" in text else text


def _query(params: dict[str, Any] | None) -> str:
    return "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
