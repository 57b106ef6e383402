"""hostname_state: whether a custom hostname has failed or waits on validation, decided once.

Cloudflare's hostname and certificate statuses (contract §4.4, §4.5) read as the planner
(``core/plan_hostnames.py``), the conditions (``core/conditions_sites.py``) and the deadlines
(``core/deadlines.py``) need them; the failed sets are those ``core.observed.domain_status``
maps to ``failed``. Pure.
"""

from __future__ import annotations

from reconciler.core.observed import FAILED_HOSTNAME_STATUS, FAILED_SSL_STATUS, ObservedHostname

PENDING_STATUS = frozenset({"pending", "test_pending", "pending_provisioned"})
PENDING_SSL = frozenset({"initializing", "pending_validation", "pending_issuance"})


def hostname_failed(have: ObservedHostname) -> bool:
    """The hostname or its certificate failed or timed out (``domains`` status ``failed``)."""
    return have.status in FAILED_HOSTNAME_STATUS or (have.ssl_status or "") in FAILED_SSL_STATUS


def hostname_pending(have: ObservedHostname) -> bool:
    """The hostname or its certificate still waits on validation or issuance."""
    return have.status in PENDING_STATUS or (have.ssl_status or "") in PENDING_SSL
