"""Replicated LiteLLM proxies over one database, for tests.

Large LiteLLM deployments run several proxy processes over ONE PostgreSQL database, each with its own
in-memory auth cache (and, on real hosts, its own clock). This module reproduces that on one machine:
given a real proxy started by /work/shared/real-litellm/start.sh (its LP_ROOT and port), it starts

* a second proxy process from the same LP_ROOT (same venv, config.yaml, DATABASE_URL and PRISMA_* environment
  as start.sh gives the first), in its own session so it can be stopped as a group, optionally with its clock
  shifted by libfaketime;
* a round-robin HTTP forwarder that alternates the two proxies per request and passes requests and
  answers through unchanged (status, headers such as Date, body),

and stops all of it again: ``with Replicas(root, 4410, 4411) as replicas: ... replicas.url ...``. The
fixture `replicated` in tests/conftest.py starts it for the real proxy CI runs the whole suite with.

The clock shift uses libfaketime with the wall clock shifted and the monotonic clock left alone. Debian 12's
libfaketime 0.9.10 cannot do that under Python 3.11 (time.sleep raises EINVAL), so the build shipped in the PyPI
wheel `libfaketime` is installed into LP_ROOT/faketime-py and used; see find_libfaketime and FINDINGS.md.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Final

HOST: Final = "127.0.0.1"
DEFAULT_MASTER_KEY: Final = "sk-local-test-master-key"
DEFAULT_PG_PORT: Final = 54329  # start.sh's LP_PGPORT default
LIBFAKETIME_DIRS: Final = (
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
)
# RFC 9110 hop-by-hop headers: they describe one connection, so the forwarder must not relay them
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class ReplicaError(RuntimeError):
    """The replica set could not be started as asked (port busy, proxy died, clock not shifted...)."""


# ---------------------------------------------------------------------------------------------------------------
# environment of the second proxy: what start.sh exports before it launches the first one


def _first_proxy_environ(root: Path) -> dict[str, str]:
    """The first proxy's own environment (/proc/PID/environ), the most faithful source of its settings."""
    try:
        pid = int((root / "proxy.pid").read_text().strip())
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (OSError, ValueError):
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _postmaster_port(root: Path) -> int | None:
    """PostgreSQL writes its port on line 4 of postmaster.pid: a fallback when /proc is not readable."""
    try:
        lines = (root / "pgdata" / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, ValueError, IndexError):
        return None


def _prisma_version(site_packages: Path) -> str:
    dists = sorted(site_packages.glob("prisma-*.dist-info"))
    return dists[0].name.removeprefix("prisma-").removesuffix(".dist-info") if dists else ""


def proxy_environment(root: Path, pg_port: int | None = None, master_key: str | None = None) -> dict[str, str]:
    """The environment start.sh (lines ~435-445) gives the proxy, so the replica talks to the same database.

    Explicit arguments win; otherwise values come from the running first proxy's environment, then from
    PostgreSQL's postmaster.pid, then from start.sh's defaults.
    """
    first = _first_proxy_environ(root)
    if pg_port is None:
        match = re.search(r":(\d+)/", first.get("DATABASE_URL", ""))
        pg_port = int(match.group(1)) if match else (_postmaster_port(root) or DEFAULT_PG_PORT)
    if master_key is None:
        master_key = first.get("LITELLM_MASTER_KEY") or os.environ.get("LITELLM_MASTER_KEY") or DEFAULT_MASTER_KEY
    # the caller's environment, as start.sh inherits its caller's, less any clock shift meant for the caller
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}
    env.update(
        PATH=f"{root / 'venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{pg_port}/litellm",
        LITELLM_MASTER_KEY=master_key,
        PRISMA_BINARY_CACHE_DIR=str(root / "prisma-cli"),
        PRISMA_QUERY_ENGINE_BINARY=str(root / "bin" / "query-engine"),
        PRISMA_SCHEMA_ENGINE_BINARY=str(root / "bin" / "schema-engine"),
        PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING="1",
        PRISMA_HIDE_UPDATE_MESSAGE="1",
        DISABLE_SCHEMA_UPDATE="true",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_PRISMA_COMMAND_TIMEOUT="20",
    )
    site_packages = next(iter(sorted((root / "venv" / "lib").glob("python3*/site-packages"))), None)
    if site_packages is not None and _prisma_version(site_packages).startswith(("0.10.", "0.11.")):
        env["QE_SHIM_LEGACY_RAW"] = "1"  # start.sh line 441: old prisma-client-py expects the pre-5.8 raw format
    return env


