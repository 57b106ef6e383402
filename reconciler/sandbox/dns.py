"""The sandbox's DNS: which CNAME and TXT records each customer hostname has right now.

Real Cloudflare for SaaS validates a custom hostname by looking at public DNS: the customer's
CNAME must point at the SaaS zone's CNAME target (or a TXT record must carry the ownership
token). The sandbox has no public DNS, so tests and the demo set records here, through
:class:`SandboxDNS` directly or the ``/__sandbox/dns`` control endpoint; the Cloudflare
simulator (:mod:`reconciler.sandbox.cloudflare_hostnames`) reads them whenever it evaluates a
hostname. Each record remembers the virtual time it was set, so a hostname validates at the
first scheduled check after its DNS became right.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from reconciler.sandbox.clock import VirtualClock

MAX_CNAME_CHAIN = 8


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """The records of one name: an optional CNAME target and any TXT values."""

    name: str
    cname: str | None = None
    txt: tuple[str, ...] = field(default_factory=tuple)
    set_at: float = 0.0

    def as_json(self) -> dict[str, object]:
        """The record as the control endpoint shows it."""
        return {
            "name": self.name,
            "cname": self.cname,
            "txt": list(self.txt),
            "set_at": self.set_at,
        }


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


class SandboxDNS:
    """A thread-safe map from DNS name to :class:`DnsRecord`, stamped with virtual time."""

    def __init__(self, clock: VirtualClock) -> None:
        """Start empty; ``clock`` stamps every change."""
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, DnsRecord] = {}

    def put(
        self, name: str, *, cname: str | None = None, txt: list[str] | None = None
    ) -> DnsRecord:
        """Replace the records of ``name`` (a CNAME target and/or TXT values)."""
        record = DnsRecord(
            name=_key(name),
            cname=_key(cname) if cname else None,
            txt=tuple(txt or ()),
            set_at=self._clock.now(),
        )
        with self._lock:
            self._records[record.name] = record
        return record

    def add_txt(self, name: str, value: str) -> DnsRecord:
        """Add one TXT value to ``name``, keeping its other records."""
        with self._lock:
            old = self._records.get(_key(name))
        cname = old.cname if old else None
        txt = [*(old.txt if old else ()), value]
        return self.put(name, cname=cname, txt=txt)

    def delete(self, name: str) -> bool:
        """Remove every record of ``name``; return whether there was one."""
        with self._lock:
            return self._records.pop(_key(name), None) is not None

    def clear(self) -> None:
        """Remove every record."""
        with self._lock:
            self._records.clear()

    def get(self, name: str) -> DnsRecord | None:
        """The records of ``name``, if any."""
        with self._lock:
            return self._records.get(_key(name))

    def all(self) -> list[DnsRecord]:
        """Every record, sorted by name."""
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.name)

    def resolves_to(self, name: str, targets: set[str]) -> float | None:
        """When ``name``'s CNAME chain started reaching one of ``targets``; None if it does not.

        The chain is followed up to :data:`MAX_CNAME_CHAIN` hops; the time returned is the
        latest ``set_at`` along the chain (the moment the whole chain became right).
        """
        wanted = {_key(t) for t in targets}
        current = _key(name)
        latest = 0.0
        with self._lock:
            for _ in range(MAX_CNAME_CHAIN):
                record = self._records.get(current)
                if record is None or record.cname is None:
                    return None
                latest = max(latest, record.set_at)
                if record.cname in wanted:
                    return latest
                current = record.cname
        return None

    def txt_since(self, name: str, value: str) -> float | None:
        """When ``name`` got a TXT record equal to ``value``; None if it has none."""
        with self._lock:
            record = self._records.get(_key(name))
        if record is None or value not in record.txt:
            return None
        return record.set_at
