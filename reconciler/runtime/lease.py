"""The leader lease: one daemon writes, the others stand by, on a row of D1's ``leases`` table.

Who calls it: the daemon loop (``runtime/loop.py``) builds one :class:`LeaderLease` per
process, waits with :meth:`LeaderLease.wait_until_leader`, keeps the lease with
:meth:`LeaderLease.maintain` (or :meth:`LeaderLease.renew` on its own schedule), and calls
:meth:`LeaderLease.ensure` before every write to the world. What it calls: the
:class:`~reconciler.providers.d1.Database` protocol (a local SQLite file or D1 over the REST
API; the SQL is the same) and the injected clock and sleep.

Rules (``migrations/0002_reconciler_ledger.sql`` has the table):

1. Acquiring is one atomic upsert: the row is taken when it is absent, expired
   (``expires_at < now``) or already ours. Whoever else holds an unexpired lease keeps it. The
   same batch reads the row back, so the answer cannot be confused by a concurrent writer.
2. Every new term (a new holder, or the same holder after its lease lapsed) increments
   ``fencing_token``; a renewal keeps it. Writers pass the token along (events, intents) so a
   write from a stale leader is detectable.
3. Renewing only extends a lease that is still ours, still the same term and not expired; a
   renewal that changes no row means the lease was lost.
4. Leadership is also bounded **locally**: the lease counts as held only until the clock
   reading taken *before* the last successful acquire or renew, plus ``ttl``, minus
   ``safety_margin``. So a leader cut off from D1 stops writing on its own before anyone else
   can take over, and :attr:`LeaderLease.is_leader` turns false the moment a renewal reports
   the lease lost. Clocks of the daemons must agree to within the safety margin (NTP).
5. Releasing expires the row (``expires_at = 0``) but keeps it, so the fencing token keeps
   growing and a standby takes over at its next poll.

6. Manual verbs (``apply``) take the same lease through :func:`exclusive`, or refuse with
   :class:`LeaseHeldError` naming the holder and when its lease ends; nothing is changed then.
   A holder on this host whose process is gone (a killed ``apply``) is taken over at once with
   a compare-and-set on its holder and token (a new term), so a rerun after ``kill -9`` need
   not wait out the ttl. Holders on other hosts are never presumed dead.
7. While the verb runs, the lease is renewed beside it and every writer goes through
   :func:`fenced_client`: checked before each call and, through
   :func:`reconciler.providers.http.fencing`, again right before each HTTP request leaves.

A standby notices a dead leader within ``ttl`` plus one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from reconciler.errors import ProviderError, ReconcilerError
from reconciler.providers.d1 import Database, Statement
from reconciler.providers.http import fencing

__all__ = [
    "DEFAULT_LEASE_NAME",
    "LeaderLease",
    "LeaseHeldError",
    "LeaseLostError",
    "default_holder",
    "exclusive",
    "fenced_client",
]

T = TypeVar("T")

DEFAULT_LEASE_NAME = "reconciler-leader"

logger = logging.getLogger("reconciler.lease")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# ?1 name, ?2 holder, ?3 expires_at, ?4 now. SET expressions see the row as it was before the
# update, so the CASEs compare against the previous holder and expiry.
_ACQUIRE = """
INSERT INTO leases (name, holder, expires_at, fencing_token, acquired_at, renewed_at)
VALUES (?1, ?2, ?3, 1, ?4, ?4)
ON CONFLICT (name) DO UPDATE SET
    fencing_token = CASE
        WHEN leases.holder = excluded.holder AND leases.expires_at >= excluded.renewed_at
        THEN leases.fencing_token ELSE leases.fencing_token + 1 END,
    acquired_at = CASE
        WHEN leases.holder = excluded.holder AND leases.expires_at >= excluded.renewed_at
        THEN leases.acquired_at ELSE excluded.acquired_at END,
    holder = excluded.holder,
    expires_at = excluded.expires_at,
    renewed_at = excluded.renewed_at
WHERE leases.expires_at < excluded.renewed_at OR leases.holder = excluded.holder
"""
_READ = "SELECT holder, expires_at, fencing_token FROM leases WHERE name = ?"
_RENEW = """
UPDATE leases SET expires_at = ?, renewed_at = ?
WHERE name = ? AND holder = ? AND fencing_token = ? AND expires_at >= ?
"""
_TAKE_OVER = """
UPDATE leases SET holder = ?, expires_at = ?, fencing_token = fencing_token + 1,
    acquired_at = ?, renewed_at = ?
WHERE name = ? AND holder = ? AND fencing_token = ?
"""
_RELEASE = """
UPDATE leases SET expires_at = 0
WHERE name = ? AND holder = ? AND fencing_token = ?
"""


class LeaseLostError(ReconcilerError):
    """This daemon is not (or no longer) the leader; it must not write."""


class LeaseHeldError(ReconcilerError):
    """Another process holds the leader lease; a manual verb refuses rather than race it."""


def default_holder(role: str = "") -> str:
    """A holder id unique to this process: ``host:pid:random``, then ``:role`` when given."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return f"{holder}:{role}" if role else holder