def faketime_env(library: Path, offset: int) -> dict[str, str]:
    """Shift the wall clock only, as on a host whose clock is off; monotonic clocks (timers, timeouts) stay real.

    Faking the monotonic clock too is not an option: Python 3.11's timed lock waits (sem_clockwait, which
    libfaketime does not wrap) would then sleep ``offset`` seconds longer, hanging every Event.wait(timeout).
    """
    return {"LD_PRELOAD": str(library), "FAKETIME": f"{offset:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


# what a preload must survive in the proxy's interpreter: time.sleep (clock_nanosleep with TIMER_ABSTIME on
# Python >= 3.11) and a timed lock wait; it prints the shifted wall clock
_SELF_TEST: Final = "import threading, time; time.sleep(0.05); threading.Event().wait(0.05); print(time.time())"


def libfaketime_works(library: Path, python: Path, offset: int = 600) -> bool:
    """Whether ``python`` runs under this libfaketime build with a shifted wall clock and working sleeps.

    Debian 12's libfaketime 0.9.10 fails it with Python 3.11: with FAKETIME_DONT_FAKE_MONOTONIC time.sleep raises
    OSError(EINVAL) (libfaketime issue #426), without it timed waits hang (see faketime_env).
    """
    env = {**os.environ, **faketime_env(library, offset)}
    try:
        out = subprocess.run([str(python), "-c", _SELF_TEST], env=env, capture_output=True, timeout=15, check=False)
        shifted = float(out.stdout.decode().strip()) - time.time()
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return False
    return abs(shifted - offset) < 5


def _pypi_libfaketime(target: Path) -> Path | None:
    lib = target / "libfaketime" / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    return lib if lib.is_file() else None


def find_libfaketime(root: Path, install: bool = True) -> Path:
    """A libfaketime preload library that works with the proxy's Python (checked by ``libfaketime_works``).

    Candidates, in order: $REPLICAS_LIBFAKETIME; the build the PyPI package `libfaketime` ships (a newer
    libfaketime, its wheel holds the .so), installed with the proxy venv's pip into LP_ROOT/faketime-py;
    Debian's package `libfaketime` (apt-get install faketime), which works only with Python < 3.11.
    """
    python = root / "venv" / "bin" / "python"
    target = root / "faketime-py"
    debian = [Path(d) / "libfaketimeMT.so.1" for d in LIBFAKETIME_DIRS]

    def candidates() -> Iterator[Path | None]:  # lazily: nothing is installed once a candidate works
        if "REPLICAS_LIBFAKETIME" in os.environ:
            yield Path(os.environ["REPLICAS_LIBFAKETIME"])
        if install and _pypi_libfaketime(target) is None:
            pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "libfaketime"]
            subprocess.run(pip, capture_output=True, check=False)
        yield _pypi_libfaketime(target)
        if install and not any(lib.is_file() for lib in debian) and os.geteuid() == 0 and shutil.which("apt-get"):
            apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "faketime"]
            if subprocess.run(cmd, env=apt_env, capture_output=True, check=False).returncode != 0:
                subprocess.run(["apt-get", "update", "-qq"], env=apt_env, capture_output=True, check=False)
                subprocess.run(cmd, env=apt_env, capture_output=True, check=False)
        yield from debian

    tried: list[Path] = []
    for lib in candidates():
        if lib is not None and lib.is_file() and lib not in tried:
            tried.append(lib)
            if libfaketime_works(lib, python):
                return lib
    raise ReplicaError(
        f"no libfaketime build works with {python} (tried {[str(t) for t in tried]}): "
        f"pip install --target {target} libfaketime, or set REPLICAS_LIBFAKETIME"
    )


# ---------------------------------------------------------------------------------------------------------------
# small HTTP helpers (stdlib, so the fixture needs nothing beyond the interpreter)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as the fixture's own checks need it (header names lower-cased)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def http_get(url: str, key: str | None = None, timeout: float = 5.0) -> Answer:
    """GET that returns error statuses as answers instead of raising (urllib raises on >= 400)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def server_clock(url: str) -> float:
    """The server's clock as its Date header tells it (1 s resolution), in epoch seconds."""
    date = http_get(f"{url}/health/liveliness").headers.get("date")
    if not date:
        raise ReplicaError(f"{url} sent no Date header")
    return email.utils.parsedate_to_datetime(date).timestamp()


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(start: int, stop: int = 32768) -> int:
    """The first free port in [start, stop): ports stay below the kernel's ephemeral range (32768+),
    where a port a test picked could be taken by any outgoing connection at any time."""
    for port in range(start, stop):
        if port_is_free(port):
            return port
    raise ReplicaError(f"no free port in [{start}, {stop})")


