"""Lost answers on the real proxy: a small forwarder between the script and the proxy passes every
request on, and drops the answer to the ones chosen after the proxy acted on them. The stand-in
tests cover more faults; these show the recovery works with a real LiteLLM's answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import Proxy, run_script, write_csv


class Forwarder:
    """Forwards to the proxy; drop[path] answers to that path are lost after the proxy acted."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.drop: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _lose(self, path: str) -> bool:
        with self.lock:
            if self.drop.get(path, 0) > 0:
                self.drop[path] -= 1
                return True
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                answer = requests.request(
                    method, forwarder.upstream + self.path, headers=headers, data=body, timeout=120
                )
                if forwarder._lose(urlsplit(self.path).path):
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def forwarder(real: Proxy) -> Iterator[tuple[Forwarder, Proxy]]:
    between = Forwarder(real.url)
    yield between, Proxy("real, through a forwarder", between.url, real.master_key, tag=real.tag)
    between.close()


@pytest.mark.integration
def test_lost_answers_to_creates_on_the_real_proxy(
    real: Proxy, forwarder: tuple[Forwarder, Proxy], tmp_path: Path
) -> None:
    between, proxy = forwarder
    team = f"lost-{real.tag}"
    real.create_team(team)
    emails = [real.email(f"lost{n}") for n in range(4)]
    write_csv(
        tmp_path / "user_addlist.csv", "email,team_name,key_name\n" + "".join(f"{e},{team},{e}-key\n" for e in emails)
    )
    between.drop["/user/new"] = 2  # releases before 1.108: one create per user
    between.drop["/management/v1/users/bulk"] = 1  # 1.108 and later: all four in one request

    run = run_script("add_user.py", "--workers", "1", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert "no answer to" in run.stderr
    users = real.users()
    assert sorted(users) == sorted(emails)  # each once: nothing was sent twice
    rows = {row["email"]: row for row in run.rows("user_reg_result.csv")}
    assert all(real.key_works(rows[e]["api_keys"]) for e in emails)
    assert {u.key_count for u in users.values()} == {1}  # the unseen keys were replaced, not added to
    with real.client() as client:
        assert {f"{e}-key" for e in emails} <= client.key_aliases()


@pytest.mark.integration
def test_a_lost_answer_to_a_delete_on_the_real_proxy(
    real: Proxy, forwarder: tuple[Forwarder, Proxy], tmp_path: Path
) -> None:
    between, proxy = forwarder
    emails = [real.email(f"gone{n}") for n in range(3)]
    for email in emails:
        real.create_user(email)
    write_csv(tmp_path / "user_dellist.csv", "email\n" + "\n".join(emails) + "\n")
    between.drop["/user/delete"] = 1
    between.drop["/management/v1/users/bulk_delete"] = 1

    run = run_script("del_user.py", proxy=proxy, cwd=tmp_path)

    assert run.code == 0, run.output
    assert sorted(row["email"] for row in run.rows("user_del_result.csv")) == sorted(emails)
    assert run.rows("user_del_error.csv") == []
    assert real.users() == {}
