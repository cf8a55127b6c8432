"""What the four scripts share: options and settings, CSV input, result files, exit codes, the
snapshot of the proxy's users and teams, and the parallel runner.

It reaches the proxy only through litellm_client. Everything here is plumbing; each script keeps
its own plan (what to change) and the order in which it applies it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import hashlib
import io
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from dotenv import dotenv_values

from litellm_client import ROLES, LiteLLMClient, ProxyError, Team, User, redact

VERSION = "1.0.0"
DEFAULT_BASE_URL = "http://localhost:4000"
DEFAULT_WORKERS = 4  # measured: more parallel clients than 4 only add latency on a real proxy

# The seed's messages, word for word (its troubleshooting table quotes them).
MASTER_KEY_REQUIRED = "ERROR: --master-key or env LITELLM_MASTER_KEY is required."
USER_EXISTS = "User already exists in the system"
USER_NOT_FOUND = "User not found in the system"

HEADER_ALIASES = {
    "email": "email",
    "user_email": "email",
    "role": "role",
    "user_role": "role",
    "team_name": "team_name",
    "team": "team_name",
    "team_alias": "team_name",
    "key_name": "key_name",
    "key_alias": "key_name",
    "user_id": "user_id",
}
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_ECHOED_FAILURES = 20

T = TypeVar("T")


class Exit(IntEnum):
    OK = 0
    ROW_FAILED = 1
    USAGE = 2
    PROXY = 3
    SAFETY = 4
    INTERRUPTED = 130


class UsageError(Exception):
    """A bad option or unusable input: the run stops before any change (exit 2)."""

    code = Exit.USAGE


class SafetyStop(Exception):
    """A safety limit stopped the run before any change (exit 4)."""

    code = Exit.SAFETY


# -- options and settings ------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def parser(
    description: str, *, examples: str, csv_default: str | None = None, writes: bool = True
) -> argparse.ArgumentParser:
    """The options every script has; each script adds its own after these."""
    p = argparse.ArgumentParser(
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    proxy = p.add_argument_group("proxy")
    proxy.add_argument("--base-url", help=f"proxy URL (env LITELLM_BASE_URL; default: {DEFAULT_BASE_URL})")
    proxy.add_argument(
        "--master-key",
        help="master key (env LITELLM_MASTER_KEY; prefer the environment or .env: a flag shows in the process list)",
    )
    proxy.add_argument(
        "--timeout", type=positive_float, default=60.0, help="seconds to wait for each answer (default: %(default)s)"
    )
    proxy.add_argument(
        "--workers", type=positive_int, default=DEFAULT_WORKERS, help="requests in parallel (default: %(default)s)"
    )
    proxy.add_argument("--ca-bundle", metavar="PATH", help="CA certificates to verify the proxy's TLS certificate with")
    proxy.add_argument(
        "--insecure", action="store_true", help="do not verify the proxy's TLS certificate (prints a warning)"
    )
    if csv_default:
        p.add_argument("--csv-file", default=csv_default, help="input CSV file (default: %(default)s)")
        p.add_argument("--strict", action="store_true", help="stop before any change if any row is bad (exit 2)")
        p.add_argument(
            "--encoding", default="utf-8", help="input encoding if not UTF-8, e.g. latin-1 (default: %(default)s)"
        )
    if writes:
        p.add_argument(
            "--output-dir", default=".", help="where result files are written (default: the working directory)"
        )
        p.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    p.add_argument("--debug", action="store_true", help="log every request on stderr (keys redacted)")
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return p


def add_role_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--user-role",
        default="proxy_admin",
        choices=[*ROLES, "default"],
        help="role for rows whose role cell is empty (default: %(default)s, as the original tool documented)",
    )


@dataclass(frozen=True)
class Settings:
    """Where and how to reach the proxy: a flag beats the environment, which beats .env."""

    base_url: str
    master_key: str = field(repr=False)
    timeout: float
    workers: int
    verify: bool | str
    debug: bool
    quiet: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        dotenv = {k: v for k, v in dotenv_values(".env").items() if v} if Path(".env").is_file() else {}

        def pick(flag: str | None, name: str) -> str | None:
            return flag or os.environ.get(name) or dotenv.get(name)

        master_key = pick(args.master_key, "LITELLM_MASTER_KEY")
        if not master_key:
            raise UsageError(MASTER_KEY_REQUIRED)
        base_url = pick(args.base_url, "LITELLM_BASE_URL") or DEFAULT_BASE_URL
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise UsageError(f"ERROR: the proxy URL '{base_url}' must start with http:// or https://")
        if args.ca_bundle and not Path(args.ca_bundle).is_file():
            raise UsageError(f"ERROR: CA bundle '{args.ca_bundle}' not found.")
        verify: bool | str = False if args.insecure else (args.ca_bundle or True)
        return cls(base_url.rstrip("/"), master_key, args.timeout, args.workers, verify, args.debug, args.quiet)

    def connect(self, *, read_only: bool = False) -> LiteLLMClient:
        setup_logging(self.debug, secrets=[self.master_key])
        if self.verify is False:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            print("WARNING: TLS certificate verification is off (--insecure).", file=sys.stderr)
        return LiteLLMClient(
            self.base_url,
            self.master_key,
            timeout=self.timeout,
            verify=self.verify,
            workers=self.workers,
            read_only=read_only,
        )


_SECRETS: list[str] = []  # the master key, once known: hidden wherever text leaves the tool


class _Redactor(logging.Filter):
    """Keys and the master key never reach the log, whatever logged them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = hide(record.getMessage())
        record.args = None
        return True


