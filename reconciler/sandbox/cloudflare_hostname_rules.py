"""What a custom hostname request may hold: Cloudflare's validation rules and the account policy.

Called by :class:`reconciler.sandbox.cloudflare_hostnames.HostnameStore` before it creates or
edits anything, so a refused request changes nothing. Codes and messages are those of
Cloudflare's status-codes page for custom hostnames (ROUTING.md §1): 1400 bad JSON, 1401
metadata not encodable, 1407 invalid, 1408 non-ASCII, 1409 reserved TLD, 1410 no registrable
domain, 1411 ``example.com/.net/.org``, 1412 metadata on a wildcard, 1415/1416 invalid origin;
1413, 1420 and 1421 (no metadata entitlement, no custom-origin entitlement, origin outside the
zone's DNS) are the sandbox's choices in the documented 1415-1421 range (docs/sandbox.md).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.cloudflare_common import ApiError

SSL_METHODS = ("http", "txt", "email")
LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
RESERVED_TLDS = ("test", "example", "invalid", "localhost")
PROHIBITED_SUFFIXES = ("example.com", "example.net", "example.org")

# Codes from contracts/cloudflare/CONTRACT.md §1.3.
BAD_METHOD = 1432
BAD_TYPE = 1433
METHOD_AND_TYPE = 1440
# From Cloudflare's status-codes page for custom hostnames (ROUTING.md §1).
BAD_JSON = 1400
METADATA_NOT_ENCODABLE = 1401
HOSTNAME_INVALID = 1407  # too long, an IP address, special characters, a leading/trailing "-"
HOSTNAME_NOT_ASCII = 1408
HOSTNAME_RESERVED_TLD = 1409  # test, example, invalid, localhost
HOSTNAME_UNPARSABLE = 1410  # no registrable domain (publicsuffix)
HOSTNAME_PROHIBITED = 1411  # example.com, example.net, example.org
BAD_ORIGIN = 1415
# Not on the status-codes page: the sandbox's choices inside the documented 1415-1421 range.
METADATA_NOT_ENTITLED = 1413
ORIGIN_NOT_ENTITLED = 1420
ORIGIN_NOT_IN_ZONE = 1421


@dataclass(slots=True)
class HostnamePolicy:
    """What the simulated account may ask for (ROUTING.md §1); an ordinary account by default.

    ``zone`` is the SaaS zone's name: a ``custom_origin_server`` must be a name of the zone that
    has a DNS record (or the zone's CNAME target / fallback origin), and only when
    ``custom_origin`` is entitled (and anywhere when ``origin_outside_zone``, the reading of
    third-party docs); ``custom_metadata`` only when ``custom_metadata`` is.
    """

    zone: str = ""
    custom_metadata: bool = False
    custom_origin: bool = False
    origin_outside_zone: bool = False
    refuse_reserved_tlds: bool = True


BAD_JSON_MESSAGE = "Unable to decode the JSON request body. Check your input and try again."
METADATA_MESSAGE = "Unable to encode the Custom Metadata as JSON. Check your input and try again."
INVALID_MESSAGE = (
    "Invalid custom hostname. Custom hostnames have to be smaller than 256 characters in "
    "length, cannot be IP addresses, cannot contain any special characters and cannot begin "
    "or end with a '-' character."
)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def valid_hostname(value: Any, refuse_reserved: bool = True) -> str:
    """The hostname lower-cased, or Cloudflare's 1407-1411 refusal (ROUTING.md §1)."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, HOSTNAME_INVALID, INVALID_MESSAGE)
    name = value.strip().rstrip(".").lower()
    if not name.isascii():
        raise ApiError(
            400,
            HOSTNAME_NOT_ASCII,
            "Custom hostnames with non-ASCII characters are not supported. Check your input "
            "and try again.",
        )
    if len(name) > 255 or _is_ip(name):
        raise ApiError(400, HOSTNAME_INVALID, INVALID_MESSAGE)
    labels = name.split(".")
    wildcard = labels[0] == "*"
    if not all(LABEL_RE.match(lb) for lb in labels[1 if wildcard else 0 :]):
        raise ApiError(400, HOSTNAME_INVALID, INVALID_MESSAGE)
    if refuse_reserved and labels[-1] in RESERVED_TLDS:
        raise ApiError(
            400,
            HOSTNAME_RESERVED_TLD,
            "Reserved top domain custom hostnames, such as 'test', 'example', 'invalid' or "
            "'localhost', is not supported. Check your input and try again.",
        )
    if len(labels) < 2 or (wildcard and len(labels) < 3):
        raise ApiError(
            400,
            HOSTNAME_UNPARSABLE,
            f"Unable to parse custom hostname - publicsuffix: cannot derive eTLD+1 for domain "
            f"{name}. Check your input and try again.",
        )
    if any(name == s or name.endswith("." + s) for s in PROHIBITED_SUFFIXES):
        raise ApiError(
            400,
            HOSTNAME_PROHIBITED,
            "Custom hostnames ending in example.com, example.net, or example.org are "
            "prohibited. Check your input and try again.",
        )
    return name


def valid_ssl(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, METHOD_AND_TYPE, "ssl must be an object with method and type.")
    if value and ("method" not in value or "type" not in value):
        raise ApiError(400, METHOD_AND_TYPE, "Both ssl.type and ssl.method are required.")
    ssl = dict(value) if value else {"method": "http", "type": "dv"}
    if ssl["method"] not in SSL_METHODS:
        raise ApiError(400, BAD_METHOD, "The validation method must be http, email or txt.")
    if ssl["type"] != "dv":
        raise ApiError(400, BAD_TYPE, "The certificate type must be dv.")
    if ssl.get("wildcard") and ssl["method"] == "http":
        raise ApiError(400, BAD_METHOD, "Wildcard hostnames cannot use HTTP validation.")
    return ssl


def check_optional(
    policy: HostnamePolicy,
    body: dict[str, Any],
    *,
    wildcard: bool,
    in_zone_dns: Callable[[str], bool],
) -> None:
    """Refuse ``custom_metadata``/``custom_origin_server`` the account may not have, or bad ones.

    ``in_zone_dns(name)`` says whether a name has a record (the origin must, in the zone).
    """
    """Refuse what the account is not entitled to, before anything changes."""
    meta = body.get("custom_metadata")
    if meta is not None:
        if not policy.custom_metadata:
            raise ApiError(
                403,
                METADATA_NOT_ENTITLED,
                "No custom metadata access has been allocated for this zone. "
                "Contact your account team to enable Custom Metadata.",
            )
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ApiError(400, METADATA_NOT_ENCODABLE, METADATA_MESSAGE)
        if wildcard:
            raise ApiError(
                400, 1412, "Custom metadata for wildcard custom hostnames is not supported."
            )
    origin = body.get("custom_origin_server")
    if origin is not None:
        if not isinstance(origin, str) or not origin.strip():
            raise ApiError(400, BAD_ORIGIN, "Invalid custom origin hostname.")
        if not policy.custom_origin:
            raise ApiError(
                403,
                ORIGIN_NOT_ENTITLED,
                "Custom origin servers are not enabled for this zone. "
                "Contact your account team for the Custom Origin Server entitlement.",
            )
        _check_origin(policy, origin, in_zone_dns)


def _check_origin(policy: HostnamePolicy, origin: str, in_zone_dns: Callable[[str], bool]) -> None:
    name = origin.strip().rstrip(".").lower()
    if not name.isascii():
        raise ApiError(
            400, 1416, "Custom origin hostnames with non-ASCII characters are not supported."
        )
    if _is_ip(name) or len(name) > 255:
        raise ApiError(400, BAD_ORIGIN, "Invalid custom origin hostname.")
    zone = policy.zone
    in_zone = bool(zone) and (name == zone or name.endswith("." + zone))
    has_record = in_zone_dns(name)
    if not (in_zone and has_record) and not policy.origin_outside_zone:
        raise ApiError(
            400,
            ORIGIN_NOT_IN_ZONE,
            f"The custom origin server {name} is not a hostname in this zone's DNS: it "
            "must have a proxied A, AAAA or CNAME record in the zone.",
        )
