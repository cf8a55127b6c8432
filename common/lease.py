"""One writing run per proxy, whoever starts it, from whichever machine or spelling of its URL.

A local lock file cannot see another machine, or the same proxy under another URL. So the lease
is kept on the proxy itself, where every client sees it: a team with a reserved id, alias and
mark in its metadata, created at the start of a run (after the release is checked, before the
proxy is read for the plan) and deleted at its end. Its metadata says who holds it, since when,
and how often it was renewed; the holder renews it every tenth of its time to live.

Taking it: create ours (claiming), then list the leases. Another lease that holds the proxy
stops this run (exit 4). Another that is claiming too means two runs started together: each
gives its own back and tries again after a random pause, so that one of them goes on. Only when
no other lease is there does ours hold: of two runs, the later to create always sees the earlier.

A lease is judged dead only by what this machine can see for itself, never by a clock: on this
machine (and pid namespace) its process is gone; elsewhere, its renewal count stays the same for
its whole time to live, watched on this run's own clock (one that counts a suspended machine's
sleep, where the system has one: the other run's time passes then too). The proxy's clock, which
differs between replicas of one proxy, is used only to say when a lease looks fresh.

A run stops starting rows once its last successful renewal is older than the time to live less a
margin, before another run could take its lease over; renewals are quick, and any failure of the
renewal thread counts as a lost lease.
"""

from __future__ import annotations

import getpass
import logging
import os
import random
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
LEASE_MARK = "litellm_user_tools_lease"  # in its metadata, with the format's version
HOLDER_KEYS = frozenset({"script", "owner", "host", "pid", "ttl_seconds"})  # a lease's metadata always has these
TTL_SECONDS = 300
RENEWAL_TIMEOUT = 10.0  # seconds a renewal may take: one try, no retries
CLAIMS = 6  # tries to take the lease while other runs are starting too
CLAIMING, HOLDING = "claiming", "holding"


ALIVE, DEAD, GONE = "alive", "dead", "gone"  # what a look at another run's lease finds


def _clock() -> float:
    """Seconds on this machine's clock that never jumps, sleep included where Linux counts it
    (CLOCK_BOOTTIME): a renewal is as old as the time the other runs saw pass."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


def is_lease(team: Team) -> bool:
    """A lease by all of its marks (id, alias, holder): a team that only shares one is a team."""
    return team.team_id.startswith(LEASE_PREFIX) and team.alias == LEASE_ALIAS and set(team.metadata) >= HOLDER_KEYS


def _this_host() -> str:
    """This machine and pid namespace, told apart from a rebooted or cloned machine, and from a
    container that shares the host's name (host networking) but not its processes: a pid means
    something only here."""
    boot = Path("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{boot.read_text().strip() if boot.exists() else ''}/{namespace}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _seconds(stamp: Any) -> float | None:
    """A time the proxy wrote, as seconds since the epoch (UTC when it says no zone)."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _ttl(team: Team) -> float:
    ttl = team.metadata.get("ttl_seconds")
    return float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else TTL_SECONDS


