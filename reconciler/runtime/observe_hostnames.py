"""observe_hostnames: custom hostnames as observed facts, joined with D1, and their DNS checks.

Called by ``runtime/observe.py`` with what the hostname listing returned and D1's ``domains``
rows: each hostname becomes an ``ObservedHostname`` (owned when our records say we created it,
``core/observed.py`` rule 3); rows a complete listing did not show are ``unlisted``; the stuck
or late hostnames ``core/observe_scope.hostnames_to_check`` names are looked up in DNS
(``observe`` rule 1), and a failed lookup leaves a hostname unchecked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from reconciler.core.observed import DomainRecord, ObservedHostname
from reconciler.errors import ProviderError
from reconciler.providers.cloudflare_models import CustomHostname
from reconciler.providers.dns import Resolver
from reconciler.runtime.observe_clients import ObserveLimits
from reconciler.runtime.records import DomainRow
from reconciler.spec.models import normalize_hostname

__all__ = ["canonical", "check_dns", "observed_hostnames", "provider_time", "unlisted"]


def canonical(name: str) -> str:
    """A hostname as the specs spell it (IDNA, lowercase, no final dot), leniently."""
    try:
        return normalize_hostname(name)
    except ValueError:
        return name.strip().rstrip(".").lower()


def provider_time(text: str) -> float:
    """A provider's ISO 8601 time as epoch seconds; 0.0 when absent or unreadable."""
    if not text:
        return 0.0
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _owner(
    item: CustomHostname, row: DomainRow | None, creating: Mapping[str, tuple[str, str]]
) -> tuple[str, str | None] | None:
    """(site, tenant) when our records say we created ``item`` (``core/observed.py`` rule 3).

    The ``domains`` row recording this very id; else, unless the row says we deleted that
    hostname, an unfinished create of it in the journal; else our marker (entitled accounts).
    """
    name = canonical(item.hostname)
    if row is not None and row.custom_hostname_id == item.id:
        return row.site, row.tenant
    if name in creating and (row is None or row.status != "deleted"):
        return creating[name]
    marker = item.owner
    if marker is not None and marker.site:
        return marker.site, marker.tenant or None
    return None


def observed_hostnames(
    listed: Iterable[CustomHostname],
    domains: Mapping[str, DomainRow],
    lookups: Sequence[str] | None,
    creating: Mapping[str, tuple[str, str]],
) -> dict[str, ObservedHostname]:
    """Custom hostnames as observed facts, joined with their D1 ``domains`` rows."""
    wanted = set(lookups) if lookups is not None else None
    result: dict[str, ObservedHostname] = {}
    for item in listed:
        name = canonical(item.hostname)
        if wanted is not None and name not in wanted:
            continue  # a filtered list may match more loosely than the exact name
        row = domains.get(name)
        owner = _owner(item, row, creating)
        created = provider_time(item.created_at)
        policy = item.custom_metadata.get("deletion-policy") or item.custom_metadata.get(
            "deletion_policy"
        )
        since = row.status_since if row is not None and row.status_since is not None else created
        dcv = item.dcv_txt
        result[name] = ObservedHostname(
            id=item.id,
            hostname=name,
            status=item.status,
            ssl_status=item.ssl_status or None,
            ssl_method=item.ssl_method or None,
            origin=item.custom_origin_server,
            owned=owner is not None,
            site=owner[0] if owner is not None else None,
            tenant=owner[1] if owner is not None else None,
            deletion_policy=policy if policy in ("retain", "delete") else None,
            created_at=created,
            status_since=since,
            recreate_count=row.recreate_count if row is not None else 0,
            verification_errors=tuple(item.verification_errors) + item.ssl_validation_errors,
            recorded_status=row.status if row is not None else None,
            recorded_ssl_status=row.ssl_status if row is not None else None,
            recorded_id=row.custom_hostname_id if row is not None else None,
            recorded_origin=row.origin if row is not None else None,
            recorded_site=row.site if row is not None else None,
            txt_name=canonical(item.ownership_txt_name) if item.ownership_txt_name else None,
            txt_value=item.ownership_txt_value,
            dcv_txt_name=dcv.txt_name if dcv is not None else None,
            dcv_txt_value=dcv.txt_value if dcv is not None else None,
            recorded_dcv_txt_value=row.dcv_txt_value if row is not None else None,
        )
    return result


def unlisted(
    domains: Mapping[str, DomainRow],
    hostnames: Mapping[str, ObservedHostname],
    lookups: Sequence[str] | None,
) -> dict[str, DomainRecord]:
    """``domains`` rows not marked deleted whose hostname a successful listing did not show.

    A scoped observation looked up ``lookups`` only: a row of another name was not covered.
    """
    covered = set(lookups) if lookups is not None else None
    return {
        name: DomainRecord(
            hostname=name,
            site=row.site,
            tenant=row.tenant,
            status=row.status,
            custom_hostname_id=row.custom_hostname_id,
            origin=row.origin,
            recreate_count=row.recreate_count,
        )
        for name, row in sorted(domains.items())
        if row.status is not None
        and row.status != "deleted"
        and name not in hostnames
        and (covered is None or name in covered)
    }


async def check_dns(
    resolver: Resolver,
    names: Sequence[str],
    hostnames: dict[str, ObservedHostname],
    limits: ObserveLimits,
    say: Callable[[str], None],
) -> None:
    """Look up each name's CNAME (and TXT for txt validation); record what was found."""
    gate = asyncio.Semaphore(max(limits.dns_concurrency, 1))
    failures: list[str] = []

    async def one(name: str) -> None:
        have = hostnames[name]
        async with gate:
            try:
                cname = await resolver.cname(name)
                txt: list[str] = []
                if have.ssl_method == "txt" and have.txt_name:
                    txt = await resolver.txt(have.txt_name)
            except ProviderError as exc:
                failures.append(f"{name}: {exc}")
                return
        hostnames[name] = replace(
            have, dns_checked=True, dns_cname=cname, dns_txt=tuple(sorted(txt))
        )

    try:
        async with asyncio.timeout(limits.dns):
            await asyncio.gather(*(one(name) for name in names))
    except TimeoutError:
        failures.append(f"no answer within {limits.dns:g} s")
    checked = sum(1 for name in names if hostnames[name].dns_checked)
    say(
        f"dns: {checked} of {len(names)} stuck or late hostnames looked up"
        + (f" ({'; '.join(failures[:3])})" if failures else "")
    )
