"""Shared pieces of the Cloudflare simulator: API errors, routes, timestamps, ids, the envelope.

Used by the simulator's stores (:mod:`reconciler.sandbox.cloudflare_pages`,
:mod:`reconciler.sandbox.cloudflare_hostnames`, :mod:`reconciler.sandbox.cloudflare_d1`) and its
HTTP layer (:mod:`reconciler.sandbox.cloudflare`). Shapes follow
``contracts/cloudflare/CONTRACT.md`` §1: the ``{success, errors, messages, result}`` envelope,
integer error codes, ISO 8601 timestamps with microseconds and ``Z``.
"""

from __future__ import annotations

import email.parser
import email.policy
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from reconciler.sandbox.pipeline import Call, Part, Refusal

H = TypeVar("H")
T = TypeVar("T")

PLACEHOLDERS: Mapping[str, tuple[str, str]] = {
    "account_id": ("account_id", "[^/]+"),
    "zone_id": ("zone_id", "[^/]+"),
    "project_name": ("project", "[^/]+"),
    "deployment_id": ("deployment", "[^/]+"),
    "action": ("action", "check-missing|upload|upsert-hashes"),
    "custom_hostname_id": ("hostname", "[^/]+"),
    "database_id": ("database", "[^/]+"),
    "namespace_id": ("namespace", "[^/]+"),
    "key_name": ("key", ".+"),
    "script_name": ("script", "[^/]+"),
    "version_id": ("version", "[^/]+"),
    "route_id": ("route", "[^/]+"),
}
"""Each path template placeholder: the name the handlers read it by, and what it matches."""


def api_routes(table: Mapping[str, Mapping[str, H]]) -> tuple[tuple[str, str, str, H], ...]:
    """``(method, path regex, path template, handler)`` rows for the simulator's router.

    ``table`` maps each path template, in matching order, to its handler per method. The
    regex is the template with each ``{placeholder}`` as its named group
    (:data:`PLACEHOLDERS`), so a path is written once, as the contract names it.
    """

    def group(found: re.Match[str]) -> str:
        name, pattern = PLACEHOLDERS[found.group(1)]
        return f"(?P<{name}>{pattern})"

    return tuple(
        (method, re.sub(r"\{(\w+)\}", group, template), template, handler)
        for template, methods in table.items()
        for method, handler in methods.items()
    )


class ApiError(Refusal):
    """A failure answered with the contract's failure envelope."""

    def __init__(self, status: int, code: int, message: str, *more: tuple[int, str]) -> None:
        """``status`` is the HTTP status; ``code``/``message`` the first entry of ``errors``."""
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.errors: list[dict[str, Any]] = [{"code": code, "message": message}]
        self.errors.extend({"code": c, "message": m} for c, m in more)

    def body(self) -> dict[str, Any]:
        """The failure envelope (CONTRACT.md §1.1)."""
        return failure(self.errors)


def no_route(path: str) -> ApiError:
    """The contract's answer for a path no route serves (400, codes 7003 and 7000)."""
    return ApiError(
        400,
        7003,
        f"Could not route to {path}, perhaps your object identifier is invalid?",
        (7000, "No route for that URI"),
    )


def first_or_refuse(items: Iterable[T], matches: Callable[[T], bool], error: ApiError) -> T:
    """The first of ``items`` that ``matches``; ``error`` is raised when none does."""
    for item in items:
        if matches(item):
            return item
    raise error


def require(value: str | None, expected: str, call: Call) -> None:
    """Refuse (as an unknown route) a path whose account or zone id is not the simulated one."""
    if value != expected:
        raise no_route(call.path)


def success(result: Any, result_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The success envelope; ``result_info`` only for list endpoints."""
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The failure envelope with ``result: null``."""
    return {"success": False, "errors": errors, "messages": [], "result": None}


def iso(epoch: float) -> str:
    """Format epoch seconds as ``2021-03-09T00:55:03.923456Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IdSource:
    """Deterministic ids from a seeded random source (same seed, same ids)."""

    def __init__(self, seed: int) -> None:
        """Seed the source."""
        self._rng = random.Random(seed)

    def hex32(self) -> str:
        """A 32-hex-digit Cloudflare identifier."""
        return f"{self._rng.getrandbits(128):032x}"

    def uuid(self) -> str:
        """A version-4 UUID string (36 characters)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def page_params(
    query: dict[str, str],
    *,
    default_per_page: int,
    min_per_page: int,
    max_per_page: int,
    clamp: bool,
) -> tuple[int, int]:
    """Parse ``page``/``per_page``; out-of-range values raise 400 unless ``clamp``.

    Returns:
        ``(page, per_page)``, page 1-based.
    """
    try:
        page = int(float(query.get("page", "1")))
        per_page = int(float(query.get("per_page", str(default_per_page))))
    except ValueError as exc:
        raise ApiError(400, 1001, "page and per_page must be numbers") from exc
    if page < 1:
        raise ApiError(400, 1001, "page must be at least 1")
    if clamp:
        per_page = min(max(per_page, min_per_page), max_per_page)
    elif not min_per_page <= per_page <= max_per_page:
        raise ApiError(400, 1001, f"per_page must be between {min_per_page} and {max_per_page}")
    return page, per_page


def one_page(
    items: Sequence[T], page: int, per_page: int, *, total_pages: bool, total: int | None = None
) -> tuple[list[T], dict[str, Any]]:
    """Page ``page`` of ``items`` and its ``result_info`` (``total``: every item by default)."""
    chunk = list(items[(page - 1) * per_page : page * per_page])
    info = result_info(
        page=page,
        per_page=per_page,
        count=len(chunk),
        total=len(items) if total is None else total,
        total_pages=total_pages,
    )
    return chunk, info


def result_info(
    *, page: int, per_page: int, count: int, total: int, total_pages: bool
) -> dict[str, Any]:
    """``result_info`` per CONTRACT.md §1.1 (``total_pages`` only where the schema has it)."""
    info: dict[str, Any] = {
        "page": page,
        "per_page": per_page,
        "count": count,
        "total_count": total,
    }
    if total_pages:
        info["total_pages"] = (total + per_page - 1) // per_page if per_page else 0
    return info


def parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], list[str], tuple[Part, ...]]:
    """Split a multipart body into text fields, the names of file parts, and every part."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    form: dict[str, str] = {}
    files: list[str] = []
    parts: list[Part] = []
    if not message.is_multipart():
        return form, files, ()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        parts.append(Part(name, filename, part.get_content_type(), data))
        if filename is not None:
            files.append(name)
        else:
            form[name] = data.decode("utf-8", errors="replace")
    return form, files, tuple(parts)
