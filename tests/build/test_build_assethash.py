"""The Pages asset hash: BLAKE3 checked against official vectors, composed like wrangler's."""

from __future__ import annotations

import base64

import pytest

from reconciler.build.assethash import blake3_digest, file_extension, pages_asset_hash

# First 32 bytes of the "hash" outputs in BLAKE3's official test_vectors.json: the input is
# bytes 0, 1, ..., 250, 0, 1, ... of the given length. The lengths cover one block, one chunk,
# chunk boundaries and several tree shapes.
VECTORS = {
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    1023: "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
    1024: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
    1025: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
    2048: "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
    2049: "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030",
    3072: "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2",
    3073: "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
    4096: "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
    4097: "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995",
    5121: "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff",
    7169: "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817",
}


def _input(length: int) -> bytes:
    return bytes(i % 251 for i in range(length))


@pytest.mark.parametrize(("length", "expected"), sorted(VECTORS.items()))
def test_blake3_matches_the_official_test_vectors(length: int, expected: str) -> None:
    assert blake3_digest(_input(length)).hex() == expected


@pytest.mark.parametrize(
    ("path", "extension"),
    [
        ("index.html", "html"),
        ("assets/site.css", "css"),
        ("assets/media/img/photo.min.jpg", "jpg"),
        ("_headers", ""),
        (".well-known", ""),
        (".hidden.txt", "txt"),
        ("archive.", ""),
        ("dir.d/file", ""),
        ("a..b", "b"),
    ],
)
def test_file_extension_follows_node_path_extname(path: str, extension: str) -> None:
    assert file_extension(path) == extension


def test_the_pages_hash_is_blake3_of_base64_and_extension_cut_to_32_hex() -> None:
    data = b"<h1>test</h1>\n"
    message = base64.b64encode(data) + b"html"
    assert message == b"PGgxPnRlc3Q8L2gxPgo=html"
    expected = blake3_digest(message).hex()[:32]
    assert pages_asset_hash(data, "index.html") == expected
    assert len(expected) == 32


def test_the_same_bytes_under_another_extension_hash_differently() -> None:
    data = b"body{}"
    assert pages_asset_hash(data, "a.css") != pages_asset_hash(data, "a.txt")
    assert pages_asset_hash(data, "a.css") == pages_asset_hash(data, "other/b.css")
