"""The client guard: the lease fence, the provider's breaker and the API metrics around every call.

Called by ``wiring``, which wraps every adapter the daemon uses (:func:`guarded_client`)
before handing them to the loop (``runtime/loop.py``). It calls the breakers
(``runtime/breaker.py``), the metrics and :func:`reconciler.providers.http.fencing`.

Rules (docs/daemon.md, "The loop"):

1. Every client that can change the world is fenced (``fence=lease.ensure``): a write after
   the lease is gone raises ``LeaseLostError`` before anything reaches the world.
2. A provider whose breaker is open is refused (``BreakerOpenError``) without a request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from reconciler.errors import ProviderError
from reconciler.providers.http import fencing
from reconciler.runtime.breaker import Breakers, CircuitBreaker
from reconciler.runtime.metrics import Metrics

__all__ = ["guarded_client"]

T = TypeVar("T")

_UNGUARDED = frozenset({"close", "aclose"})


class _Guarded:
    """Proxy around a client: fence, breaker and metrics around every coroutine method."""

    def __init__(
        self,
        target: object,
        *,
        provider: str,
        breaker: CircuitBreaker | None,
        metrics: Metrics | None,
        fence: Callable[[], object] | None,
    ) -> None:
        self._target = target
        self._provider = provider
        self._breaker = breaker
        self._metrics = metrics
        self._fence = fence

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name in _UNGUARDED or not inspect.iscoroutinefunction(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._fence is not None:
                self._fence()  # NB: LeaseLostError before anything reaches the world
            if self._breaker is not None:
                self._breaker.check()
            try:
                with fencing(self._fence):  # and again before each request leaves
                    result = await attribute(*args, **kwargs)
            except ProviderError as exc:
                if self._breaker is not None:
                    self._breaker.record_failure(exc)
                if self._metrics is not None and not getattr(exc, "not_applied", False):
                    self._metrics.api_call(self._provider, exc.status or "error")
                    self._metrics.api_error(self._provider, exc)
                raise
            if self._breaker is not None:
                self._breaker.record_success()
            if self._metrics is not None:
                self._metrics.api_call(self._provider, "2xx")
            return result

        return call

    def __repr__(self) -> str:
        return f"guarded({self._target!r})"


def guarded_client(
    target: T,
    *,
    provider: str,
    breakers: Breakers | None = None,
    metrics: Metrics | None = None,
    fence: Callable[[], object] | None = None,
) -> T:
    """``target`` with every coroutine method guarded (module rules 1 and 2).

    Before each call: ``fence()`` (``lease.ensure`` for writers; it raises when the lease is
    lost) and the provider's breaker (``BreakerOpenError`` when it refuses). After it: the
    breaker and the API metrics learn the result. ``close``/``aclose`` pass straight through.

    Args:
        target: the adapter (a ``CloudflareClient``, a ``Database``, ...).
        provider: the breaker and metrics name (``cloudflare``, ``d1``, ``stripe``,
            ``whatsapp``).
        breakers: the shared breakers (none: no breaker).
        metrics: where calls and errors are counted (none: not counted).
        fence: called before every call; raises to refuse it.

    Returns:
        A proxy typed as ``target`` (it forwards every other attribute unchanged).
    """
    breaker = breakers[provider] if breakers is not None and provider in breakers else None
    proxy = _Guarded(target, provider=provider, breaker=breaker, metrics=metrics, fence=fence)
    return cast(T, proxy)