# ---------------------------------------------------------------------------------------------------------------
# the round-robin forwarder


class _Forwarder(ThreadingHTTPServer):
    """Threaded HTTP server whose handler relays each request to the next backend in turn."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, backends: list[tuple[str, int]]) -> None:
        super().__init__((HOST, port), _ForwardHandler)
        self.backends = backends
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.served: list[tuple[int, str, str, int]] = []  # (backend index, method, path, status), in order

    def next_backend(self) -> int:
        with self._lock:
            return next(self._turn) % len(self.backends)

    def record(self, entry: tuple[int, str, str, int]) -> None:
        with self._lock:
            self.served.append(entry)


class _ForwardHandler(BaseHTTPRequestHandler):
    """Relays one request unchanged; HTTP/1.1 so clients may keep the connection alive."""

    protocol_version = "HTTP/1.1"
    server: _Forwarder
    timeout: ClassVar[float] = 300.0  # an idle keep-alive client connection is closed after this

    def _relay(self) -> None:
        index = self.server.next_backend()
        host, port = self.server.backends[index]
        body = self._request_body()
        upstream = http.client.HTTPConnection(host, port, timeout=300)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() not in {"content-length", "expect"}:
                    upstream.putheader(name, value)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            resp = upstream.getresponse()
        except OSError as err:
            upstream.close()
            self.server.record((index, self.command, self.path, 502))
            self._send_error_answer(f"backend {host}:{port} unreachable: {err}")
            return
        try:
            self._send_answer(resp)
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-answer: its loss, not an error
            self.close_connection = True
        finally:
            upstream.close()
        self.server.record((index, self.command, self.path, resp.status))

    def _request_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length is not None else None

    def _send_answer(self, resp: http.client.HTTPResponse) -> None:
        # send_response_only: send_response would add our own Server and Date headers to the backend's
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        unknown_length = not no_body and resp.getheader("Content-Length") is None
        chunked = unknown_length and self.request_version == "HTTP/1.1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif unknown_length:  # an HTTP/1.0 client reads a body of unknown length up to the connection's close
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            return
        while chunk := resp.read1(65536):  # streams (e.g. SSE) pass through as they arrive
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _send_error_answer(self, message: str) -> None:
        payload = json.dumps({"error": {"message": message, "type": "replicas_forwarder"}}).encode()
        self.send_response(502)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a test's output should not fill with one line per forwarded request."""


# ---------------------------------------------------------------------------------------------------------------
# the fixture


