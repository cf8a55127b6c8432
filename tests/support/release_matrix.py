"""Run the integration tests against real LiteLLM releases, one after another, and print a Markdown table
of the results for docs/litellm-notes.md ("Releases run").

    python -m tests.support.release_matrix 1.65.8 1.74.15 1.80.7 1.90.7 1.100.5 1.108.7 1.110.2
    python -m tests.support.release_matrix --keep 1.80.7 -- -x -k sync     # after --: more pytest arguments

For each release it starts a real proxy with the shared start.sh (found as .ci/run finds it: $SHARED_DIR, ../shared,
/work/shared), in its own LP_ROOT under $TMPDIR and on its own ports, runs `pytest -m integration` against it with
LITELLM_TEST_REQUIRE_REAL=1 (a skip for want of a proxy is a failure), and stops it again. start.sh is idempotent: a
proxy already running with the same LP_ROOT and ports is used as it is, and left running. --keep leaves every proxy
running (a later start of a stopped LP_ROOT takes about 30 s; a cold one 1-3 minutes, pip and npm installs included).
--overlap starts the next release's proxy while the tests run against the current one.

Roots and ports: $TMPDIR/litellm-real-<release>, port 4000 + minor, PostgreSQL 15400 + minor (1.65.8: 4065 and 15465),
except the two releases .ci/run and start.sh's defaults know by other settings: 1.108.7 ($TMPDIR/litellm-real, 4000)
and 1.80.7 (4001). So a proxy started for them, or by an earlier matrix run, is found again. PostgreSQL's ports stay
below 32768, outside Linux's ephemeral range, where a client connection in TIME_WAIT can hold the port (.ci/run).

The tests create and delete users on each proxy: never run two test runs against one proxy at once.
The table (release, the day of the run, the tests' result, the minutes they took) goes to stdout, progress to stderr;
the exit code is 1 if any release failed or its proxy did not start.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = re.compile(r"^1\.(\d+)\.\d+(\.post\d+)?$")
KNOWN = {"1.108.7": ("litellm-real", 4000), "1.80.7": ("litellm-real-1.80.7", 4001)}


def minor(release: str) -> int:
    return int(RELEASE.match(release).group(1))  # type: ignore[union-attr]


def log(message: str) -> None:
    print(f"[release_matrix {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def find_start_sh() -> Path | None:
    for shared in (os.environ.get("SHARED_DIR"), ROOT.parent / "shared", "/work/shared"):
        if shared and os.access(Path(shared) / "real-litellm" / "start.sh", os.X_OK):
            return Path(shared) / "real-litellm" / "start.sh"
    return None


@dataclass
class Proxy:
    """Where one release's proxy lives, and how start.sh is told so."""

    release: str
    root: Path
    port: int
    pgport: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # start.sh would take a master key or URL meant for another proxy from the environment: drop them
        env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_MASTER_KEY", "LITELLM_BASE_URL")}
        env.update(
            LP_LITELLM_SPEC=f"litellm[proxy]=={self.release}",
            LP_ROOT=str(self.root),
            LP_PORT=str(self.port),
            LP_PGPORT=str(self.pgport),
        )
        return env

    def running(self) -> bool:
        """What start.sh checks before it reuses a proxy: its process is alive and answers."""
        try:
            os.kill(int((self.root / "proxy.pid").read_text()), 0)
            with urllib.request.urlopen(f"{self.url}/health/liveliness", timeout=5) as answer:
                return bool(answer.status == 200)
        except (OSError, ValueError):
            return False


def plan(releases: list[str]) -> list[Proxy]:
    """One LP_ROOT and two ports per release, none shared with another release of the list or a KNOWN one."""
    tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    taken = {port for _, port in KNOWN.values()} | {15400 + minor(release) for release in KNOWN}
    proxies = []
    for release in releases:
        pgport = 15400 + minor(release)
        if release in KNOWN:
            name, port = KNOWN[release]
        else:
            name, port = f"litellm-real-{release}", 4000 + minor(release)
            while port in taken or pgport in taken:
                port, pgport = port + 300, pgport + 300
        taken |= {port, pgport}
        proxies.append(Proxy(release, tmp / name, port, pgport))
    return proxies