def hide(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return redact(text)


def setup_logging(debug: bool, *, secrets: Sequence[str]) -> None:
    _SECRETS[:] = [secret for secret in secrets if secret]
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redactor())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def run(main: Callable[[], int]) -> int:
    """Run a script's main and turn what escapes it into the documented exit code.

    A ProxyError that escapes main came before any change: the proxy could not be used (3).
    """
    try:
        return main()
    except (UsageError, SafetyStop) as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except ProxyError as exc:
        reason = "the master key was refused" if exc.auth_refused else "the proxy could not be used"
        print(hide(f"ERROR: {reason}: {exc}. Nothing was changed."), file=sys.stderr)
        return Exit.PROXY
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:  # whoever read stdout stopped (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except Exception:  # a bug: show it, but never with a key in it
        print(hide(traceback.format_exc()), file=sys.stderr)
        return Exit.ROW_FAILED


# -- CSV input -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of the input: its line (header = 1) and its known cells, trimmed."""

    line: int
    cells: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.cells.get(column, "")


def read_rows(
    path: str, columns: Sequence[str], *, encoding: str = "utf-8", required: Sequence[str] = ("email",)
) -> list[Row]:
    """Read and check the whole input before anything changes; a file that cannot be used is a
    UsageError naming the file and line. Unknown columns are ignored."""
    text = _read_text(path, encoding)
    delimiter = _delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[Row] = []
    header: list[str | None] = []
    next_line = 1
    try:
        for record in reader:
            line, next_line = next_line, reader.line_num + 1
            if not header:
                if any(cell.strip() for cell in record):  # blank lines before the header are skipped
                    header = _header(path, line, record, columns, required)
                continue
            cells = {name: _unescape(value.strip()) for name, value in zip(header, record, strict=False) if name}
            if any(cells.values()):
                rows.append(Row(line, cells))
    except csv.Error as exc:  # reported at the line where the broken record starts
        if "field larger" in str(exc):
            reason = f"a field is too large (over {csv.field_size_limit()} characters)"
        elif "end of data" in str(exc):
            reason = "a quote opened here is never closed"
        else:
            reason = str(exc)
        raise UsageError(f"ERROR: {path} line {next_line}: {reason}. Check its quotes.") from exc
    if not header:
        raise UsageError(f"ERROR: {path} is empty: expected a header line with an 'email' column.")
    return rows