class Replicas:
    """A second proxy on the first one's LP_ROOT plus a round-robin forwarder over both (a context manager).

    ``url`` is the forwarder, ``first_url``/``second_url`` the proxies themselves. ``clock_offset`` (seconds)
    shifts the second proxy's clock with libfaketime, as a host with a skewed clock would be.
    """

    def __init__(
        self,
        root: Path,
        first_port: int,
        second_port: int,
        forwarder_port: int = 0,
        *,
        clock_offset: int = 0,
        pg_port: int | None = None,
        master_key: str | None = None,
        startup_timeout: float = 300.0,
        log_path: Path | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.first_port = first_port
        self.second_port = second_port
        self.forwarder_port = forwarder_port
        self.clock_offset = clock_offset
        self.startup_timeout = startup_timeout
        self.log_path = log_path or self.root / "replica.log"
        self.env = proxy_environment(self.root, pg_port, master_key)
        self.master_key = self.env["LITELLM_MASTER_KEY"]
        self.first_url = f"http://{HOST}:{first_port}"
        self.second_url = f"http://{HOST}:{second_port}"
        self.url = ""  # set once the forwarder listens (forwarder_port 0: the first free port above second_port)
        self.startup_seconds: float | None = None  # from launch to the second proxy's DB-backed readiness
        self.measured_offset: float | None = None  # second proxy's Date minus first proxy's Date
        self.process: subprocess.Popen[bytes] | None = None
        self.libfaketime: Path | None = None  # the preload library used for clock_offset
        self._forwarder: _Forwarder | None = None
        self._forwarder_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> Replicas:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the second proxy, wait until it serves from the database, then start the forwarder."""
        try:
            first_ok = http_get(f"{self.first_url}/health/liveliness").status == 200
        except OSError:
            first_ok = False
        if not first_ok:
            raise ReplicaError(f"the first proxy at {self.first_url} is not healthy: start it with start.sh first")
        for port in (self.second_port, self.forwarder_port):
            if port and not port_is_free(port):
                raise ReplicaError(f"port {port} on {HOST} is already in use")
        try:
            self._start_second()
            self._start_forwarder()
        except BaseException:
            self.stop()
            raise

    def _start_second(self) -> None:
        env = dict(self.env)
        if self.clock_offset:
            self.libfaketime = find_libfaketime(self.root)
            env.update(faketime_env(self.libfaketime, self.clock_offset))
        cmd = [
            str(self.root / "venv" / "bin" / "litellm"),
            *("--config", str(self.root / "config.yaml"), "--host", HOST, "--port", str(self.second_port)),
        ]
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            # start_new_session: setsid, so pid == pgid and stop() can signal the proxy and its shim together
            self.process = subprocess.Popen(
                cmd, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self._wait_ready(started)
        self.startup_seconds = time.monotonic() - started
        if self.clock_offset:
            self._check_clock()

    def _wait_ready(self, started: float) -> None:
        """Ready = liveliness 200 and the public readiness probe reporting the database connected."""
        assert self.process is not None
        while time.monotonic() - started < self.startup_timeout:
            if self.process.poll() is not None:
                raise ReplicaError(f"second proxy exited with {self.process.returncode}:\n{self._log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                ready = http_get(f"{self.second_url}/health/readiness")
                if ready.status == 200 and json.loads(ready.body).get("db") == "connected":
                    return
            time.sleep(0.5)
        raise ReplicaError(f"second proxy not ready after {self.startup_timeout:.0f}s:\n{self._log_tail()}")

    def _check_clock(self) -> None:
        """The shift is real only if the replica's own HTTP Date header shows it (1 s resolution, so +-2 s)."""
        self.measured_offset = server_clock(self.second_url) - server_clock(self.first_url)
        if abs(self.measured_offset - self.clock_offset) > 2:
            raise ReplicaError(f"second proxy's clock is {self.measured_offset:+.0f}s off, not {self.clock_offset:+d}s")

    def _start_forwarder(self) -> None:
        backends = [(HOST, self.first_port), (HOST, self.second_port)]
        if not self.forwarder_port:
            self.forwarder_port = free_port(self.second_port + 1)
        self._forwarder = _Forwarder(self.forwarder_port, backends)
        self.forwarder_port = self._forwarder.server_address[1]
        self.url = f"http://{HOST}:{self.forwarder_port}"
        self._forwarder_thread = threading.Thread(target=self._forwarder.serve_forever, name="replicas-forwarder")
        self._forwarder_thread.daemon = True
        self._forwarder_thread.start()

    def stop(self) -> None:
        """Stop the forwarder, then the second proxy's whole process group (TERM, then KILL after 20 s)."""
        if self._forwarder is not None:
            self._forwarder.shutdown()
            self._forwarder.server_close()
            self._forwarder = None
        if self.process is not None:
            stop_group(self.process.pid, self.process)
            self.process = None

    # -- observation -------------------------------------------------------------------------------------------

    @property
    def served(self) -> list[tuple[int, str, str, int]]:
        """What the forwarder did so far: (replica 1 or 2, method, path, status) per request."""
        return [(i + 1, m, p, s) for i, m, p, s in (self._forwarder.served if self._forwarder else [])]

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def stop_group(pgid: int, process: subprocess.Popen[bytes] | None = None, grace: float = 20.0) -> None:
    """Stop a proxy's process group (pgid == the proxy's pid): the proxy first, then whatever is left.

    TERM to the proxy alone lets it shut down while its query-engine shim still runs, so its last DB writes
    (e.g. deleting its row in LiteLLM_ProxyWorkerHeartbeat) succeed; start.sh's group-wide TERM kills the shim
    at the same moment and those writes fail. After ``grace`` seconds, or once the proxy is gone, the group
    gets TERM and then KILL, so no shim outlives it.
    """

    def leader_gone() -> bool:
        return process.poll() is not None if process is not None else not _alive(pgid)

    for sig, wait in ((signal.SIGTERM, grace), (None, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            if sig is not None:
                os.kill(pgid, sig)
            else:
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not leader_gone():
            time.sleep(0.2)
    time.sleep(0.5)  # the shim exits on TERM within milliseconds
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
