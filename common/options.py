"""The options every script shares, their argparse types, and the settings they resolve to.

Option values are checked by argparse (type=...), so a bad one stops the run with exit 2 before
the first request.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import math
import os
import re
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import urllib3
from dotenv import dotenv_values

from common import __version__
from common.exits import UsageError
from common.redaction import setup_logging
from common.run_report import RUN
from litellm_client import ROLES, LiteLLMClient

DEFAULT_BASE_URL = "http://localhost:4000"
DEFAULT_WORKERS = 4  # measured: more parallel clients than 4 only add latency on a real proxy
MASTER_KEY_REQUIRED = "ERROR: --master-key or env LITELLM_MASTER_KEY is required."
DURATION = re.compile(r"^(0|[1-9][0-9]{0,8})(s|m|h|d|w|mo)$")  # LiteLLM's units; 0s: now
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 30 * 86400}
# What every release reads the same way as a budget reset or key lifetime: LiteLLM resets budgets
# monthly only for 1mo (2mo is a 400 or a 500); weeks only where Release.weekly_durations says so.
LITELLM_DURATION = re.compile(r"^(?:[1-9][0-9]{0,8}(?:s|m|h|d|w)|1mo)$")


# -- argparse types ----------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number more than 0, not {text}")
    return value


def duration(text: str) -> str:
    """How long ago, for --purge-after: 0s, 30m, 24h, 30d, 2w, 3mo (a month is 30 days)."""
    value = text.strip().lower()
    if not DURATION.match(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration such as 30s, 30m, 24h, 30d, 2w or 3mo")
    return value


def litellm_duration(text: str) -> str:
    """A duration the proxy reads the same on every release: 30s, 30m, 24h, 30d, 2w, 1mo."""
    value = text.strip().lower()
    if not LITELLM_DURATION.match(value):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a duration such as 30s, 30m, 24h, 30d, 2w or 1mo (LiteLLM takes months only as 1mo)"
        )
    return value


def duration_seconds(text: str) -> int:
    """How long a duration lasts (a month counts 30 days: the purge age is not a calendar)."""
    number, unit = DURATION.match(text).groups()  # type: ignore[union-attr]
    return int(number) * DURATION_SECONDS[unit]


@dataclass(frozen=True)
class DeleteLimit:
    """--max-delete: a count, or a share of the managed users."""

    count: int | None = None
    share: float | None = None

    def limit(self, managed: int) -> int:
        if self.count is not None:
            return self.count
        assert self.share is not None
        return math.floor(managed * self.share / 100)


def delete_limit(text: str) -> DeleteLimit:
    value = text.strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1])
            if not math.isfinite(share) or not 0 <= share <= 100:
                raise ValueError
            return DeleteLimit(share=share)
        count = int(value)
        if count < 0:
            raise ValueError
        return DeleteLimit(count=count)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a count of users (25) or a share of the managed users from 0% to 100% (10%)"
        ) from None


def output_dir(text: str) -> Path:
    """A folder the result files can be written to, tried before any change (and left as it was:
    folders made for the try are removed again; the run makes them when it writes)."""
    path = Path(text)
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write result files to '{text}': {exc.strerror}") from None
    finally:
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()
    return path


# -- the parser --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with its message for a bad option kept for the run report."""

    def error(self, message: str) -> NoReturn:
        RUN.error = f"{self.prog}: error: {message}"
        super().error(message)


def parser(
    description: str, *, examples: str, csv_default: str | None = None, writes: bool = True
) -> argparse.ArgumentParser:
    """The options every script has; each script adds its own after these."""
    p = _Parser(
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
            "--output-dir",
            type=output_dir,
            default=Path("."),
            help="where result files are written (default: the working directory)",
        )
        p.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")
    p.add_argument(
        "--report",
        metavar="FILE",
        type=Path,
        help="write what the run did to FILE as JSON when it ends, whatever its exit code (for monitoring; "
        "see the README)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    p.add_argument("--debug", action="store_true", help="log every request on stderr (keys redacted)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def add_role_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--user-role",
        default="proxy_admin",
        choices=[*ROLES, "default"],
        help="role for new users whose role cell is empty (default: %(default)s, as the original tool documented)",
    )


def add_teams_file_option(p: argparse.ArgumentParser, *, help_text: str) -> None:
    p.add_argument("--teams-file", metavar="FILE", help=help_text)


def add_purge_after_option(p: argparse.ArgumentParser, *, help_text: str) -> None:
    p.add_argument("--purge-after", metavar="DURATION", type=duration, help=help_text)


def add_max_delete_option(p: argparse.ArgumentParser, *, default_text: str) -> None:
    p.add_argument(
        "--max-delete",
        metavar="N|N%",
        type=delete_limit,
        help="stop (exit 4, nothing changed) if the run would delete, block or purge more users than this: "
        f"a count, or a share of the managed users (default: {default_text})",
    )


# -- settings ----------------------------------------------------------------------------------


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
    public_url: str | None  # where users reach the proxy, for invitation links

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        dotenv = {k: v for k, v in dotenv_values(".env").items() if v} if Path(".env").is_file() else {}

        def pick(flag: str | None, name: str) -> str | None:
            return flag or os.environ.get(name) or dotenv.get(name)

        master_key = pick(args.master_key, "LITELLM_MASTER_KEY")
        if not master_key:
            raise UsageError(MASTER_KEY_REQUIRED)
        base_url = _url(pick(args.base_url, "LITELLM_BASE_URL") or DEFAULT_BASE_URL, "the proxy URL")
        public_url = pick(getattr(args, "public_url", None), "LITELLM_PUBLIC_URL")
        if args.ca_bundle and not Path(args.ca_bundle).is_file():
            raise UsageError(f"ERROR: CA bundle '{args.ca_bundle}' not found.")
        verify: bool | str = False if args.insecure else (args.ca_bundle or True)
        RUN.proxy_url = base_url
        RUN.dry_run = bool(getattr(args, "dry_run", False) or getattr(args, "check", False))
        return cls(
            base_url,
            master_key,
            args.timeout,
            args.workers,
            verify,
            args.debug,
            args.quiet,
            _url(public_url, "the public URL (LITELLM_PUBLIC_URL)") if public_url else None,
        )

    def connect(self, *, read_only: bool = False) -> LiteLLMClient:
        setup_logging(self.debug, secrets=[self.master_key])
        if self.verify is False:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            print("WARNING: TLS certificate verification is off (--insecure).", file=sys.stderr)
        client = LiteLLMClient(
            self.base_url,
            self.master_key,
            timeout=self.timeout,
            verify=self.verify,
            workers=self.workers,
            read_only=read_only,
            changed_by=f"{RUN.script} by {getpass.getuser()}@{socket.gethostname()}",
        )
        RUN.release = lambda: client.known_release
        return client


def _url(text: str, what: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text):
        raise UsageError(f"ERROR: {what} '{text}' must start with http:// or https://")
    return text.rstrip("/")