def _read_text(path: str, encoding: str) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"ERROR: CSV file '{path}' not found.") from None
    except IsADirectoryError:
        raise UsageError(f"ERROR: CSV file '{path}' is a directory, not a file.") from None
    except OSError as exc:
        raise UsageError(f"ERROR: cannot read CSV file '{path}': {exc.strerror}.") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # Excel's "Unicode text"
    elif data.startswith(b"\xef\xbb\xbf") and encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except LookupError as exc:
        raise UsageError(f"ERROR: unknown encoding '{encoding}'.") from exc
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"ERROR: {path} line {line}: not valid {encoding} (byte 0x{data[exc.start]:02x}). "
            "Save it as 'CSV UTF-8', or rerun with --encoding latin-1 if that is what it is."
        ) from exc
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise UsageError(f"ERROR: {path} line {line}: contains NUL bytes: this is not a text CSV file.")
    if not text.strip():
        raise UsageError(f"ERROR: {path} is empty: expected a header line with an 'email' column.")
    return text


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(
    path: str, line: int, record: list[str], columns: Sequence[str], required: Sequence[str]
) -> list[str | None]:
    names: list[str | None] = []
    for cell in record:
        name = HEADER_ALIASES.get(cell.strip().lstrip("\ufeff").lower())
        if name in columns and name in names:
            raise UsageError(f"ERROR: {path} line {line}: two columns mean '{name}'; keep one.")
        names.append(name if name in columns else None)
    if not any(name in names for name in required):
        found = ", ".join(cell.strip() for cell in record if cell.strip()) or "nothing"
        wanted = " or ".join(f"'{name}'" for name in required)
        raise UsageError(f"ERROR: {path} line {line}: no {wanted} column (found: {found}).")
    return names


def _unescape(value: str) -> str:
    """Undo the quote that result files put before a formula-like cell, so they can be fed back."""
    return value[1:] if value.startswith("'") and value[1:2] in FORMULA_START else value


def stop_if_strict(args: argparse.Namespace, failures: Sequence[tuple[Row, str]]) -> None:
    """--strict: any bad row stops the run before any change, every bad row listed."""
    if args.strict and failures:
        lines = [f"ERROR: {args.csv_file} line {row.line}: {reason}" for row, reason in failures]
        lines.append(f"--strict: {len(failures)} bad row(s); nothing was changed.")
        raise UsageError("\n".join(lines))


def parse_email(text: str) -> str | None:
    email = text.strip()
    return email if EMAIL_PATTERN.match(email) else None


def parse_role(text: str, default_role: str) -> tuple[str | None, bool]:
    """The role to send for a cell (None: send none, the proxy's default applies), and whether
    the default role was used. A role that is not accepted raises ValueError."""
    role = text.strip().lower()
    used_default = not role
    role = role or default_role
    if role == "default":
        return None, used_default
    role = role.replace("_view_only", "_viewer")
    if role not in ROLES:
        raise ValueError(f"role '{text.strip()}' is not one of {', '.join(ROLES)} (or default)")
    return role, used_default


def split_teams(text: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in text.split(";") if part.strip()))


# -- the proxy's state, read once per run ---------------------------------------------------


@dataclass
class ProxyState:
    """One listing of users and teams (and key aliases where key names are checked)."""

    users: list[User]
    teams: list[Team]
    key_aliases: set[str] = field(default_factory=set)
    users_by_email: dict[str, list[User]] = field(init=False)
    users_by_id: dict[str, User] = field(init=False)
    teams_by_alias: dict[str, list[Team]] = field(init=False)
    teams_by_id: dict[str, Team] = field(init=False)

    def __post_init__(self) -> None:
        self.users_by_email = {}
        self.users_by_id = {user.user_id: user for user in self.users}
        for user in self.users:
            if user.email:
                self.users_by_email.setdefault(user.email.strip().lower(), []).append(user)
        self.teams_by_alias = {}
        for team in self.teams:
            if team.alias:
                self.teams_by_alias.setdefault(team.alias, []).append(team)
        self.teams_by_id = {team.team_id: team for team in self.teams}

    @classmethod
    def load(cls, proxy: LiteLLMClient, *, teams: bool = True, key_aliases: bool = False) -> ProxyState:
        """Users page by page while teams (and key aliases) are read beside them."""
        with ThreadPoolExecutor(2) as pool:
            team_list = pool.submit(proxy.teams) if teams else None
            aliases = pool.submit(proxy.key_aliases) if key_aliases else None
            users = list(proxy.users())
            return cls(users, team_list.result() if team_list else [], aliases.result() if aliases else set())

    def find_team(self, alias: str) -> Team:
        """The one team with this alias (exactly); ValueError if none or several."""
        found = self.teams_by_alias.get(alias, [])
        if not found:
            raise ValueError(f"team '{alias}' does not exist")
        if len(found) > 1:
            ids = ", ".join(team.team_id for team in found)
            raise ValueError(f"team alias '{alias}' is ambiguous: {len(found)} teams have it ({ids})")
        return found[0]

    def team_label(self, team_id: str) -> str:
        team = self.teams_by_id.get(team_id)
        return team.alias if team and team.alias else team_id


