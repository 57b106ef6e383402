"""Fault injection for the sandbox simulators: errors, latency, timeouts and 429 bursts.

Tests and the demo install :class:`FaultRule` values through the ``/__sandbox/faults`` control
endpoint (or :meth:`FaultPlan.set` directly). The simulators' request pipeline
(:mod:`reconciler.sandbox.pipeline`) asks :meth:`FaultPlan.decide` about every API request
before handling it and acts on the :class:`FaultDecision`. The first rule whose path prefix and
method match a request decides; the random draws come from one ``random.Random(seed)``, so the
same requests in the same order meet the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Literal

FaultKind = Literal["none", "error", "timeout", "drop", "rate_limited"]


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault rule; every field is optional in the JSON form.

    Attributes:
        path_prefix: API path prefix the rule applies to (relative to the API root, e.g.
            ``/zones``); empty matches every path.
        methods: HTTP methods the rule applies to; empty matches every method.
        error_rate: probability of answering a 5xx with the contract's error body.
        error_status: the 5xx status to answer with.
        latency: real seconds added before every matching response.
        timeout_rate: probability of a timeout (see ``timeout_mode``).
        timeout_mode: ``hold`` keeps the response for ``hold_seconds`` (longer than the client's
            timeout); ``drop`` closes the connection without a complete response.
        hold_seconds: how long a held response waits.
        process_on_timeout: whether the request still takes effect when it times out (a create
            that succeeded although the client never saw the answer).
        burst_429: the next N matching requests answer 429 with ``retry_after``.
        retry_after: seconds announced in ``retry-after`` by a 429 burst.
    """

    path_prefix: str = ""
    methods: tuple[str, ...] = ()
    error_rate: float = 0.0
    error_status: int = 500
    latency: float = 0.0
    timeout_rate: float = 0.0
    timeout_mode: Literal["hold", "drop"] = "hold"
    hold_seconds: float = 30.0
    process_on_timeout: bool = True
    burst_429: int = 0
    retry_after: int = 30

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        """Build a rule from its JSON form; unknown keys or bad values raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        values = dict(data)
        if "methods" in values:
            values["methods"] = tuple(str(m).upper() for m in values["methods"])
        rule = cls(**values)
        if not 0.0 <= rule.error_rate <= 1.0 or not 0.0 <= rule.timeout_rate <= 1.0:
            raise ValueError("error_rate and timeout_rate must be between 0 and 1")
        if rule.error_rate + rule.timeout_rate > 1.0:
            raise ValueError("error_rate + timeout_rate must not exceed 1")
        if not 500 <= rule.error_status <= 599:
            raise ValueError("error_status must be a 5xx status")
        if rule.timeout_mode not in ("hold", "drop"):
            raise ValueError("timeout_mode must be 'hold' or 'drop'")
        if rule.latency < 0 or rule.hold_seconds < 0 or rule.burst_429 < 0:
            raise ValueError("latency, hold_seconds and burst_429 must not be negative")
        return rule

    def as_json(self) -> dict[str, Any]:
        """The rule in its JSON form."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["methods"] = list(self.methods)
        return out

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to ``method path``."""
        if self.methods and method.upper() not in self.methods:
            return False
        return path.startswith(self.path_prefix)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do with one request."""

    kind: FaultKind = "none"
    latency: float = 0.0
    status: int = 0
    hold_seconds: float = 0.0
    process: bool = True
    retry_after: int = 0


NO_FAULT = FaultDecision()


@dataclass(slots=True)
class _Active:
    rule: FaultRule
    bursts_left: int = 0


@dataclass(slots=True)
class FaultPlan:
    """The installed fault rules and their deterministic random source (thread-safe)."""

    seed: int = 0
    _rules: list[_Active] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, rules: list[FaultRule], *, seed: int = 0) -> None:
        """Replace every rule and reseed the random source."""
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)
            self._rules = [_Active(rule, rule.burst_429) for rule in rules]

    def clear(self) -> None:
        """Remove every rule."""
        self.set([], seed=0)

    def rules(self) -> list[dict[str, Any]]:
        """The installed rules with their remaining 429 bursts, for the control endpoint."""
        with self._lock:
            return [{**a.rule.as_json(), "bursts_left": a.bursts_left} for a in self._rules]

    def decide(self, method: str, path: str) -> FaultDecision:
        """Decide the fault (if any) for one request; consumes random draws and bursts."""
        with self._lock:
            for active in self._rules:
                rule = active.rule
                if not rule.matches(method, path):
                    continue
                if active.bursts_left > 0:
                    active.bursts_left -= 1
                    return FaultDecision(
                        kind="rate_limited",
                        latency=rule.latency,
                        status=429,
                        retry_after=rule.retry_after,
                    )
                draw = self._rng.random() if (rule.error_rate or rule.timeout_rate) else 1.0
                if draw < rule.error_rate:
                    return FaultDecision(
                        kind="error", latency=rule.latency, status=rule.error_status
                    )
                if draw < rule.error_rate + rule.timeout_rate:
                    return FaultDecision(
                        kind="timeout" if rule.timeout_mode == "hold" else "drop",
                        latency=rule.latency,
                        hold_seconds=rule.hold_seconds,
                        process=rule.process_on_timeout,
                    )
                return FaultDecision(latency=rule.latency)
        return NO_FAULT
