"""A proxy that is slow, overloaded, down, crashing, not the LiteLLM API, or behind a TLS
certificate the tools do not trust.
"""

from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import (
    Proxy,
    accounted_once,
    addlist,
    bulk,
    endpoint,
    no_duplicates,
    no_traceback,
    run_script,
    write_csv,
)
from tests.support.standin import StandIn


@pytest.mark.parametrize(("status", "retry_after"), [(429, 1.0), (429, None), (503, 1.0), (503, None)])
def test_bursts_of_429_and_503_are_waited_out(
    paths: Proxy, tmp_path: Path, status: int, retry_after: float | None
) -> None:
    standin = paths
    emails = addlist(tmp_path / "user_addlist.csv", 8)  # few enough that their users are looked up (/user/list)
    create = endpoint(standin, "create")
    standin.standin.fail("/user/list", status=status, retry_after=retry_after, times=2)
    standin.standin.fail(create, status=status, retry_after=retry_after, skip=0 if bulk(standin) else 3, times=3)

    started = time.monotonic()
    run = run_script("add_user.py", proxy=standin, cwd=tmp_path)

    assert run.code == 0, run.output
    assert set(accounted_once(run, emails)) == set(emails)
    no_duplicates(standin, emails)
    assert standin.standin.count(create) == (1 if bulk(standin) else 8) + 3
    if retry_after:
        assert time.monotonic() - started >= 2 * retry_after  # Retry-After was honoured


def test_a_list_call_retries_503s_then_succeeds(standin: Proxy) -> None:
    standin.standin.seed_user("a@example.com")
    standin.standin.fail("/user/list", status=503, times=3)
    with standin.client() as client:
        users = list(client.users())
    assert [u.email for u in users] == ["a@example.com"]
    assert standin.standin.count("/user/list") == 4


def test_a_slow_listing_past_the_timeout_is_asked_again(standin: Proxy, tmp_path: Path) -> None:
    standin.standin.seed_user("a@example.com")
    slow = standin.standin.fail("/user/list", "delay_before", seconds=2)

    run = run_script("list_user.py", "--timeout", "1", proxy=standin, cwd=tmp_path)

    assert slow.fired
    assert run.code == 0, run.output
    assert "a@example.com" in run.stdout
    assert slow.seen == 2  # the slow one, then the one asked again


def test_a_crash_mid_run_that_recovers_loses_nothing(paths: Proxy, tmp_path: Path) -> None:
    """The proxy dies with creates in flight (the 11th user on the per-user path, the one batch on the
    bulk path) and is back 2 s later: every row is recorded once, nobody is created twice."""
    assert paths.standin is not None
    emails = addlist(tmp_path / "user_addlist.csv", 40)
    paths.standin.latency = 0.02

    def outage() -> None:
        paths.standin.crash()
        time.sleep(2)
        paths.standin.start()

    skip = 0 if bulk(paths) else 10
    crash = paths.standin.fail(
        endpoint(paths, "create"), "call", skip=skip, call=lambda: threading.Thread(target=outage).start()
    )
    run = run_script("add_user.py", proxy=paths, cwd=tmp_path)

    assert crash.fired
    results = accounted_once(run, emails)
    no_duplicates(paths, list(results))
    assert run.code in (0, 1), run.output
    assert len(results) >= 36  # at most the rows in flight when it died lost their answers


def test_a_proxy_that_stays_down_stops_the_run_early_and_a_rerun_finishes_it(paths: Proxy, tmp_path: Path) -> None:
    standin = paths
    emails = addlist(tmp_path / "user_addlist.csv", 1500 if bulk(standin) else 60)
    standin.standin.latency = 0.02
    standin.standin.fail(
        endpoint(standin, "create"),
        "call",
        skip=1 if bulk(standin) else 10,
        call=lambda: threading.Thread(target=standin.standin.crash).start(),
    )

    started = time.monotonic()
    run = run_script("add_user.py", "--workers", "1" if bulk(standin) else "4", proxy=standin, cwd=tmp_path)

    assert run.code == 1
    assert time.monotonic() - started < 90  # it did not grind through every row against a dead proxy
    results = accounted_once(run, emails)
    reasons = {r["error_reason"] for r in run.rows("user_reg_error.csv")}
    if not bulk(standin):  # one batch of 500 at a time gives the dead proxy too few requests to matter
        assert any(reason.startswith("not started: the proxy stopped answering") for reason in reasons)

    standin.standin.start()
    assert all(standin.key_works(r["api_keys"]) for r in results.values())
    rerun = run_script("add_user.py", "--skip-existing", proxy=standin, cwd=tmp_path)
    assert rerun.code == 0, rerun.output
    no_duplicates(standin, emails)


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_tls_is_verified_unless_switched_off_explicitly(tmp_path: Path) -> None:
    from tests.support.standin import StandIn

    cert, key = _self_signed(tmp_path)
    with StandIn(tls=(cert, key)) as server:
        server.seed_user("a@example.com")
        proxy = Proxy("tls", server.url, server.master_key, server)
        refused = run_script("list_user.py", proxy=proxy, cwd=tmp_path)
        insecure = run_script("list_user.py", "--insecure", proxy=proxy, cwd=tmp_path)
        bundle = run_script("list_user.py", "--ca-bundle", cert, proxy=proxy, cwd=tmp_path)

    assert refused.code == 3
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "certificate verify failed" in refused.stderr
    assert insecure.code == 0
    assert "WARNING: TLS certificate verification is off (--insecure)." in insecure.stderr
    assert "a@example.com" in insecure.stdout
    assert bundle.code == 0
    assert "WARNING" not in bundle.stderr