# -- output ---------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet shows as text: formula-like cells get a leading quote."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = ";".join(str(item) for item in value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class ResultFile:
    """A result or error CSV: each row appended and flushed as soon as it is known, so a run
    that is killed keeps everything it did. An existing file is kept under a timestamped name.
    Files that hold keys are created with mode 0600."""

    def __init__(self, path: Path, columns: Sequence[str], *, holds_keys: bool = False):
        self.path = path
        self.columns = list(columns)
        self.holds_keys = holds_keys
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.rename(_free_name(path))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if holds_keys else 0o644)
        self._file = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)
        self._file.flush()

    def write(self, **values: Any) -> None:
        with self._lock:
            self._writer.writerow([cell(values.get(column)) for column in self.columns])
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def _free_name(path: Path) -> Path:
    stamp = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
        n += 1
    return candidate


class Report:
    """A run's result and error files, its counts, and what it tells the user as rows finish.

    Scripts without an error file (sync) record failures as result rows with error_reason.
    """

    def __init__(
        self,
        output_dir: str,
        name: str,
        *,
        result_columns: Sequence[str],
        error_columns: Sequence[str] | None = None,
    ):
        directory = Path(output_dir)
        holds_keys = "api_keys" in result_columns
        self.results = ResultFile(directory / f"{name}_result.csv", result_columns, holds_keys=holds_keys)
        self.errors = ResultFile(directory / f"{name}_error.csv", error_columns) if error_columns else None
        self.counts: Counter[str] = Counter()
        self.failed = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.results.close()
        if self.errors:
            self.errors.close()

    def done(self, status: str, **values: Any) -> None:
        """A row that did what it should."""
        self.results.write(status=status, **values)
        with self._lock:
            self.counts[status] += 1

    def fail(self, row: Row | None, reason: str, **values: Any) -> None:
        """A row that failed: into the error file (with the input columns, so it can be fixed and
        fed back), or into the result file where the script has no error file."""
        reason = hide(reason)
        if self.errors is not None:
            self.errors.write(line=row.line if row else "", **(row.cells if row else {}), **values, error_reason=reason)
        else:
            self.results.write(**values, error_reason=reason)
        self._count_failure(row, values.get("email") or (row["email"] if row else ""), reason)

    def partly(self, status: str, reason: str, row: Row | None = None, **values: Any) -> None:
        """A row that did its main work (a user exists, a key was issued: it belongs in the result
        file) but not all of it: recorded as a result with the reason, and counted as failed."""
        reason = hide(reason)
        self.results.write(status=status, **values, error_reason=reason)
        with self._lock:
            self.counts[status] += 1
        self._count_failure(row, values.get("email", ""), reason)

    def _count_failure(self, row: Row | None, who: str, reason: str) -> None:
        with self._lock:
            self.failed += 1
            shown = self.failed
        if shown <= MAX_ECHOED_FAILURES:
            where = f"line {row.line}: " if row else ""
            print(f"FAILED {where}{who}: {reason}", file=sys.stderr, flush=True)
        elif shown == MAX_ECHOED_FAILURES + 1:
            print("(more failures: see the error file)", file=sys.stderr, flush=True)

    def run(self, work: Callable[[], None]) -> Exit:
        """Apply the work that fills this report; the run's exit code, also when it stopped early."""
        try:
            work()
        except Interrupted as stop:
            return stop.code
        return Exit.ROW_FAILED if self.failed else Exit.OK

    def files(self) -> str:
        where = f"results in {self.results.path}"
        if self.results.holds_keys:
            where += " (it holds API keys: mode 0600, keep it safe)"
        return where + (f", errors in {self.errors.path}" if self.errors else "")


