"""The DNS lookup port: dnspython against a loopback DNS server, and the sandbox DNS.

``SystemResolver`` is pointed at a tiny UDP DNS server on 127.0.0.1 (a free port) that answers
from a dict, so real DNS messages go over a real socket without leaving the machine; a server
that never answers shows the short time limit becoming a ``TransientError``.
``SandboxResolver`` reads the Cloudflare simulator's DNS through its control endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from reconciler.errors import TransientError
from reconciler.providers.dns import SandboxResolver, SystemResolver

Zone = Mapping[str, Mapping[str, list[str]]]  # name -> rdtype text -> record texts

ZONE: Zone = {
    "www.acme.test": {"CNAME": ["customers.saas.test."]},
    "apex.acme.test": {"A": ["192.0.2.1"]},
    "_cf-custom-hostname.apex.acme.test": {"TXT": ['"token-1"', '"part-" "two"']},
}


class _DnsServer(asyncio.DatagramProtocol):
    """Answers each query from ``zone``; NXDOMAIN for unknown names; silent when told."""

    def __init__(self, zone: Zone, *, silent: bool = False) -> None:
        self.zone = zone
        self.silent = silent
        self.transport: asyncio.DatagramTransport | None = None
        self.queries: list[tuple[str, str]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if self.silent or self.transport is None:
            return
        response = dns.message.make_response(query)
        records = self.zone.get(name)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif rdtype in records:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, "IN", rdtype, records[rdtype])
            )
        self.transport.sendto(response.to_wire(), addr)


async def _serve(zone: Zone, *, silent: bool = False) -> tuple[_DnsServer, int]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _DnsServer(zone, silent=silent), local_addr=("127.0.0.1", 0)
    )
    return protocol, transport.get_extra_info("sockname")[1]


@pytest.fixture
async def resolver() -> AsyncIterator[tuple[SystemResolver, _DnsServer]]:
    server, port = await _serve(ZONE)
    try:
        yield SystemResolver(nameservers=["127.0.0.1"], port=port, timeout=10.0), server
    finally:
        assert server.transport is not None
        server.transport.close()


async def test_a_cname_is_read_as_its_canonical_target(
    resolver: tuple[SystemResolver, _DnsServer],
) -> None:
    system, server = resolver
    assert await system.cname("WWW.acme.test.") == "customers.saas.test"
    assert server.queries == [("www.acme.test", "CNAME")]


async def test_a_name_without_a_cname_or_unknown_answers_none(
    resolver: tuple[SystemResolver, _DnsServer],
) -> None:
    system, _ = resolver
    assert await system.cname("apex.acme.test") is None
    assert await system.cname("nowhere.acme.test") is None


async def test_txt_values_join_each_records_strings(
    resolver: tuple[SystemResolver, _DnsServer],
) -> None:
    system, _ = resolver
    assert await system.txt("_cf-custom-hostname.apex.acme.test") == ["part-two", "token-1"]
    assert await system.txt("www.acme.test") == []
    assert await system.txt("nowhere.acme.test") == []


async def test_a_server_that_never_answers_is_a_transient_error() -> None:
    server, port = await _serve(ZONE, silent=True)
    try:
        system = SystemResolver(nameservers=["127.0.0.1"], port=port, timeout=0.3)
        with pytest.raises(TransientError, match=r"no DNS answer for www\.acme\.test"):
            await system.cname("www.acme.test")
    finally:
        assert server.transport is not None
        server.transport.close()
    assert server.queries, "the resolver never asked"


async def test_the_sandbox_resolver_reads_the_simulators_dns(cf: Any) -> None:
    cf.sim.dns.put("www.acme.test", cname="Customers.Sitebuilder-Sandbox.test.")
    cf.sim.dns.put("_cf-custom-hostname.acme.test", txt=["b-token", "a-token"])
    sandbox = SandboxResolver(cf.control_url)
    assert await sandbox.cname("www.acme.test") == "customers.sitebuilder-sandbox.test"
    assert await sandbox.cname("unpointed.acme.test") is None
    assert await sandbox.txt("_cf-custom-hostname.acme.test") == ["a-token", "b-token"]
    assert await sandbox.txt("www.acme.test") == []


async def test_an_unreachable_sandbox_dns_is_a_transient_error() -> None:
    server, port = await _serve(ZONE)  # a UDP port: nothing listens there over TCP
    assert server.transport is not None
    server.transport.close()
    sandbox = SandboxResolver(f"http://127.0.0.1:{port}/__sandbox", timeout=5.0)
    with pytest.raises(TransientError, match="sandbox DNS unreachable"):
        await sandbox.cname("www.acme.test")