SCRIPTS = ("add_user.py", "del_user.py", "list_user.py", "sync_user.py")


class _Page(BaseHTTPRequestHandler):
    """A login page, a UI or a reverse proxy's landing page: 200 to everything."""

    body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"
    content_type = "text/html; charset=utf-8"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


class _JsonPage(_Page):
    body = b'{"status": "ok", "service": "gateway"}'
    content_type = "application/json"


@pytest.mark.parametrize("page", [_Page, _JsonPage], ids=["html", "json"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_url_that_is_not_the_api_stops_before_any_change(tmp_path: Path, script: str, page: type) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ui"
    write_csv(tmp_path / "users.csv", "email,role\na@example.com,internal_user\n")
    try:
        run = run_script(
            script,
            *(["--csv-file", "users.csv"] if script != "list_user.py" else []),
            proxy=Proxy("page", url, "sk-secret-master"),
            cwd=tmp_path,
        )
    finally:
        server.shutdown()

    assert run.code == 3, run.output
    no_traceback(run.output)
    assert f"the answer from {url}/" in run.stderr
    assert "is not the LiteLLM API (HTTP 200" in run.stderr
    assert "Nothing was changed" in run.stderr
    assert "sk-secret-master" not in run.output
    assert not list(tmp_path.glob("*_result.csv"))


def test_one_slow_answer_does_not_end_the_run(tmp_path: Path) -> None:
    with StandIn(release="1.80.7") as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        standin.fail("/user/new", "delay_after", skip=3, seconds=2)
        write_csv(tmp_path / "user_addlist.csv", "email\n" + "".join(f"s{n}@example.com\n" for n in range(12)))

        run = run_script("add_user.py", "--timeout", "1", "--workers", "4", proxy=proxy, cwd=tmp_path)

        assert run.code == 0, run.output
        assert len(run.rows("user_reg_result.csv")) == 12
        assert standin.user_emails() == sorted(f"s{n}@example.com" for n in range(12))


def test_a_proxy_that_dies_stops_the_run_after_a_few_unanswered_requests(tmp_path: Path) -> None:
    with StandIn(release="1.80.7", latency=0.02) as standin:
        proxy = Proxy("standin-1.80.7", standin.url, standin.master_key, standin)
        standin.fail("/user/new", "call", skip=8, call=lambda: threading.Thread(target=standin.crash).start())
        write_csv(tmp_path / "user_addlist.csv", "email\n" + "".join(f"x{n:03d}@example.com\n" for n in range(200)))

        started = time.monotonic()
        run = run_script("add_user.py", "--workers", "4", proxy=proxy, cwd=tmp_path)

    assert run.code == 1
    assert time.monotonic() - started < 90
    errors = run.rows("user_reg_error.csv")
    assert len(run.rows("user_reg_result.csv")) + len(errors) == 200
    assert sum(row["error_reason"].startswith("not started: the proxy stopped answering") for row in errors) > 150


def test_a_listing_that_fails_half_way_keeps_the_old_output_file(standin: Proxy, tmp_path: Path) -> None:
    assert standin.standin is not None
    for n in range(1086):
        standin.standin.seed_user(f"u{n:04d}@example.com")
    first = run_script("list_user.py", "--format", "csv", "--output", "user_list.csv", proxy=standin, cwd=tmp_path)
    assert first.code == 0, first.output
    before = (tmp_path / "user_list.csv").read_text()
    standin.standin.fail("/user/list", status=500, skip=10, times=100)

    run = run_script("list_user.py", "--format", "csv", "--output", "user_list.csv", proxy=standin, cwd=tmp_path)

    assert run.code == 3
    assert (tmp_path / "user_list.csv").read_text() == before
    assert len(before.splitlines()) == 1087
    assert [p.name for p in tmp_path.iterdir()] == ["user_list.csv"]


def test_a_fault_that_never_fires_fails_its_test() -> None:
    """The stand-in's own promise: a fault aimed at a request the run never makes is a failure,
    so that a fault test cannot pass while its fault went elsewhere; one that fired, or a watch,
    is not."""
    with pytest.raises(AssertionError, match="faults that never fired"), StandIn() as proxy:
        proxy.fail("/user/new", "status", status=500)
    with StandIn() as proxy:
        fired = proxy.fail("/user/list", "status", status=500)
        proxy.watch("/user/new", lambda: None)
        answer = requests.get(
            f"{proxy.url}/user/list", headers={"Authorization": f"Bearer {proxy.master_key}"}, timeout=10
        )
    assert (answer.status_code, fired.fired) == (500, True)
