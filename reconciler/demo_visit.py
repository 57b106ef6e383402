"""The visitor's view for the demo: a page fetched through the dispatch Worker, in words.

Used by :mod:`reconciler.demo` at each chapter. A request with the customer's hostname in
``Host`` goes to the sandbox's edge (the zone's Worker running in workerd,
:mod:`reconciler.sandbox.workerd`), which reads the routing table the reconciler wrote and
serves the site's Pages deployment, the suspension page or not-found. :func:`describe` reduces
the answer to what a person would notice: the status, the Worker's route and, for a site, the
version of the page (the seeded content says ``This is version N of <site>.``). A deleted
hostname no longer reaches the zone at all: the edge answers as Cloudflare's error 1001 does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import httpx

__all__ = ["Edge", "Visit", "describe"]

_VERSION = re.compile(r"This is version (\d+) of ([a-z0-9-]+)\.")


class Edge(Protocol):
    """``reconciler.sandbox.workerd.WorkerdHost``'s visitor request."""

    def visit(self, hostname: str, path: str = "/", *, timeout: float = 30.0) -> httpx.Response:
        """A visitor's GET of ``https://<hostname><path>``."""
        ...


@dataclass(frozen=True, slots=True)
class Visit:
    """What a visitor got: ``kind`` is ``site``, ``suspended``, ``not-found`` (the Worker found
    no routing entry), ``gone`` (the hostname no longer reaches the zone: Cloudflare's error
    1001) or ``other``."""

    hostname: str
    status: int
    kind: str
    site: str | None = None
    version: int | None = None

    def line(self) -> str:
        """``GET https://www.acmebakery.com/ -> 200, acme-home version 12 (via the Worker)``."""
        if self.kind == "site":
            what = f"the page of {self.site} version {self.version}"
        elif self.kind == "suspended":
            what = "the suspension page"
        elif self.kind == "not-found":
            what = "not found (no routing entry)"
        elif self.kind == "gone":
            what = "not found (no longer on the zone: Cloudflare error 1001)"
        else:
            what = "an unexpected answer"
        via = "the edge, before any Worker" if self.kind == "gone" else "through the Worker"
        return f"GET https://{self.hostname}/ -> {self.status}, {what} ({via})"


def describe(hostname: str, answer: httpx.Response) -> Visit:
    """The visitor's view of one answer of the dispatch Worker."""
    route = answer.headers.get("x-sitebuilder-route", "")
    text = answer.text
    if answer.status_code == 200 and route.startswith("serve:"):
        found = _VERSION.search(text)
        if found is not None:
            return Visit(hostname, 200, "site", site=found.group(2), version=int(found.group(1)))
    if answer.status_code == 503 and route == "suspend":
        return Visit(hostname, 503, "suspended")
    if answer.status_code == 404 and route == "none":
        return Visit(hostname, 404, "not-found")
    if answer.status_code == 530 and answer.headers.get("x-sandbox-edge") == "not-served":
        return Visit(hostname, 530, "gone")
    return Visit(hostname, answer.status_code, "other")


def visit(edge: Edge, hostname: str) -> Visit:
    """Fetch ``https://<hostname>/`` through ``edge`` and describe it."""
    return describe(hostname, edge.visit(hostname))
