"""A user's columns: how a cell reads, how it compares with what the proxy holds, how a change is
described and sent. One table, used by add (create), sync (compare, update), list (export) and
the undo files (restore), so the four agree on every value.

A cell has three meanings: empty leaves the value alone (a new user gets the proxy's default);
`none` (any case) clears it; anything else is the value, checked before any change.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from common.csv_input import METADATA_PREFIX
from common.options import LITELLM_DURATION
from litellm_client import ROLES, Release, User

USER_EXISTS = "User already exists in the system"  # the seed's wording, kept
USER_NOT_FOUND = "User not found in the system"
CLEAR = "none"
ALL_MODELS = "all-proxy-models"  # LiteLLM's name for "every model the proxy serves"
SPECIAL_MODELS = frozenset({ALL_MODELS, "no-default-models", "all-team-models", "*"})
# local@domain, nothing a display name or a list would add (<>, quotes, commas, semicolons);
# a domain without a dot (root@localhost) is an address too
EMAIL_PATTERN = re.compile(r"""^[^@\s<>"'(),;:\[\]\\]+@[^@\s<>"'(),;:\[\]\\]+$""")
OFFBOARDED_AT = "offboarded_at"  # the metadata key that marks a blocked user


class Cleared:
    """The value of a `none` cell."""

    def __repr__(self) -> str:
        return CLEAR


CLEARED: Any = Cleared()


# -- emails --------------------------------------------------------------------------------------


def _invisible(char: str) -> bool:
    """Control, format (zero-width, direction marks), separator and unassigned characters."""
    return unicodedata.category(char)[0] in "CZ"


def email_key(text: str) -> str:
    """What two emails are compared by: NFC, invisible characters dropped, trimmed, any case.
    Look-alikes that differ only by an invisible character share a key, so they meet as one."""
    text = unicodedata.normalize("NFC", text)
    return "".join(char for char in text if not _invisible(char)).strip().lower()


def parse_email(cell: str) -> str:
    """The email a cell holds (NFC, trimmed), or ValueError: invisible characters are refused,
    since a look-alike of a real address would otherwise be a different user."""
    email = unicodedata.normalize("NFC", cell.strip())
    hidden = [char for char in email if _invisible(char) and char != " "]
    if hidden:
        names = ", ".join(f"U+{ord(char):04X}" for char in dict.fromkeys(hidden))
        raise ValueError(f"email '{email_key(email)}' contains invisible characters ({names})")
    if not EMAIL_PATTERN.match(email):
        raise ValueError(f"invalid email '{cell.strip()}'")
    return email


def plausible_email(cell: str) -> str | None:
    """The address a bad email cell most likely means ('Kn <kn@x.com>', 'kn@x.com' with a
    zero-width space), as a key: a user it names is protected from removal."""
    text = email_key(cell)
    inside = re.search(r"<([^<>]+)>", text)
    candidate = (inside.group(1) if inside else text).strip().strip("\"'").strip()
    return candidate if EMAIL_PATTERN.match(candidate) else None


def new_user_id(cell: str) -> str:
    """A user_id a new user can be created with (a restore, or a user an earlier run started), or
    ValueError: LiteLLM's listing splits its user_ids filter on commas, so such an id could never
    be looked up again."""
    user_id = cell.strip()
    if "," in user_id or any(_invisible(char) for char in user_id):
        raise ValueError(f"user_id '{user_id}' cannot be created: it holds a comma or an invisible character")
    return user_id


# -- roles and teams ---------------------------------------------------------------------------


def parse_role(cell: str, default_role: str) -> tuple[str | None, bool]:
    """The role to send for a cell (None: send none, the proxy's default applies), and whether
    the default role was used. A role that is not accepted raises ValueError."""
    role = cell.strip().lower()
    used_default = not role
    role = role or default_role
    if role == "default":
        return None, used_default
    role = role.replace("_view_only", "_viewer")
    if role not in ROLES:
        raise ValueError(f"role '{cell.strip()}' is not one of {', '.join(ROLES)} (or default)")
    return role, used_default


def team_names(cell: str) -> list[str] | None:
    """The teams a team_name cell names (aliases or ids, `;` between them); None for an empty
    cell (leave the memberships alone), [] for `none` (in no team)."""
    if not cell.strip():
        return None
    if cell.strip().lower() == CLEAR:
        return []
    return list(dict.fromkeys(part.strip() for part in cell.split(";") if part.strip()))


# -- access and spend columns ------------------------------------------------------------------


CANNOT = object()  # Field.clear_with of a value /user/update cannot clear
DROPPED = object()  # Field.clear_with of a metadata key: taken out of the object (update_fields)


@dataclass(frozen=True)
class Field:
    """Everything about one access column: parse reads a cell and current the proxy's value, both
    canonical (None when unset); text writes a value back as a cell (plan, export, undo file);
    clear_with is what /user/update is sent to clear it (None: null; CANNOT: no way: LiteLLM
    ignores every empty value, see docs/litellm-notes.md); send turns a value into what
    /user/update takes; numeric: a value of 0 is one some releases ignore."""

    column: str
    parse: Callable[[str], Any]
    current: Callable[[User], Any]
    text: Callable[[Any], str] = str
    clear_with: Any = None
    send: Callable[[Any], Any] = lambda value: value
    numeric: bool = False

    def update(self, value: Any) -> Any:
        """What /user/update is sent to set this value (CLEARED included)."""
        return self.clear_with if value is CLEARED else self.send(value)

    def same(self, wanted: Any, current: Any) -> bool:
        """Whether the proxy holds what the file asks for. A text that reads `none` is taken as
        clear (the file could not say otherwise), so an export always syncs back as no change."""
        if wanted is CLEARED:
            return (
                current is None
                or (self.column == "models" and current == (ALL_MODELS,))
                or (isinstance(current, str) and current.lower() == CLEAR)
            )
        return bool(wanted == current)

    def refusal(self, value: Any, rules: Release | None) -> str | None:
        """Why the proxy cannot make this change (a row error), or None."""
        if value is CLEARED and self.clear_with is CANNOT:
            return f"{self.column} cannot be cleared: LiteLLM's /user/update ignores an empty value"
        if rules is None:
            return None
        return rules.update_refusal(
            self.column,
            clearing_with_null=value is CLEARED and self.clear_with is None,
            zero=self.numeric and value == 0,
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _budget(cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"'{cell}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"'{cell}' is not a number of 0 or more")
    return value


def _count(cell: str) -> int:
    try:
        value = int(cell)
    except ValueError:
        raise ValueError(f"'{cell}' is not a whole number") from None
    if value < 0:
        raise ValueError(f"'{cell}' is not a whole number of 0 or more")
    return value


def _duration(cell: str) -> str:
    value = cell.strip().lower()
    if not LITELLM_DURATION.match(value):
        raise ValueError(f"'{cell}' is not a duration such as 30s, 30m, 24h, 30d, 2w or 1mo (months only as 1mo)")
    return value


def check_duration(column: str, value: str, rules: Release | None) -> None:
    """A duration this proxy's release reads as written, or ValueError."""
    problem = rules.duration_refusal(column, value) if rules else None
    if problem:
        raise ValueError(problem)


def _models(cell: str) -> tuple[str, ...]:
    return tuple(sorted({part.strip() for part in cell.split(";") if part.strip()}))


def _text_or_none(value: Any) -> Any:
    """A text as a file cell holds it: trimmed (the reader trims cells), None when empty."""
    text = str(value).strip() if value is not None else ""
    return text or None


def _metadata_text(value: Any) -> str | None:
    if value is None:
        return None
    return _text_or_none(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True))


FIELDS: dict[str, Field] = {
    field.column: field
    for field in (
        Field("user_alias", str, lambda u: _text_or_none(u.user_alias), clear_with=""),
        Field("max_budget", _budget, lambda u: u.max_budget, text=_number, numeric=True),
        Field("budget_duration", _duration, lambda u: u.budget_duration or None),
        Field(
            "models",
            _models,
            lambda u: tuple(sorted(u.models)) or None,
            text=";".join,
            clear_with=[ALL_MODELS],
            send=list,
        ),
        Field("tpm_limit", _count, lambda u: u.tpm_limit, numeric=True),
        Field("rpm_limit", _count, lambda u: u.rpm_limit, numeric=True),
        Field("max_parallel_requests", _count, lambda u: u.max_parallel_requests, clear_with=CANNOT, numeric=True),
    )
}
ACCESS_COLUMNS = tuple(FIELDS)


def field(column: str) -> Field:
    """The field a column names: one of FIELDS, or metadata.<name>."""
    if column in FIELDS:
        return FIELDS[column]
    name = column[len(METADATA_PREFIX) :]
    return Field(column, str, lambda u: _metadata_text((u.metadata or {}).get(name)), clear_with=DROPPED)


def is_field(column: str) -> bool:
    return column in FIELDS or (column.startswith(METADATA_PREFIX) and column != METADATA_PREFIX)


def wanted(
    cells: Mapping[str, str], models: frozenset[str] | None = None, rules: Release | None = None
) -> dict[str, Any]:
    """The access values a row asks for, by column (empty cells left out), or ValueError naming
    the column and the value. models: what the proxy serves (names, access groups and wildcard
    routes), to check a models cell against; rules: what the proxy reads as written."""
    values: dict[str, Any] = {}
    for column, cell in cells.items():
        if not cell or not is_field(column):
            continue
        if cell.strip().lower() == CLEAR:
            values[column] = CLEARED
            continue
        try:
            values[column] = field(column).parse(cell)
        except ValueError as problem:
            raise ValueError(f"{column} {problem}") from None
        if column == "models" and models is not None:
            unknown = [name for name in values[column] if not served(name, models)]
            if unknown:
                raise ValueError(f"model '{unknown[0]}' is not served by this proxy")
        if column == "budget_duration":
            check_duration(column, values[column], rules)
    return values


def served(name: str, models: frozenset[str]) -> bool:
    """A model name the proxy answers to: one it lists, an access group, a special name, or one
    that a wildcard route covers (openai/* covers openai/gpt-4.1)."""
    return (
        name in models
        or name in SPECIAL_MODELS
        or "*" in name
        or any("*" in route and fnmatch.fnmatchcase(name, route) for route in models)
    )


@dataclass(frozen=True, slots=True)
class FieldChange:
    column: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.column}: {show(self.column, self.old)} -> {show(self.column, self.new)}"


def show(column: str, value: Any) -> str:
    """A value as the plan and the undo file write it: `none` where it is unset."""
    return CLEAR if value is None or value is CLEARED else field(column).text(value)


def differences(values: Mapping[str, Any], user: User, rules: Release | None = None) -> list[FieldChange]:
    """The values a row asks for that the user does not hold yet (the user as the proxy has it,
    every column known), or ValueError for a change the proxy cannot make."""
    changes = []
    for column, value in values.items():
        current = field(column).current(user)
        if field(column).same(value, current):
            continue
        problem = field(column).refusal(value, rules)
        if problem:
            raise ValueError(problem)
        changes.append(FieldChange(column, current, value))
    return changes


def export(column: str, user: User) -> str:
    """A user's value as list_user.py writes it: a file of these cells syncs back as no change."""
    value = field(column).current(user)
    return "" if value is None else field(column).text(value)


def new_user_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The /user/new fields for a row's values (a cleared value is the proxy's default: not sent)."""
    body: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for column, value in values.items():
        if value is CLEARED:
            continue
        if column.startswith(METADATA_PREFIX):
            metadata[column[len(METADATA_PREFIX) :]] = value
        else:
            body[column] = field(column).update(value)
    if metadata:
        body["metadata"] = metadata
    return body


def update_fields(
    changes: list[FieldChange], user: User, *, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The /user/update fields that make these changes. Metadata is sent whole (LiteLLM replaces
    it), merged from what the user has: keys the file does not name are kept. `metadata` adds
    keys the tools set themselves (offboarded_at), None as a value removing one."""
    body: dict[str, Any] = {}
    keys: dict[str, Any] = {}
    for change in changes:
        if change.column.startswith(METADATA_PREFIX):
            keys[change.column[len(METADATA_PREFIX) :]] = None if change.new is CLEARED else change.new
        else:
            body[change.column] = field(change.column).update(change.new)
    keys.update(metadata or {})
    if keys:
        merged = {**(user.metadata or {}), **keys}
        kept = {name: value for name, value in merged.items() if value is not None}
        # an empty object is ignored by /user/update: clear the last keys by sending them as null
        body["metadata"] = kept or {name: None for name, value in keys.items() if value is None}
    return body
