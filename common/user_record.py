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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from common import addresses
from common.csv_input import METADATA_PREFIX
from litellm_client import ROLES, Release, User, duration_problem

USER_EXISTS = "User already exists in the system"  # the seed's wording, kept
USER_NOT_FOUND = "User not found in the system"
CLEAR = "none"
ALL_MODELS = "all-proxy-models"  # LiteLLM's name for "every model the proxy serves"
SPECIAL_MODELS = frozenset({ALL_MODELS, "no-default-models", "all-team-models", "*"})
OFFBOARDED_AT = "offboarded_at"  # the metadata key that marks a blocked user
OFFBOARDED_KEYS = "offboarded_keys"  # ...and the keys its offboarding blocked (only those are unblocked)


class Cleared:
    """The value of a `none` cell."""

    def __repr__(self) -> str:
        return CLEAR


CLEARED: Any = Cleared()


def new_user_id(cell: str) -> str:
    """A user_id a new user can be created with (a restore, or a user an earlier run started), or
    ValueError: LiteLLM's listing splits its user_ids filter on commas, so such an id could never
    be looked up again."""
    user_id = cell.strip()
    if "," in user_id or addresses.has_invisible(user_id):
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


ADMIN_OF = "admin_of"  # the teams in which a user is a team admin


def admin_names(cells: Mapping[str, str]) -> list[str] | None:
    """The teams a row's admin_of cell names; None where the file has no admin_of column (roles
    are left as they are). An empty cell (or `none`) is an ordinary member in every team."""
    if ADMIN_OF not in cells:
        return None
    return team_names(cells[ADMIN_OF]) or []


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
    current: Callable[[Any], Any]  # of a User, or of a Team (team_record): they share these attributes
    text: Callable[[Any], str] = str
    clear_with: Any = None
    send: Callable[[Any], Any] = lambda value: value
    numeric: bool = False
    duration: bool = False  # a LiteLLM duration: what each release reads differs

    def update(self, value: Any) -> Any:
        """What /user/update is sent to set this value (CLEARED included)."""
        return self.clear_with if value is CLEARED else self.send(value)

    def same(self, wanted: Any, current: Any) -> bool:
        """Whether the proxy holds what the file asks for. A text that reads `none` is taken as
        clear (the file could not say otherwise), so an export always syncs back as no change."""
        if wanted is CLEARED or (isinstance(wanted, (dict, tuple)) and not wanted):  # {} or no names: unset
            return (
                current is None
                or (self.column == "models" and current == (ALL_MODELS,))
                or (isinstance(current, str) and current.lower() == CLEAR)
            )
        return bool(wanted == current)

    def refusal(self, value: Any, rules: Release | None, *, creating: bool = False) -> str | None:
        """Why the proxy cannot set this value (a row error), or None. Checked only for values
        that are sent: a value the proxy holds already always reads back, whatever its form."""
        if value is CLEARED and self.clear_with is CANNOT:
            return f"{self.column} cannot be cleared: LiteLLM's /user/update ignores an empty value"
        if self.duration and value is not CLEARED:
            return duration_refusal(self.column, value, rules) or self._release_refusal(value, rules, creating)
        return self._release_refusal(value, rules, creating)

    def _release_refusal(self, value: Any, rules: Release | None, creating: bool) -> str | None:
        if rules is None or creating:
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
    """A duration as written (the proxy keeps its text): which forms a release reads is checked
    when the value is sent (Field.refusal), so a value the proxy holds always reads back."""
    return cell.strip()


def duration_refusal(column: str, value: str, rules: Release | None) -> str | None:
    """Why this proxy's release (None: any release) would not read a duration as written."""
    if rules:
        return rules.duration_refusal(column, value)
    problem = duration_problem(value)
    return f"{column} {problem}" if problem else None


