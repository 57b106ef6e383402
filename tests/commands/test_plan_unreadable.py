"""``reconciler plan``'s unreadable lines: one per provider, named by the core's one table."""

from __future__ import annotations

from reconciler.commands.plan import unreadable_lines
from reconciler.core.observed import Gap, GapReason, Observed, Source
from reconciler.errors import TransientError
from reconciler.providers.evolution import PROVIDER as EVOLUTION
from reconciler.settings import EvolutionSettings, Settings


def test_the_gateway_line_names_whatsapp_once_and_workers_have_a_provider() -> None:
    # The Evolution adapter's errors now say "whatsapp: ..." (they said "evolution: ...", which
    # the line kept, unstripped), and an unreadable Workers reading names cloudflare (the
    # command's own table lacked it and raised KeyError).
    gateway = TransientError(EVOLUTION, "connectionState: timed out")
    observed = Observed(
        at=0.0,
        incomplete={
            Source.WHATSAPP: Gap(GapReason.FAILED, str(gateway)),
            Source.WORKERS: Gap(GapReason.TIMED_OUT, "cloudflare: no answer"),
        },
    )
    settings = Settings(evolution=EvolutionSettings(base_url="http://gateway.test"))
    lines = unreadable_lines(observed, settings)
    assert "whatsapp could not be read at http://gateway.test: connectionState: timed out" in lines
    assert any(line.startswith("cloudflare could not be read at ") for line in lines)
    assert len(lines) == 2
