"""hostname_dns: what a stuck or late hostname's DNS says, in the words of a plan's reasons.

Called by ``core/plan_hostnames.py`` and ``core/plan_hostname_levers.py``: the records a
customer must set (:func:`dns_instructions`), what the observer's DNS lookup found
(:func:`dns_finding`), whether that lookup found everything right (:func:`dns_is_right`), and
the reason of a hostname Stuck at its recreation cap (:func:`stuck_reason`), which blames the
customer's DNS only when the DNS check does not say it is right. Pure.
"""

from __future__ import annotations

from reconciler.core.desired import DesiredHostname
from reconciler.core.observed import ObservedHostname


def dns_is_right(want: DesiredHostname, have: ObservedHostname, target: str | None) -> bool:
    """True when a DNS check this pass found every record the hostname needs as expected."""
    if not have.dns_checked or target is None or have.dns_cname != target:
        return False
    if want.ssl_method == "txt" and have.txt_value:
        return have.txt_value in have.dns_txt
    return True


def stuck_reason(want: DesiredHostname, have: ObservedHostname, target: str | None) -> str:
    """What a hostname stuck at its recreation cap waits for, blaming only what is wrong."""
    head = (
        f"status {have.status}/{have.ssl_status} after {have.recreate_count} recreations "
        f"(max {want.max_recreates})"
    )
    if dns_is_right(want, have, target):
        errors = (
            f" (Cloudflare says: {'; '.join(have.verification_errors)})"
            if have.verification_errors
            else ""
        )
        return (
            f"{head}; the customer's DNS is right (DNS check: "
            f"{dns_finding(want, have, target)}), so Cloudflare has not validated it yet"
            f"{errors}: validation is re-triggered once per validation timeout; check "
            "Cloudflare's status page or contact its support, then "
            f"`reconciler clear-stuck Hostname/{want.hostname}` to recreate it"
        )
    return (
        f"{head}; the customer must point {want.hostname} at the SaaS target: "
        + dns_instructions(want, have, target)
    )


def dns_instructions(want: DesiredHostname, have: ObservedHostname, target: str | None) -> str:
    """The records the customer must set, and what a DNS check found (issue 5, item 4)."""
    errors = (
        f" (Cloudflare says: {'; '.join(have.verification_errors)})"
        if have.verification_errors
        else ""
    )
    expected = target or "the zone's SaaS target"
    records = f"a CNAME record for {want.hostname} to {expected}"
    if want.ssl_method == "txt":
        if have.txt_name and have.txt_value:
            records += f' and the TXT record {have.txt_name} = "{have.txt_value}"'
        else:
            records += (
                f" and the TXT record _cf-custom-hostname.{want.hostname} shown in the "
                "hostname's ownership verification"
            )
    finding = dns_finding(want, have, target)
    return records + errors + (f"; DNS check: {finding}" if finding else "")


def dns_finding(want: DesiredHostname, have: ObservedHostname, target: str | None) -> str:
    """What the observer's DNS lookup found, in words; ``""`` when DNS was not checked."""
    if not have.dns_checked:
        return ""
    host = want.hostname
    expected = target or "the zone's SaaS target"
    if have.dns_cname is None:
        found = [f"{host} has no CNAME (expected a CNAME to {expected})"]
    elif target is None:
        found = [f"{host}'s CNAME points to {have.dns_cname}; it must reach {expected}"]
    elif have.dns_cname != target:
        found = [f"{host}'s CNAME points to {have.dns_cname}, expected {target}"]
    else:
        found = [f"{host}'s CNAME points to {target} as expected"]
    if want.ssl_method == "txt" and have.txt_name and have.txt_value:
        name, value = have.txt_name, have.txt_value
        if value in have.dns_txt:
            found.append(f"TXT {name} holds the expected value")
        elif have.dns_txt:
            held = ", ".join(f'"{v}"' for v in have.dns_txt)
            found.append(f'TXT {name} holds {held}, expected "{value}"')
        else:
            found.append(f'TXT {name} is missing (expected "{value}")')
    return "; ".join(found)
