"""plan_hostname_records: the hostname area's D1 ``domains`` rows, and what the zone shows.

Pure; part of ``core/plan_hostnames.py``, kept apart by job: rule 7 of ``core.plan`` (copy what
Cloudflare shows into a declared hostname's ``domains`` row; mark ``deleted`` the rows of
hostnames gone from the zone that no spec keeps) and :func:`hostname_before`, the ``before``
every hostname action carries (the hostname as the zone shows it).
"""

from __future__ import annotations

from reconciler.core.desired import DesiredHostname, DesiredSite
from reconciler.core.observed import ObservedHostname, Source, domain_status
from reconciler.core.plan import ActionKind, Cause, JsonValue
from reconciler.core.plan_builder import Blocker, PlanBuilder

__all__ = ["hostname_before", "hostname_blocker", "plan_deleted_records", "plan_hostname_record"]


def plan_deleted_records(builder: PlanBuilder, claimed: set[str]) -> None:
    """Rule 7: mark ``deleted`` the rows of hostnames gone from the zone that no spec keeps.

    Only rows that record a custom hostname id: a row without one never named a hostname
    in the zone (the app may write a row before the reconciler creates the hostname).
    """
    scope = builder.observed.scope
    for name, row in sorted(builder.observed.unlisted_domains.items()):
        if name in claimed or (scope is not None and row.site not in scope):
            continue  # declared: created again, and that create records the row
        if not row.custom_hostname_id:
            continue
        recorded = f"{row.status}, id {row.custom_hostname_id}"
        builder.add(
            ActionKind.RECORD_HOSTNAME,
            f"Hostname/{name}",
            tenant=row.tenant,
            site=row.site,
            before={"status": row.status, "id": row.custom_hostname_id, "origin": row.origin},
            after={"hostname": name, "site": row.site, "status": "deleted"},
            reason=(
                f"gone from the zone and in no spec, but D1 domains still records it "
                f"({recorded}): mark it deleted"
            ),
            source=None,
            cause=Cause.DRIFT,
        )


def _recorded_differs(have: ObservedHostname, status: str, site: str) -> str | None:
    """What the ``domains`` row records that the zone does not show; None when they agree."""
    if have.recorded_status is None:
        return "no row"
    differs = []
    if status != have.recorded_status:
        # a certificate stage alone is not worth a write (the next record has it)
        differs.append(f"{have.recorded_status} (certificate {have.recorded_ssl_status or 'none'})")
    if have.recorded_id != have.id:
        differs.append(f"id {have.recorded_id or 'none'}")
    if have.recorded_origin != have.origin:
        differs.append(f"origin {have.recorded_origin or 'none'}")
    if have.recorded_site != site:
        differs.append(f"site {have.recorded_site or 'none'}")
    if have.dcv_txt_value and have.recorded_dcv_txt_value != have.dcv_txt_value:
        differs.append(f"DCV TXT {have.recorded_dcv_txt_value or 'none'}")
    return ", ".join(differs) or None


def plan_hostname_record(
    builder: PlanBuilder, site: DesiredSite, want: DesiredHostname, have: ObservedHostname | None
) -> None:
    """Rule 7: copy what Cloudflare shows (``have``) into the hostname's D1 ``domains`` row."""
    if (
        have is None
        or not have.owned
        or have.site != site.name
        or builder.incomplete(Source.D1) is not None
    ):
        return
    status = domain_status(have.status, have.ssl_status, suspended=want.suspended)
    if want.hostname in builder.route_records:
        status = have.recorded_status or status  # the write_routes action records it
    recorded = _recorded_differs(have, status, site.name)
    if recorded is None:
        return
    shown = f"{status} (status {have.status}, certificate {have.ssl_status or 'none'})"
    if recorded == "no row" or have.recorded_id != have.id:
        shown += f", id {have.id}"
    if recorded == "no row" or have.recorded_origin != have.origin:
        shown += f", origin {have.origin or 'none'}"
    hostname_blocker(builder, site, want).add(
        ActionKind.RECORD_HOSTNAME,
        before={
            "status": have.recorded_status,
            "ssl_status": have.recorded_ssl_status,
            "id": have.recorded_id,
            "origin": have.recorded_origin,
        },
        after={
            "hostname": want.hostname,
            "site": site.name,
            "tenant": site.tenant,
            "project": site.pages_project,
            "id": have.id,
            "origin": have.origin,
            "ssl_method": have.ssl_method or want.ssl_method,
            "status": status,
            "ssl_status": have.ssl_status,
            "verification_errors": list[JsonValue](have.verification_errors),
            "verification_token": have.txt_value,
            **_dcv(have),
        },
        reason=(
            f"D1 domains records {recorded}; Cloudflare shows {shown}: record it, so the "
            "domains table reads what Cloudflare shows"
        ),
        cause=Cause.DRIFT,
    )


def hostname_blocker(builder: PlanBuilder, site: DesiredSite, want: DesiredHostname) -> Blocker:
    """The :class:`Blocker` of a declared hostname, sourced at its line of the site's spec."""
    target = f"Hostname/{want.hostname}"
    return builder.site_blocker(site, target, f"spec.domains[{want.position}].hostname")


def _dcv(have: ObservedHostname) -> dict[str, JsonValue]:
    """The DCV TXT record to store in ``domains`` (only when Cloudflare shows one)."""
    if not have.dcv_txt_value:
        return {}
    return {"dcv_txt_name": have.dcv_txt_name, "dcv_txt_value": have.dcv_txt_value}


def hostname_before(have: ObservedHostname) -> dict[str, JsonValue]:
    return {
        "id": have.id,
        "status": have.status,
        "ssl_status": have.ssl_status,
        "ssl_method": have.ssl_method,
        "site": have.site,
    }
