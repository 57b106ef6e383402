"""DNS lookups: what the customer's DNS says about a custom hostname that will not validate.

``runtime/observe.py`` asks a :class:`Resolver` about hostnames that are stuck or past their
validation timeout (a few per pass), so the plan's Stuck condition can say precisely which
record is missing or wrong (issue 5, item 4). ``wiring`` picks the implementation from the
``DNS_RESOLVER`` setting (``settings.DnsSettings``):

- :class:`SystemResolver` (``system``, the default): the public DNS, through ``dnspython``'s
  asyncio resolver and the host's resolver configuration, with short timeouts;
- :class:`SandboxResolver` (``sandbox``): the sandbox DNS behind the Cloudflare simulator's
  control endpoint (``GET /__sandbox/dns/{name}``), the records the simulator validates with;
- ``off``: no resolver; the Stuck condition then gives the generic instructions.

Both answer the same two questions and translate every failure into the error tree: a name
with no such record is an answer (``None`` or ``[]``), not an error; a timeout, an unreachable
server or a broken configuration is a :class:`~reconciler.errors.TransientError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver
import httpx

from reconciler.errors import TransientError

__all__ = ["Resolver", "SandboxResolver", "SystemResolver", "canonical_name"]

PROVIDER = "dns"


def canonical_name(name: str) -> str:
    """A DNS name as compared here: lowercase, without the trailing dot."""
    return name.strip().rstrip(".").lower()


class Resolver(Protocol):
    """The two lookups the observer makes."""

    async def cname(self, name: str) -> str | None:
        """The target of ``name``'s CNAME record (one hop, canonical); None when it has none.

        Raises:
            TransientError: the lookup could not be made (timeout, no server reachable).
        """
        ...

    async def txt(self, name: str) -> list[str]:
        """The values of ``name``'s TXT records (each record's strings joined); ``[]`` if none.

        Raises:
            TransientError: the lookup could not be made (timeout, no server reachable).
        """
        ...


class SystemResolver:
    """Public DNS through ``dnspython`` (``dns.asyncresolver``), with a short time limit."""

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
    ) -> None:
        """Prepare the resolver; the host's configuration is read on the first lookup.

        Args:
            timeout: seconds one lookup may take in all (every server and retry).
            nameservers: servers to ask instead of the host's ``/etc/resolv.conf``.
            port: their port (tests run a server on a loopback port).
        """
        self._timeout = timeout
        self._nameservers = list(nameservers) if nameservers is not None else None
        self._port = port
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=self._nameservers is None)
            except dns.exception.DNSException as exc:
                raise TransientError(PROVIDER, f"no DNS resolver configured: {exc}") from exc
            if self._nameservers is not None:
                resolver.nameservers = list(self._nameservers)
            resolver.port = self._port
            resolver.timeout = self._timeout
            resolver.lifetime = self._timeout
            self._resolver = resolver
        return self._resolver

    async def _answer(
        self, name: str, rdtype: dns.rdatatype.RdataType
    ) -> dns.resolver.Answer | None:
        try:
            return await self._get().resolve(
                canonical_name(name), rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return None
        except dns.exception.Timeout as exc:
            raise TransientError(
                PROVIDER, f"no DNS answer for {name} within {self._timeout:g}s"
            ) from exc
        except dns.exception.DNSException as exc:
            raise TransientError(PROVIDER, f"DNS lookup of {name} failed: {exc}") from exc

    async def cname(self, name: str) -> str | None:
        """The CNAME target of ``name`` (see :class:`Resolver`)."""
        answer = await self._answer(name, dns.rdatatype.CNAME)
        if answer is None or answer.rrset is None:
            return None
        for record in answer.rrset:
            target = getattr(record, "target", None)
            if target is not None:
                return canonical_name(str(target))
        return None

    async def txt(self, name: str) -> list[str]:
        """The TXT values of ``name`` (see :class:`Resolver`)."""
        answer = await self._answer(name, dns.rdatatype.TXT)
        if answer is None or answer.rrset is None:
            return []
        values: list[str] = []
        for record in answer.rrset:
            strings = getattr(record, "strings", ())
            values.append(b"".join(strings).decode("utf-8", errors="replace"))
        return sorted(values)

    def __repr__(self) -> str:
        """Where it asks (never anything secret)."""
        servers = self._nameservers if self._nameservers is not None else "system"
        return f"SystemResolver(nameservers={servers!r}, timeout={self._timeout:g})"


class SandboxResolver:
    """The sandbox DNS, through the Cloudflare simulator's control endpoint."""

    def __init__(self, control_url: str, *, timeout: float = 10.0) -> None:
        """Ask ``control_url`` (``http://127.0.0.1:<port>/__sandbox``)."""
        self._control = control_url.rstrip("/")
        self._timeout = timeout

    async def _record(self, name: str) -> dict[str, object] | None:
        url = f"{self._control}/dns/{canonical_name(name)}"
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                answer = await http.get(url)
        except httpx.HTTPError as exc:
            raise TransientError(PROVIDER, f"sandbox DNS unreachable: {exc}") from exc
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise TransientError(PROVIDER, f"sandbox DNS answered HTTP {answer.status_code}")
        body = answer.json()
        return body if isinstance(body, dict) else None

    async def cname(self, name: str) -> str | None:
        """The CNAME target the sandbox DNS holds for ``name``."""
        record = await self._record(name)
        target = record.get("cname") if record is not None else None
        return canonical_name(target) if isinstance(target, str) and target else None

    async def txt(self, name: str) -> list[str]:
        """The TXT values the sandbox DNS holds for ``name``."""
        record = await self._record(name)
        values = record.get("txt") if record is not None else None
        return sorted(str(v) for v in values) if isinstance(values, list) else []

    def __repr__(self) -> str:
        """Where it asks."""
        return f"SandboxResolver({self._control!r})"
