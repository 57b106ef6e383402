"""The R2 adapter against a real S3 server (moto in server mode, ``sandbox/r2.py``).

Reads of originals (present, missing, replaced behind the snapshot's back), the variant
cache (a second build encodes and writes nothing), and the errors a build must tell apart:
transient (R2 unreachable, 503 SlowDown) is a retry, never a build failure; a missing object
or a hash mismatch is a build failure naming the key.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from reconciler.build.content import snapshot_from_data
from reconciler.build.errors import BuildError, BuildFailure
from reconciler.build.media import forget_optimised
from reconciler.build.site import build_site
from reconciler.errors import TransientError
from reconciler.providers.r2 import VARIANT_PREFIX, R2Store
from reconciler.sandbox.photos import make_photo
from reconciler.sandbox.r2 import LocalR2
from reconciler.settings import R2Settings, Secret

HERO = make_photo(120, 80, seed=11)
PHOTO = make_photo(64, 64, fmt="png", seed=12)


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalR2]:
    with LocalR2(bucket="media-test") as server:
        yield server


@pytest.fixture(scope="module")
def shared(moto: LocalR2) -> R2Store:
    return R2Store(moto.settings())


@pytest.fixture
def r2(moto: LocalR2, shared: R2Store) -> R2Store:
    moto.reset()
    forget_optimised()
    store = shared
    store.writes = store.reads = 0
    store.put("site/hero.jpg", HERO, content_type="image/jpeg")
    store.put("site/photo.png", PHOTO, content_type="image/png")
    return store


def _entry(key: str, data: bytes, content_type: str) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    return {"key": key, "content_type": content_type, "bytes": len(data), "sha256": sha}


def snapshot() -> Any:
    return snapshot_from_data(
        {
            "format": 1,
            "pages": [
                {
                    "path": "/",
                    "title": "Home",
                    "blocks": [
                        {"type": "hero", "heading": "Hi", "image": "site/hero.jpg"},
                        {"type": "image", "asset": "site/photo.png", "alt": "A photo"},
                    ],
                }
            ],
            "assets": [
                _entry("site/hero.jpg", HERO, "image/jpeg"),
                _entry("site/photo.png", PHOTO, "image/png"),
            ],
        }
    )


def build(store: R2Store) -> Any:
    return build_site(snapshot(), site="s", version=1, assets=store, variants=store)


def test_objects_round_trip_and_a_missing_key_reads_as_none(r2: R2Store) -> None:
    assert r2.get("site/hero.jpg") == HERO
    assert r2.get("site/nope.jpg") is None


def test_a_build_reads_originals_from_r2_and_caches_variants_next_to_them(r2: R2Store) -> None:
    first = build(r2)
    assert first.images_encoded == 2 and first.images_cached == 0
    sha = hashlib.sha256(HERO).hexdigest()
    assert r2.get(f"{VARIANT_PREFIX}{sha}/") is None  # no directory objects, only files
    index = r2.get_variant(next(iter(_index_names(r2, sha))))
    assert index is not None and b'"variants"' in index


def _index_names(store: R2Store, sha: str) -> list[str]:
    from reconciler.build.media import EncoderSettings

    return [f"{sha}/{EncoderSettings().digest()}/index.json"]


def test_a_second_build_encodes_nothing_and_writes_nothing(r2: R2Store) -> None:
    first = build(r2)
    writes = r2.writes
    forget_optimised()  # as in a new process: only R2 remembers
    second = build(r2)
    assert second.images_encoded == 0 and second.images_cached == 2
    assert r2.writes == writes
    assert second.files == first.files and second.content_hash == first.content_hash


def test_a_missing_object_is_a_build_failure_naming_the_key(r2: R2Store) -> None:
    r2.delete("site/photo.png")
    with pytest.raises(BuildError) as caught:
        build(r2)
    assert caught.value.reason is BuildFailure.MISSING_ASSET
    assert caught.value.message == ("missing asset: 'site/photo.png' not found in the asset store")
    assert r2.writes == 2  # the two originals put by the fixture: nothing encoded, nothing cached


def test_an_object_replaced_behind_the_snapshot_is_a_hash_mismatch(r2: R2Store) -> None:
    other = make_photo(120, 80, seed=99)
    assert len(other) != len(HERO) or other != HERO
    r2.put("site/hero.jpg", other[: len(HERO)].ljust(len(HERO), b"\0"), content_type="image/jpeg")
    with pytest.raises(BuildError) as caught:
        build(r2)
    assert caught.value.reason is BuildFailure.CORRUPT_ASSET
    assert caught.value.message == (
        "corrupt asset 'site/hero.jpg': its bytes do not match the snapshot's sha256"
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_r2_is_transient_not_a_build_failure(moto: LocalR2) -> None:
    settings = replace(moto.settings(), endpoint=f"http://127.0.0.1:{_closed_port()}")
    store = R2Store(settings, attempts=1)
    with pytest.raises(TransientError) as caught:
        build(store)
    assert caught.value.provider == "r2" and caught.value.not_applied


class _SlowDown(http.server.BaseHTTPRequestHandler):
    """Answers every request the way S3 and R2 answer when throttling: 503 SlowDown."""

    def do_GET(self) -> None:
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>"
        )
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_throttled_read_is_transient() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = R2Settings(
            endpoint=f"http://127.0.0.1:{server.server_address[1]}",
            bucket="b",
            access_key_id=Secret("k"),
            secret_access_key=Secret("s"),
            region="us-east-1",
        )
        with pytest.raises(TransientError) as caught:
            R2Store(settings, attempts=1).get("site/hero.jpg")
        assert caught.value.status == 503
        assert "SlowDown" in str(caught.value)
    finally:
        server.shutdown()
        server.server_close()


def test_the_store_never_shows_its_keys(moto: LocalR2) -> None:
    store = R2Store(moto.settings())
    assert moto.secret_access_key not in repr(store)
    assert moto.secret_access_key not in repr(moto) and moto.access_key_id not in repr(moto)
    assert moto.secret_access_key not in repr(moto.settings())
