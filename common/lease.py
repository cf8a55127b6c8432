"""One writing run per proxy, whoever starts it, from whichever machine or spelling of its URL.

A local lock file cannot see another machine, or the same proxy under another URL. So the lease
is kept on the proxy itself, where every client sees it: a team with a reserved id, created at
the start of a run (after the release is checked, before the proxy is read for the plan) and
deleted at its end. Its metadata says who holds it and since when; the holder renews it every
RENEW_SECONDS, and a lease not renewed for TTL_SECONDS is a dead run's. Times are the proxy's
own (the Date of its answers), so clocks that differ between machines do not matter.

Taking it: create our lease, then list the leases; if another live one exists, ours is deleted
again and the run stops (exit 4). Two runs that start together may both stop, never both go on:
each looks only after its own lease exists, so the later of the two always sees the earlier.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.exits import SafetyStop
from litellm_client import LiteLLMClient, ProxyError, Team

log = logging.getLogger("lease")

LEASE_ALIAS = "litellm-user-tools lease (do not use)"
LEASE_PREFIX = "litellm-user-tools-lease-"
TTL_SECONDS = 300
RENEW_SECONDS = 30


def is_lease(team: Team) -> bool:
    return team.team_id.startswith(LEASE_PREFIX)


def _this_host() -> str:
    """This machine, told apart from a rebooted or cloned one (a pid is only meaningful here)."""
    boot = Path("/proc/sys/kernel/random/boot_id")
    return f"{socket.gethostname()}/{boot.read_text().strip() if boot.exists() else ''}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_time(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    text = re.sub(r"(\.\d{6})\d*", r"\1", stamp.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Lease:
    """This run's lease on the proxy; stop_reason says when it was lost (the Runner stops then)."""

    def __init__(self, proxy: LiteLLMClient, script: str):
        self.proxy = proxy
        self.script = script
        self.team_id = LEASE_PREFIX + uuid.uuid4().hex
        self.metadata = {
            "script": script,
            "owner": f"{getpass.getuser()}@{socket.gethostname()}",
            "host": _this_host(),
            "pid": os.getpid(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ttl_seconds": TTL_SECONDS,
        }
        self._lost: str | None = None
        self._renewed = time.monotonic()
        self._done = threading.Event()
        self._renewer = threading.Thread(target=self._renew, daemon=True, name="lease")

    @property
    def stop_reason(self) -> str | None:
        return self._lost

    def _stamp(self) -> dict[str, Any]:
        now = self.proxy.proxy_time()
        return {**self.metadata, "renewed_at": now.isoformat(timespec="seconds") if now else None}

    def take(self) -> None:
        self.proxy.create_team(LEASE_ALIAS, team_id=self.team_id, metadata=self._stamp())
        try:
            live = self._live_others()
        except BaseException:  # a lease nobody checked would stop every other run for its TTL
            self.give_back()
            raise
        if live:
            self.give_back()
            holder = live[0].metadata
            raise SafetyStop(
                f"ERROR: another run is applying changes to this proxy ({holder.get('script', '?')} by "
                f"{holder.get('owner', '?')}, pid {holder.get('pid', '?')}, started {holder.get('started_at', '?')}; "
                f"its lease is the team {live[0].team_id}). Nothing was changed: try again when it has finished. "
                f"The lease of a run that died expires {TTL_SECONDS // 60} minutes after its last renewal."
            )
        self._renewer.start()

    def _live_others(self) -> list[Team]:
        """The leases of other runs that are alive; those of runs that died are removed."""
        leases = self.proxy.teams(alias=LEASE_ALIAS)
        now = self.proxy.proxy_time()
        others = [team for team in leases if is_lease(team) and team.team_id != self.team_id]
        live = [team for team in others if not self._dead(team, now)]
        for team in others:
            if team not in live:
                log.warning("removing the lease of a run that died: %s", team.metadata)
                self.proxy.delete_team(team.team_id)
        return live

    def _dead(self, team: Team, now: datetime | None) -> bool:
        """A lease whose run is gone: on this machine, its process is not running; anywhere, the
        proxy has not seen it renewed for its time to live."""
        holder = team.metadata
        pid = holder.get("pid")
        if holder.get("host") == self.metadata["host"] and isinstance(pid, int) and not _alive(pid):
            return True
        renewed = _parse_time(holder.get("renewed_at")) or _parse_time(team.updated_at)
        ttl = holder["ttl_seconds"] if isinstance(holder.get("ttl_seconds"), int) else TTL_SECONDS
        return bool(now and renewed and (now - renewed).total_seconds() > ttl)

    def _renew(self) -> None:
        while not self._done.wait(RENEW_SECONDS) and not self._lost:
            self.renew()

    def renew(self) -> None:
        """Tell the proxy this run is alive; note when the lease is gone, or about to expire."""
        try:
            self.proxy.update_team_metadata(self.team_id, self._stamp())
            self._renewed = time.monotonic()
        except ProxyError as exc:
            if exc.not_found:
                self._lost = "this run's lease on the proxy was removed by another run"
            elif time.monotonic() - self._renewed > TTL_SECONDS - 2 * RENEW_SECONDS:
                self._lost = f"this run's lease on the proxy could not be renewed ({exc})"

    def give_back(self) -> None:
        self._done.set()
        if self._renewer.is_alive():
            self._renewer.join()
        try:
            self.proxy.delete_team(self.team_id)
        except ProxyError as exc:
            log.warning("could not give back the lease %s (it expires by itself): %s", self.team_id, exc)


@contextmanager
def hold(proxy: LiteLLMClient, script: str, *, writes: bool) -> Iterator[Lease | None]:
    """For a run that writes: refuse a release the tools do not support, then take the lease for
    the length of the run, and give it back whatever happens. A run that only reads (a dry run, a
    drift check) takes nothing and waits for nothing."""
    if not writes:
        yield None
        return
    proxy.require_supported()
    lease = Lease(proxy, script)
    lease.take()
    try:
        yield lease
    finally:
        lease.give_back()