def process_gone(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer exists (rule 6)."""
    parts = holder.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaderLease:
    """This process's claim on the leader lease (see the module docstring for the rules)."""

    def __init__(
        self,
        db: Database,
        *,
        holder: str,
        name: str = DEFAULT_LEASE_NAME,
        ttl: float = 15.0,
        safety_margin: float | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Prepare a claim; nothing is written until :meth:`try_acquire`.

        Args:
            db: the D1 database holding the ``leases`` table.
            holder: this process's unique id (see :func:`default_holder`).
            name: the lease's row name.
            ttl: seconds a lease lasts after each acquire or renew.
            safety_margin: seconds before the lease's end at which this process stops
                considering itself leader (default ``ttl / 5``); covers clock skew and the
                time a write takes.
            clock: epoch seconds (injected; the same clock for every lease of a test).
            sleep: how to wait between polls and renewals (injected for tests).
        """
        margin = ttl / 5 if safety_margin is None else safety_margin
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if not 0 <= margin < ttl:
            raise ValueError("safety_margin must be at least 0 and less than ttl")
        if not holder:
            raise ValueError("holder must be a non-empty id")
        self.db = db
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.safety_margin = margin
        self._clock = clock
        self._sleep = sleep
        self._token: int | None = None
        self._deadline = 0.0
        self.last_error: str | None = None
        self.held_by: tuple[str, float, int] | None = None  # (holder, expires_at, token) seen

    # ------------------------------------------------------------------ state

    @property
    def is_leader(self) -> bool:
        """True while this process holds the lease and its local deadline has not passed."""
        return self._token is not None and self._clock() < self._deadline

    @property
    def fencing_token(self) -> int | None:
        """The token of the current term, or ``None`` when not leader."""
        return self._token if self.is_leader else None

    @property
    def deadline(self) -> float:
        """Epoch seconds after which this process stops writing unless it renews first."""
        return self._deadline if self._token is not None else 0.0

    def ensure(self) -> int:
        """Check leadership right before a write.

        Returns:
            The fencing token to attach to the write.

        Raises:
            LeaseLostError: the lease is not held or its local deadline has passed.
        """
        token = self.fencing_token
        if token is None:
            raise LeaseLostError(f"{self.holder} does not hold the lease {self.name!r}")
        return token

    # ------------------------------------------------------------------ D1 operations

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; renew it if ours.

        Returns:
            True when this process now holds the lease.

        Raises:
            ProviderError: D1 could not be reached or refused the statement (leadership is
                then whatever it was before, bounded by the local deadline).
        """
        started = self._clock()
        expires = started + self.ttl
        results = await self.db.batch(
            [
                Statement(_ACQUIRE, (self.name, self.holder, expires, started)),
                Statement(_READ, (self.name,)),
            ]
        )
        rows = results[1].rows
        row = rows[0] if rows else None
        # The upsert always writes a row we hold, so "ours" after it means "we just wrote it".
        if row is not None and row["holder"] == self.holder:
            token = row["fencing_token"]
            assert isinstance(token, int)
            if token != self._token:
                logger.info(
                    "lease acquired",
                    extra={"lease": self.name, "holder": self.holder, "fencing_token": token},
                )
            self._token = token
            self._deadline = started + self.ttl - self.safety_margin
            self.held_by = None
            return True
        if row is not None:
            held_token, held_until = row["fencing_token"], row["expires_at"]
            assert isinstance(held_token, int) and isinstance(held_until, int | float)
            self.held_by = (str(row["holder"]), float(held_until), held_token)
        self._lose("held by another process")
        return False

    async def take_over(self, holder: str, token: int) -> bool:
        """Take the lease from ``holder`` (a process known to be gone) if it still holds term
        ``token``; a new term either way it succeeds (rule 6).

        Returns:
            True when this process now holds the lease.
        """
        started = self._clock()
        result = await self.db.execute(
            _TAKE_OVER,
            (self.holder, started + self.ttl, started, started, self.name, holder, token),
        )
        if result.changes != 1:
            return False
        logger.warning(
            "lease taken over from a process that is gone",
            extra={"lease": self.name, "holder": self.holder, "previous": holder},
        )
        return await self.try_acquire()

    async def renew(self) -> bool:
        """Extend the lease of the current term.

        A renewal D1 cannot answer (network, 5xx) is logged and leaves leadership to the local
        deadline; one that changes no row means the lease is gone, and leadership ends now.

        Returns:
            Whether this process is still the leader.
        """
        token = self._token
        if token is None:
            return False
        started = self._clock()
        try:
            result = await self.db.execute(
                _RENEW,
                (started + self.ttl, started, self.name, self.holder, token, started),
            )
        except ProviderError as exc:
            self.last_error = str(exc)
            logger.warning(
                "lease renewal failed; leadership ends at the local deadline unless a later "
                "renewal succeeds",
                extra={"lease": self.name, "holder": self.holder, "error": str(exc)},
            )
            return self.is_leader
        if result.changes != 1:
            self._lose("renewal changed no row: the lease expired or was taken")
            return False
        if self._token == token:
            self._deadline = started + self.ttl - self.safety_margin
        return self.is_leader

    async def release(self) -> None:
        """Give the lease up now (on a graceful stop) so a standby can take over at once.

        Leadership ends locally first, so nothing writes after this is called even if D1 is
        unreachable; a failure to reach D1 is logged, and the lease then simply expires.
        """
        token = self._token
        self._lose("released")
        if token is None:
            return
        try:
            await self.db.execute(_RELEASE, (self.name, self.holder, token))
        except ProviderError as exc:
            self.last_error = str(exc)
            logger.warning(
                "lease release failed; it will expire on its own",
                extra={"lease": self.name, "holder": self.holder, "error": str(exc)},
            )

    # ------------------------------------------------------------------ loops

    async def wait_until_leader(self, *, poll: float | None = None) -> int:
        """Stand by until this process holds the lease.

        Args:
            poll: seconds between attempts (default ``ttl / 3``). Failed attempts (D1
                unreachable) are logged and retried at the same pace.

        Returns:
            The fencing token of the new term.
        """
        interval = self.ttl / 3 if poll is None else poll
        while True:
            try:
                if await self.try_acquire():
                    return self.ensure()
            except ProviderError as exc:
                self.last_error = str(exc)
                logger.warning(
                    "lease acquisition failed; retrying",
                    extra={"lease": self.name, "holder": self.holder, "error": str(exc)},
                )
            await self._sleep(interval)

    async def maintain(self, *, interval: float | None = None) -> None:
        """Renew the lease periodically; return as soon as leadership is lost.

        Run it as a task beside the leader's work and stop that work when it returns.

        Args:
            interval: seconds between renewals (default ``ttl / 3``, so two renewals can fail
                before the local deadline passes).
        """
        every = self.ttl / 3 if interval is None else interval
        while self.is_leader:
            await self._sleep(every)
            if not await self.renew():
                return

    def _lose(self, why: str) -> None:
        if self._token is not None:
            # Giving the lease up on purpose is routine; losing it is what an operator must see.
            logger.log(
                logging.INFO if why == "released" else logging.WARNING,
                "lease released" if why == "released" else "lease lost",
                extra={"lease": self.name, "holder": self.holder, "reason": why},
            )
        self._token = None
        self._deadline = 0.0

    def __repr__(self) -> str:
        """Name, holder and whether it leads; never the database."""
        return f"LeaderLease({self.name!r}, holder={self.holder!r}, leader={self.is_leader})"


@contextlib.asynccontextmanager
async def exclusive(
    lease: LeaderLease,
    *,
    verb: str,
    gone: Callable[[str], bool] = process_gone,
) -> AsyncIterator[LeaderLease]:
    """Hold ``lease`` for a manual verb, renewing it beside the work; release it after (rule 6).

    Args:
        lease: a claim on the daemon's lease (same database and name).
        verb: what is refused, for the message (``"apply"``).
        gone: whether a holder's process is known to be gone (injected for tests).

    Raises:
        LeaseHeldError: another live process holds the lease; nothing was changed.
        ProviderError: D1 could not be reached to take the lease.
    """
    if not await lease.try_acquire():
        seen = lease.held_by
        if seen is None or not gone(seen[0]) or not await lease.take_over(seen[0], seen[2]):
            raise LeaseHeldError(_held_message(lease, verb))
    renew = asyncio.create_task(lease.maintain(), name=f"{verb}-lease")
    try:
        yield lease
    finally:
        renew.cancel()
        await asyncio.gather(renew, return_exceptions=True)
        await lease.release()


def _held_message(lease: LeaderLease, verb: str) -> str:
    seen = lease.held_by
    if seen is None:
        return f"refusing to {verb}: the leader lease {lease.name!r} could not be taken"
    holder, expires, token = seen
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    return (
        f"refusing to {verb}: the leader lease {lease.name!r} is held by {holder} (term "
        f"{token}, until {until} unless renewed); a daemon is leading: stop it, or let it "
        "converge the world, then run again; nothing was changed"
    )


class _Fenced:
    """Proxy: ``fence()`` before every coroutine method, and inside it before each request."""

    def __init__(self, target: object, fence: Callable[[], object]) -> None:
        self._target = target
        self._fence = fence

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name in ("close", "aclose") or not inspect.iscoroutinefunction(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            with fencing(self._fence):
                return await attribute(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"fenced({self._target!r})"


def fenced_client(target: T, fence: Callable[[], object]) -> T:
    """``target`` with every coroutine method fenced by ``fence`` (rule 7); typed as itself."""
    return cast(T, _Fenced(target, fence))
