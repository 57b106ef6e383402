"""What the status store last wrote for each row, kept in one integer a row (a fleet's worth).

Called by the status store (``runtime/status.py``) to skip a write identical to the last one it
made within its refresh (its rule 3). It calls nothing.

A 100,000-site fleet has about a million (resource, condition) rows, so the memory is compact:
one small dict of conditions per resource (the resource and condition strings are the ones the
first write brought, shared with the resource tally), and per row one integer packing the hash
of the row's fingerprint (its status, reason, message, error, commit and scope: 64 bits) with
the time of the write in milliseconds, instead of the fingerprint's strings and a tuple.

Two different fingerprints of one row with the same 64-bit hash would make a changed row look
unchanged until the refresh (at most ``refresh`` seconds late): a chance of about 2**-64 a
change.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

__all__ = ["WriteMemory"]

_HASH_BITS = 64
_HASH_MASK = (1 << _HASH_BITS) - 1


def _pack(fingerprint: Hashable, now: float) -> int:
    return (round(now * 1000) << _HASH_BITS) | (hash(fingerprint) & _HASH_MASK)


class WriteMemory:
    """The last write of every row: its fingerprint's hash and when, one integer a row."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        """Start empty (nothing is known to be written)."""
        self._rows: dict[str, dict[str, int]] = {}  # resource -> condition -> packed write

    def __len__(self) -> int:
        """How many rows are remembered."""
        return sum(len(conditions) for conditions in self._rows.values())

    def unchanged(
        self, resource: str, condition: str, fingerprint: Hashable, now: float, refresh: float
    ) -> bool:
        """True when the row's last write had this fingerprint less than ``refresh`` ago."""
        conditions = self._rows.get(resource)
        packed = None if conditions is None else conditions.get(condition)
        if packed is None:
            return False
        written_at = (packed >> _HASH_BITS) / 1000
        return (packed & _HASH_MASK) == (hash(fingerprint) & _HASH_MASK) and (
            now - written_at < refresh
        )

    def note(self, resource: str, condition: str, fingerprint: Hashable, now: float) -> None:
        """Remember that the row was written with ``fingerprint`` at ``now``."""
        conditions = self._rows.get(resource)
        if conditions is None:
            conditions = self._rows[resource] = {}
        conditions[condition] = _pack(fingerprint, now)

    def drop(self, resources: Iterable[str]) -> None:
        """Forget every row of ``resources``."""
        for resource in resources:
            self._rows.pop(resource, None)

    def clear(self) -> None:
        """Forget every row."""
        self._rows.clear()
