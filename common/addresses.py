"""Email addresses, as the proxy holds them and as a file names them.

LiteLLM stores any text as a user's email (`o'brien@example.com`, `"john doe"@example.com`,
`first:last@example.com`, an SSO user's `jdoe`), so a file may name a user by exactly the text the
proxy holds, whatever its shape: two texts are the same user when they match after trimming, NFC
and case-folding (key). A new user needs more: an address a mail system accepts (RFC 5321/5322,
with UTF-8 local parts and domains as RFC 6531 allows), unless the row restores a user the proxy
held (it has a user_id). A row the tools refuse still protects every user it plausibly names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_LABEL = r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*|\[[^\[\]\\\s]+\]"  # a host name (root@localhost too), or [address]
MAILBOX = re.compile(rf"^(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOMAIN})$")
_OUTSIDE_QUOTES = re.compile(r'"(?:[^"\\]|\\.)*"')


def _invisible(char: str) -> bool:
    """Control, format (zero-width, direction marks), separator and unassigned characters."""
    return unicodedata.category(char)[0] in "CZ"


def has_invisible(text: str) -> bool:
    return any(_invisible(char) for char in text)


def key(text: str) -> str:
    """What two emails are compared by: NFC, invisible characters dropped, trimmed, case-folded.
    Look-alikes that differ only by an invisible character share a key, so they meet as one."""
    text = unicodedata.normalize("NFC", text)
    return "".join(char for char in text if not _invisible(char)).strip().casefold()


def parse(cell: str, held: Iterable[str] = ()) -> str:
    """The email a cell names (NFC, trimmed): exactly a text the proxy holds (held: the emails of
    the users with this key), whatever its shape; else any text that can be one address, or
    ValueError: invisible characters (a look-alike of a real address would be another user), a
    display name (`Kn <kn@x.com>`), a list, spaces outside a quoted part."""
    email = unicodedata.normalize("NFC", cell.strip())
    if email and email in {unicodedata.normalize("NFC", text.strip()) for text in held}:
        return email
    hidden = [char for char in email if _invisible(char) and char != " "]
    if hidden:
        names = ", ".join(f"U+{ord(char):04X}" for char in dict.fromkeys(hidden))
        raise ValueError(f"email '{key(email)}' contains invisible characters ({names})")
    bare = _OUTSIDE_QUOTES.sub('""', email)
    if not email or any(char in bare for char in "<>,; "):
        raise ValueError(f"invalid email '{cell.strip()}': one address, without a name or spaces")
    return email


def check_new(email: str) -> None:
    """A new user's email must be an address a mail system accepts: ValueError if not."""
    if not MAILBOX.match(email):
        raise ValueError(f"invalid email '{email}': not an address a mail system accepts, nor a user's on the proxy")


def protected(cell: str) -> set[str]:
    """The keys of every user a cell plausibly names, valid or not: its text, the address in its
    angle brackets or quotes (`Kn <kn@x.com>`, `'kn@x.com'`), each address of a list. Such users
    are never removed because of a row the tools refuse."""
    text = key(cell)
    candidates = {text, *re.findall(r"<([^<>]+)>", text), *re.split(r"[\s,;<>]+", text)}
    stripped = {candidate.strip().strip("\"'").strip() for candidate in candidates}
    return {candidate for candidate in candidates | stripped if candidate}


def plain(cell: str) -> bool:
    """Whether a cell names one address in printable ASCII: its key is its lower case, so a
    comparison in any case (LiteLLM's, when it refuses a taken email) is the tools' comparison."""
    try:
        email = parse(cell)
    except ValueError:
        return False
    return email.isascii() and email.isprintable()


def search_terms(cell: str) -> set[str]:
    """What to ask the proxy's email filter (a substring, any case) for the user a cell names:
    its text, and its other Unicode spelling (NFC, NFD) where that differs; nothing for a cell
    that is no single address. The answers are matched by key afterwards."""
    try:
        email = parse(cell)
    except ValueError:
        return set()
    return {unicodedata.normalize(form, email).lower() for form in ("NFC", "NFD")}
