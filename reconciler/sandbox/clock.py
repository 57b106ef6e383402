"""The sandbox's virtual clock: simulated time that tests and the demo move forward by hand.

Every simulator takes one :class:`VirtualClock`; a hostname's validation, a deployment's stages
and a rate-limit window all read it, so ``advance(86400)`` makes a day pass for the whole world
at once. The reconciler itself never reads this clock directly: it gets ``now`` injected, and
the sandbox's control endpoint tells tests what the virtual time is.
"""

from __future__ import annotations

import threading
import time


class VirtualClock:
    """Wall-clock time plus an offset that only ever grows.

    ``now()`` is epoch seconds. Real time still flows (so timeouts and rate windows work in a
    live demo); ``advance`` adds a jump on top. ``freeze()`` stops real time from flowing, for
    tests that want exact instants.
    """

    def __init__(self, *, start: float | None = None) -> None:
        """Start at ``start`` epoch seconds (default: the real current time)."""
        self._lock = threading.Lock()
        self._base_real = time.time()
        self._base_virtual = self._base_real if start is None else start
        self._frozen_at: float | None = None

    def now(self) -> float:
        """Current virtual time in epoch seconds."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._base_virtual + (time.time() - self._base_real)

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (never backward); return the new time."""
        if seconds < 0:
            raise ValueError("the virtual clock never goes backwards")
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
                return self._frozen_at
            self._base_virtual += seconds
            return self._base_virtual + (time.time() - self._base_real)

    def freeze(self) -> None:
        """Stop real time from flowing; only ``advance`` moves the clock from now on."""
        now = self.now()
        with self._lock:
            self._frozen_at = now

    def thaw(self) -> None:
        """Let real time flow again from the current virtual instant."""
        with self._lock:
            if self._frozen_at is None:
                return
            self._base_virtual = self._frozen_at
            self._base_real = time.time()
            self._frozen_at = None