class Start:
    """One start.sh run: in the foreground (its progress on stderr) or in the background (progress to a log file)."""

    def __init__(self, start_sh: Path, proxy: Proxy, log_file: Path | None) -> None:
        self.proxy = proxy
        self.was_running = proxy.running()
        self.began = time.monotonic()
        self.seconds = 0.0
        self.log_file = log_file
        with log_file.open("w") if log_file else contextlib.nullcontext() as progress:
            self.process = subprocess.Popen(
                ["bash", str(start_sh)],
                env=proxy.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=progress,
                text=True,
                start_new_session=True,  # its own process group, so that an unfinished start can be ended whole
            )

    def finish(self) -> str | None:
        """Wait for start.sh: the master key it printed, or None if the proxy did not start."""
        out, _ = self.process.communicate()
        self.seconds = time.monotonic() - self.began
        key = re.search(r"^LITELLM_MASTER_KEY=(.+)$", out, re.MULTILINE)
        if self.process.returncode == 0 and key:
            return key.group(1).strip()
        if self.log_file:
            sys.stderr.write(self.log_file.read_text()[-3000:])
        log(f"{self.proxy.release}: start.sh failed (exit {self.process.returncode})")
        return None

    def abort(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait()


@dataclass
class Result:
    release: str
    date: str
    started: bool
    start_seconds: float = 0.0
    was_running: bool = False
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    xfailed: int = 0
    exit_code: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.started and self.exit_code == 0 and self.failed == 0 and self.passed > 0

    def row(self) -> str:
        if not self.started:
            return f"| {self.release} | {self.date} | proxy did not start | |"
        result = f"{self.passed} passed / {self.failed} failed"
        if self.skipped:
            result += f" / {self.skipped} skipped"
        if self.xfailed:
            result += f" / {self.xfailed} xfailed"
        if self.exit_code not in (0, 1):
            result += f" (pytest exit {self.exit_code})"
        return f"| {self.release} | {self.date} | {result} | {self.seconds / 60:.1f} |"


def counts(junit: Path) -> tuple[int, int, int, int]:
    """passed, failed (errors included), skipped and xfailed tests, from pytest's JUnit XML report."""
    found = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            skip = case.find("skipped")
            if case.find("failure") is not None or case.find("error") is not None:
                found["failed"] += 1
            elif skip is not None:
                found["xfailed" if skip.get("type") == "pytest.xfail" else "skipped"] += 1
            else:
                found["passed"] += 1
    return found["passed"], found["failed"], found["skipped"], found["xfailed"]


def run_tests(proxy: Proxy, key: str, junit: Path, pytest_args: list[str]) -> tuple[int, float]:
    env = dict(
        os.environ,
        LITELLM_TEST_BASE_URL=proxy.url,
        LITELLM_TEST_MASTER_KEY=key,
        LITELLM_TEST_REQUIRE_REAL="1",
    )
    command = [sys.executable, "-m", "pytest", "-m", "integration", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    began = time.monotonic()
    code = subprocess.run([*command, *pytest_args], cwd=ROOT, env=env, check=False).returncode
    return code, time.monotonic() - began


def stop(start_sh: Path, proxy: Proxy) -> None:
    log(f"{proxy.release}: stopping the proxy at {proxy.url}")
    subprocess.run(["bash", str(start_sh), "stop"], env=proxy.env(), capture_output=True, check=False)


def table(results: list[Result]) -> str:
    lines = ["| release | date | result | minutes |", "|---|---|---|---|"]
    return "\n".join(lines + [r.row() for r in results])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the integration tests against real LiteLLM releases and print a Markdown table.",
        epilog="Arguments after -- go to pytest, e.g. -- -x -k sync",
    )
    parser.add_argument("releases", nargs="+", metavar="RELEASE", help="e.g. 1.65.8 1.80.7 1.110.2")
    parser.add_argument("--keep", action="store_true", help="leave the proxies running afterwards")
    parser.add_argument("--overlap", action="store_true", help="start the next proxy while the tests run")
    args, pytest_args = sys.argv[1:] if argv is None else argv, []
    if "--" in args:
        args, pytest_args = args[: args.index("--")], args[args.index("--") + 1 :]
    options = parser.parse_args(args)
    bad = [r for r in options.releases if not RELEASE.match(r)]
    if bad:
        parser.error(f"not a LiteLLM release number: {', '.join(bad)} (e.g. 1.80.7)")
    start_sh = find_start_sh()
    if not start_sh:
        parser.error("real-litellm/start.sh not found in $SHARED_DIR, ../shared or /work/shared (set SHARED_DIR)")

    proxies = plan(list(dict.fromkeys(options.releases)))
    work = Path(tempfile.mkdtemp(prefix="release-matrix-"))
    log(f"start.sh: {start_sh}; test reports and background start logs: {work}")
    results: list[Result] = []
    starts: dict[str, Start] = {}  # every start.sh run, to end an unfinished one and stop what it started
    stopped: set[str] = set()
    interrupted = False
    try:
        for n, proxy in enumerate(proxies):
            log(f"{proxy.release}: proxy at {proxy.url} (LP_ROOT={proxy.root}, LP_PGPORT={proxy.pgport})")
            start = starts.get(proxy.release)  # started in the background (--overlap), or not yet
            if start is None:
                start = starts[proxy.release] = Start(start_sh, proxy, None)
            key = start.finish()
            how = "already running" if start.was_running else f"started in {start.seconds / 60:.1f} min"
            log(f"{proxy.release}: {'proxy ' + how if key else 'the proxy did not start'}")
            result = Result(proxy.release, datetime.date.today().isoformat(), key is not None)
            result.start_seconds, result.was_running = start.seconds, start.was_running
            results.append(result)
            if options.overlap and n + 1 < len(proxies):
                following = proxies[n + 1]
                starts[following.release] = Start(start_sh, following, work / f"start-{following.release}.log")
                log(f"{following.release}: starting in the background (log: {work / f'start-{following.release}.log'})")
            if key:
                log(f"{proxy.release}: pytest -m integration against {proxy.url}")
                junit = work / f"junit-{proxy.release}.xml"
                result.exit_code, result.seconds = run_tests(proxy, key, junit, pytest_args)
                result.passed, result.failed, result.skipped, result.xfailed = counts(junit)
                log(f"{proxy.release}: {result.row()}")
            if not start.was_running and not options.keep:
                stop(start_sh, proxy)
                stopped.add(proxy.release)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: the table holds the releases done so far")
    finally:
        for start in starts.values():
            start.abort()
            if not start.was_running and not options.keep and start.proxy.release not in stopped:
                stop(start_sh, start.proxy)

    start_times = ", ".join(
        f"{r.release} {'already running' if r.was_running else f'{r.start_seconds / 60:.1f} min'}" for r in results
    )
    log(f"proxy starts: {start_times}")
    print(table(results))
    failed = [r.release for r in results if not r.ok]
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 130 if interrupted else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