class Lease:
    """This run's lease on the proxy; stop_reason says when it is lost or about to be."""

    def __init__(self, proxy: LiteLLMClient, script: str, *, ttl: float = TTL_SECONDS):
        self.proxy = proxy
        self.ttl = ttl
        self.team_id = LEASE_PREFIX + uuid.uuid4().hex
        self.metadata: dict[str, Any] = {
            LEASE_MARK: 1,
            "script": script,
            "owner": f"{getpass.getuser()}@{socket.gethostname()}",
            "host": _this_host(),
            "pid": os.getpid(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ttl_seconds": ttl,
            "state": CLAIMING,
            "renewals": 0,
        }
        self._lost: str | None = None
        self._renewed = _clock()
        self._done = threading.Event()
        self._renewer = threading.Thread(target=self._renew_until_done, daemon=True, name="lease")

    @property
    def stop_reason(self) -> str | None:
        """Why the run must start no more rows: the lease was lost, or is about to expire for
        another run (its last renewal is older than the time to live less a margin)."""
        if self._lost:
            return self._lost
        since = _clock() - self._renewed
        if since > self.ttl - self.margin:
            return f"this run's lease on the proxy has not been renewed for {since:.0f} s (of {self.ttl:.0f} s)"
        return None

    @property
    def margin(self) -> float:
        return min(60.0, self.ttl / 4)

    def _stamp(self) -> dict[str, Any]:
        now = self.proxy.proxy_time()
        return {**self.metadata, "renewed_at": now.isoformat(timespec="seconds") if now else None}

    def take(self) -> None:
        """Hold the proxy, or raise SafetyStop (exit 4) if another run holds it."""
        for attempt in range(CLAIMS):
            self.team_id = LEASE_PREFIX + uuid.uuid4().hex
            self.metadata["state"] = CLAIMING
            self.proxy.create_team(LEASE_ALIAS, team_id=self.team_id, metadata=self._stamp())
            try:
                others = self._live_others()
            except BaseException:  # a lease nobody checked would stop every other run for its TTL
                self._delete()
                raise
            if not others:
                self.metadata["state"] = HOLDING
                self.renew()
                if self._lost:
                    raise ProxyError(f"the lease could not be taken: {self._lost}")
                self._renewer.start()
                return
            self._delete()
            holding = [team for team in others if team.metadata.get("state") != CLAIMING]
            if holding:
                raise SafetyStop(_busy(holding[0]))
            log.warning("another run is starting at the same moment; trying again (%d)", attempt + 1)
            time.sleep(random.uniform(0.2, 1.5) * (attempt + 1))
        raise SafetyStop(
            "ERROR: other runs kept starting at the same moment as this one; nothing was changed: try again."
        )

    def _live_others(self) -> list[Team]:
        """The leases of other runs that are alive; those of runs that died are removed (and those
        given back while this run looked are no more in the way)."""
        leases = [team for team in self.proxy.teams(alias=LEASE_ALIAS) if is_lease(team)]
        others = [team for team in leases if team.team_id != self.team_id]
        found = {team.team_id: self._state_of(team) for team in others}
        for team in others:
            # said only where this run removed it: a lease given back that a replica still listed is no news
            if found[team.team_id] == DEAD and self.proxy.delete_team(team.team_id):
                log.warning("removed the lease of a run that died: %s", team.metadata)
        return [team for team in others if found[team.team_id] == ALIVE]

    def _state_of(self, team: Team) -> str:
        holder = team.metadata
        pid = holder.get("pid")
        if holder.get("host") == self.metadata["host"] and isinstance(pid, int):
            return DEAD if not _alive(pid) else ALIVE  # on this machine: its process says
        renewed, now = _seconds(holder.get("renewed_at")), self.proxy.proxy_time()
        if renewed is not None and now is not None and now.timestamp() - renewed < _ttl(team):
            return ALIVE  # it looks fresh (the safe answer, whatever the clocks)
        return self._watched(team)

    def _watched(self, team: Team) -> str:
        """Watch a lease that looks stale: dead if its renewal count stays the same for its time to
        live, on this run's own clock; alive as soon as it changes; gone if it is given back."""
        ttl = _ttl(team)
        log.warning(
            "the lease of %s (%s, pid %s) looks stale; watching it for up to %.0f s",
            team.metadata.get("script"), team.metadata.get("owner"), team.metadata.get("pid"), ttl,
        )  # fmt: skip
        seen = team.metadata.get("renewals")
        watched = _clock()
        while _clock() - watched < ttl:
            time.sleep(min(ttl / 10, 5.0))
            now = [other for other in self.proxy.teams(alias=LEASE_ALIAS) if other.team_id == team.team_id]
            if not now:
                return GONE
            if now[0].metadata.get("renewals") != seen:
                return ALIVE
        return DEAD

    def _renew_until_done(self) -> None:
        try:
            while not self._done.wait(self.ttl / 10) and not self._lost:
                self.renew()
        except BaseException as exc:  # whatever stops the renewals loses the lease
            self._lost = f"this run's lease on the proxy could not be renewed ({exc})"

    def renew(self) -> None:
        """Tell the proxy this run is alive (one quick request); note when the lease is gone."""
        self.metadata["renewals"] += 1
        try:
            self.proxy.update_team_metadata(self.team_id, self._stamp(), timeout=RENEWAL_TIMEOUT)
            self._renewed = _clock()
        except ProxyError as exc:
            if exc.not_found:
                self._lost = "this run's lease on the proxy was removed by another run"
            else:
                log.warning("the lease could not be renewed (%s); trying again", exc)

    def give_back(self) -> None:
        self._done.set()
        if self._renewer.is_alive():
            self._renewer.join()
        self._delete()

    def _delete(self) -> None:
        try:
            self.proxy.delete_team(self.team_id)
        except ProxyError as exc:
            log.warning("could not give back the lease %s (it expires by itself): %s", self.team_id, exc)


def _busy(team: Team) -> str:
    holder = team.metadata
    return (
        f"ERROR: another run is applying changes to this proxy ({holder.get('script', '?')} by "
        f"{holder.get('owner', '?')}, pid {holder.get('pid', '?')}, started {holder.get('started_at', '?')}; "
        f"its lease is the team {team.team_id}). Nothing was changed: try again when it has finished. "
        f"If that run died, the next run finds out: at once on its machine; elsewhere by watching its lease "
        f"go {int(_ttl(team)) // 60} minutes without a renewal."
    )


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