# -- running rows in parallel ---------------------------------------------------------------


class Progress:
    """'[120/5000] ...' on stderr, at most once a second, for runs longer than a second."""

    def __init__(self, total: int, label: str, *, quiet: bool):
        self.total = total
        self.label = label
        self.quiet = quiet
        self.done = 0
        self._started = self._shown = time.monotonic()
        self._lock = threading.Lock()

    def advance(self) -> None:
        with self._lock:
            self.done += 1
            now = time.monotonic()
            if self.quiet or now - self._shown < 1.0 or now - self._started < 1.0:
                return
            self._shown = now
        print(f"[{self.done}/{self.total}] {self.label}", file=sys.stderr, flush=True)


class Interrupted(Exception):
    """The run stopped early; what was in flight finished and was recorded, not_started holds
    the items that never began."""

    code = Exit.INTERRUPTED

    def __init__(self, not_started: list[Any], reason: str = "the run was interrupted"):
        super().__init__(reason)
        self.not_started = not_started
        self.reason = reason


class ProxyGone(Interrupted):
    """The proxy stopped answering mid-run: no new row starts, since each would only fail slowly."""

    code = Exit.ROW_FAILED


_END = object()


def run_parallel(
    items: Iterable[T],
    work: Callable[[T], Any],
    *,
    workers: int,
    progress: Progress,
    proxy: LiteLLMClient | None = None,
) -> None:
    """Run work(item) on `workers` threads; work records its own outcome as soon as it has it.

    Ctrl-C or SIGTERM: the items in flight finish, no new one starts, then Interrupted is raised
    (a second Ctrl-C quits at once). If the proxy stops answering, the same happens with
    ProxyGone. An unexpected error stops the run the same way, then is raised.
    """
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():  # a second Ctrl-C: out now, like kill (rows in flight go unrecorded)
            os._exit(Exit.INTERRUPTED)
        stop.set()
        print(
            "Interrupted: finishing the rows in flight, starting no new ones (Ctrl-C again to quit at once).",
            file=sys.stderr,
            flush=True,
        )

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    failure: BaseException | None = None
    gone: str | None = None
    remaining = iter(items)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="row") as pool:
            pending: set[Future[Any]] = set()
            while True:
                while not stop.is_set() and len(pending) < workers:
                    item = next(remaining, _END)
                    if item is _END:
                        break
                    pending.add(pool.submit(work, item))  # type: ignore[arg-type]
                if not pending:
                    break
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    progress.advance()
                    if future.exception() and failure is None:
                        failure = future.exception()
                        stop.set()
                if proxy and proxy.unreachable and not stop.is_set():
                    gone = proxy.unreachable
                    stop.set()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure is not None:
        raise failure
    if gone:
        raise ProxyGone(list(remaining), f"the proxy stopped answering ({gone})")
    if stop.is_set():
        raise Interrupted(list(remaining))


# -- one run at a time --------------------------------------------------------------------------


@contextmanager
def exclusive_run(name: str, base_url: str, dry_run: bool = False) -> Iterator[None]:
    """Refuse to start while another run of this script against the same proxy is applying.
    A dry run changes nothing, so it neither takes nor waits for the lock."""
    if dry_run:
        yield
        return
    digest = hashlib.sha256(base_url.lower().encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"litellm-{name}-{digest}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: a read-only descriptor locks it as well
        fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SafetyStop(
                f"ERROR: another {name} run against {base_url} is still applying changes (pid {holder}; lock {path}). "
                "Nothing was changed: try again when it has finished."
            ) from None
        with contextlib.suppress(OSError):  # the pid is for the message only
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
