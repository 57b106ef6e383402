"""DNS_RESOLVER and DNS_CNAME_TARGET: read by settings.py, turned into a resolver by wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.providers.dns import SandboxResolver, SystemResolver
from reconciler.settings import Settings
from reconciler.wiring import ReadOnlyWorld, load_resolver

CONTROL = "http://127.0.0.1:9999/__sandbox"


def test_the_default_is_the_system_resolver_with_no_target() -> None:
    settings = Settings.from_env({})
    assert settings.dns.resolver == "system" and settings.dns.cname_target == ""
    assert isinstance(load_resolver(settings), SystemResolver)


def test_off_means_no_resolver() -> None:
    assert load_resolver(Settings.from_env({"DNS_RESOLVER": "off"})) is None


def test_sandbox_reads_the_control_root_and_the_target_is_canonical() -> None:
    settings = Settings.from_env(
        {
            "DNS_RESOLVER": "sandbox",
            "RECONCILER_SANDBOX_CONTROL": CONTROL + "/",
            "DNS_CNAME_TARGET": "Customers.Example.test.",
        }
    )
    assert settings.dns.sandbox_control == CONTROL
    assert settings.dns.cname_target == "customers.example.test"
    resolver = load_resolver(settings)
    assert isinstance(resolver, SandboxResolver) and CONTROL in repr(resolver)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DNS_RESOLVER": "google"}, "DNS_RESOLVER must be"),
        ({"DNS_RESOLVER": "sandbox"}, "needs RECONCILER_SANDBOX_CONTROL"),
        ({"DNS_TIMEOUT": "soon"}, "DNS_TIMEOUT must be a number"),
        ({"DNS_TIMEOUT": "0"}, "DNS_TIMEOUT must be positive"),
    ],
)
def test_bad_dns_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


async def test_the_read_only_world_hands_the_resolver_and_target_to_observe(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env(
        {
            "D1_SQLITE_PATH": str(tmp_path / "d1.sqlite"),
            "DNS_RESOLVER": "sandbox",
            "RECONCILER_SANDBOX_CONTROL": CONTROL,
            "DNS_CNAME_TARGET": "customers.example.test",
        }
    )
    async with ReadOnlyWorld(settings, create_database=True) as world:
        assert isinstance(world.clients.dns, SandboxResolver)
        assert world.clients.cname_target == "customers.example.test"
    off = Settings.from_env({"D1_SQLITE_PATH": str(tmp_path / "d1.sqlite"), "DNS_RESOLVER": "off"})
    async with ReadOnlyWorld(off, create_database=True) as world:
        assert world.clients.dns is None and world.clients.cname_target is None
