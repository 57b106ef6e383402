"""``reconciler.wiring.WriterWorld`` and the two knobs wiring reads (crash points, sandbox sleep).

Uses the session Cloudflare simulator (``cf`` of ``tests/conftest.py``) for the virtual sleep.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.plan import ActionKind
from reconciler.providers.ratelimit import Lane
from reconciler.runtime.checkpoints import CrashingCheckpoints
from reconciler.runtime.handler import no_checkpoints
from reconciler.wiring import (
    SANDBOX_CONTROL_ENV,
    Buckets,
    WriterWorld,
    load_checkpoints,
    load_settings,
    load_sleep,
)


def sandbox_settings(cf: Any, path: Path) -> dict[str, str]:
    return {
        "CLOUDFLARE_API_BASE": cf.base_url,
        "CLOUDFLARE_API_TOKEN": cf.token,
        "CLOUDFLARE_ACCOUNT_ID": cf.account_id,
        "CLOUDFLARE_ZONE_ID": cf.zone_id,
        "D1_SQLITE_PATH": str(path),
    }


def test_crash_points_are_read_from_the_environment_and_absent_means_no_checkpoints() -> None:
    assert load_checkpoints({}) is no_checkpoints
    assert isinstance(load_checkpoints({"RECONCILER_CRASH_AT": "*:3"}), CrashingCheckpoints)
    with pytest.raises(ValueError, match="name:N"):
        load_checkpoints({"RECONCILER_CRASH_AT": "publish"})


def test_without_a_sandbox_control_root_handlers_sleep_for_real() -> None:
    assert load_sleep({}) is asyncio.sleep


async def test_the_sandbox_sleep_advances_the_virtual_clock(cf: Any) -> None:
    sleep = load_sleep({SANDBOX_CONTROL_ENV: cf.control_url})
    before = cf.clock.now()
    await sleep(3600)
    assert cf.clock.now() - before >= 3600


async def test_the_writer_world_writes_in_the_change_lane_and_has_every_handler(
    cf: Any, tmp_path: Path
) -> None:
    settings = load_settings(sandbox_settings(cf, tmp_path / "d1.sqlite"))
    buckets = Buckets()
    async with WriterWorld(
        settings, buckets=buckets, checkpoints=no_checkpoints, create_database=True
    ) as writers:
        assert writers.cloudflare._api.lane is Lane.CHANGE  # the requests' default lane
        assert writers.cloudflare.bucket is buckets.get(
            "cloudflare", settings.cloudflare.token, settings.cloudflare.rate
        )
        assert set(writers.handlers()) == set(ActionKind)
        assert writers.stripe is None and writers.evolution is None
        assert writers.world.db is writers.database
        assert "sandbox-cf" not in repr(writers)


def test_a_writer_world_needs_cloudflare(tmp_path: Path) -> None:
    settings = load_settings({"D1_SQLITE_PATH": str(tmp_path / "d1.sqlite")})
    with pytest.raises(ValueError, match="apply needs Cloudflare"):
        WriterWorld(settings, create_database=True)


async def test_fencing_the_writer_world_wraps_the_writers_and_keeps_every_other_field(
    cf: Any, tmp_path: Path
) -> None:
    import dataclasses

    settings = load_settings(sandbox_settings(cf, tmp_path / "d1.sqlite"))
    async with WriterWorld(settings, checkpoints=no_checkpoints, create_database=True) as writers:
        sentinel = object()
        writers.world = dataclasses.replace(writers.world, variants=sentinel)  # type: ignore[arg-type]
        before = writers.world
        fenced_db = writers.fence(lambda: None)
        after = writers.world
        assert after.db is fenced_db and after.cloudflare is not before.cloudflare
        wrapped = {"cloudflare", "db", "evolution"}
        for field in dataclasses.fields(before):
            if field.name not in wrapped:  # the variant cache was dropped here once
                assert getattr(after, field.name) is getattr(before, field.name), field.name