def _models(cell: str) -> tuple[str, ...]:
    """A set of names, sorted: a name twice (which the proxy keeps) is the same access."""
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
        Field("budget_duration", _duration, lambda u: u.budget_duration or None, duration=True),
        Field(
            "models",
            _models,
            lambda u: tuple(sorted(set(u.models))) or None,
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
METADATA = "metadata"  # the whole object as JSON: exact types and text (undo files, exports)
TOOL_KEYS = (OFFBOARDED_AT, OFFBOARDED_KEYS)  # metadata the tools keep themselves: never a file's


def _metadata_object(cell: str) -> dict[str, Any]:
    try:
        value = json.loads(cell)
    except ValueError:
        raise ValueError(f"'{cell}' is not a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError(f"'{cell}' is not a JSON object")
    return {name: item for name, item in value.items() if name not in TOOL_KEYS}


def own_metadata(user: User) -> dict[str, Any]:
    """A user's metadata without the tools' own keys, as a file holds it (a key set to null, which
    is how LiteLLM leaves the last key removed, is no key)."""
    return {name: value for name, value in (user.metadata or {}).items() if name not in TOOL_KEYS and value is not None}


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


METADATA_FIELD = Field(METADATA, _metadata_object, lambda u: own_metadata(u) or None, text=_json, clear_with={})


def field(column: str) -> Field:
    """The field a column names: one of FIELDS, metadata (the whole object), or metadata.<name>."""
    if column in FIELDS:
        return FIELDS[column]
    if column == METADATA:
        return METADATA_FIELD
    name = column[len(METADATA_PREFIX) :]
    return Field(column, str, lambda u: _metadata_text((u.metadata or {}).get(name)), clear_with=DROPPED)


def is_field(column: str) -> bool:
    return column in FIELDS or column == METADATA or (column.startswith(METADATA_PREFIX) and column != METADATA_PREFIX)


def wanted(cells: Mapping[str, str], models: frozenset[str] | None = None) -> dict[str, Any]:
    """The access values a row asks for, by column (empty cells left out), or ValueError naming
    the column and the value. models: what the proxy serves (names, access groups and wildcard
    routes), to check a models cell against. The tools' own metadata keys are never a file's."""
    values: dict[str, Any] = {}
    if cells.get(METADATA) and any(cells.get(column) for column in cells if column.startswith(METADATA_PREFIX)):
        raise ValueError("metadata and metadata.<name> cells on one row: use one or the other")
    for column, cell in cells.items():
        if not cell or not is_field(column) or column.removeprefix(METADATA_PREFIX) in TOOL_KEYS:
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
    return values


def check_new(values: Mapping[str, Any], rules: Release | None) -> None:
    """The values a new user is created with: ValueError for one the proxy would not take as
    written (a duration it reads otherwise)."""
    for column, value in values.items():
        problem = None if value is CLEARED else field(column).refusal(value, rules, creating=True)
        if problem:
            raise ValueError(problem)


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


def differences(
    values: Mapping[str, Any],
    user: Any,
    rules: Release | None = None,
    *,
    field_of: Callable[[str], Field] = field,
    refusal_of: Callable[[str, Any, Release | None], str | None] | None = None,
) -> list[FieldChange]:
    """The values a row asks for that the user (or, with team_record's field_of and refusal_of,
    the team) does not hold yet, as the proxy has it, every column known; or ValueError for a
    change the proxy cannot make."""
    changes = []
    for column, value in values.items():
        current = field_of(column).current(user)
        if field_of(column).same(value, current):
            continue
        problem = refusal_of(column, value, rules) if refusal_of else field_of(column).refusal(value, rules)
        if problem:
            raise ValueError(problem)
        changes.append(FieldChange(column, current, value))
    return changes


def export(column: str, user: User) -> str:
    """A user's value as list_user.py writes it: a file of these cells syncs back as no change."""
    value = field(column).current(user)
    return "" if value is None else field(column).text(value)


def new_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The /user/new (or /team/new) fields for a row's values (a cleared value is the proxy's
    default: not sent)."""
    body: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for column, value in values.items():
        if value is CLEARED:
            continue
        if column == METADATA:
            metadata.update(value)
        elif column.startswith(METADATA_PREFIX):
            metadata[column[len(METADATA_PREFIX) :]] = value
        else:
            body[column] = field(column).update(value)
    if metadata:
        body["metadata"] = metadata
    return body


def update_fields(
    changes: list[FieldChange],
    user: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    field_of: Callable[[str], Field] = field,
    empty_metadata: bool = False,
) -> dict[str, Any]:
    """The /user/update fields that make these changes (with team_record's field_of, the
    /team/update fields). Metadata is sent whole (LiteLLM replaces it), merged from what the user
    has: keys the file does not name are kept. `metadata` adds keys the tools set themselves
    (offboarded_at), None as a value removing one; empty_metadata: the proxy stores {} (teams)."""
    body: dict[str, Any] = {}
    keys: dict[str, Any] = {}
    base = dict(user.metadata or {})
    for change in changes:
        if change.column == METADATA:  # the whole object: exactly the file's, the tools' own keys kept
            whole = {} if change.new is CLEARED else change.new
            keys.update({name: None for name in own_metadata(user) if name not in whole} | whole)
        elif change.column.startswith(METADATA_PREFIX):
            keys[change.column[len(METADATA_PREFIX) :]] = None if change.new is CLEARED else change.new
        else:
            body[change.column] = field_of(change.column).update(change.new)
    keys.update(metadata or {})
    if keys:
        merged = {**base, **keys}
        kept = {name: value for name, value in merged.items() if value is not None}
        # /user/update ignores an empty object: there the last keys are cleared by sending them as
        # null; /team/update stores {} (empty_metadata)
        body["metadata"] = (
            kept if kept or empty_metadata else {name: None for name, value in keys.items() if value is None}
        )
    return body
