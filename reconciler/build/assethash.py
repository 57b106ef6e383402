"""Cloudflare Pages asset hashes: the keys of a Direct Upload manifest.

``build/site.py`` calls :func:`pages_asset_hash` for every file it produces; the publisher sends
the resulting manifest (``{"/path": hash}``) with the deployment and uploads missing files keyed
by the same hash. Nothing here does I/O.

The hash is wrangler's, not a plain SHA-256 (contract ``cloudflare/CONTRACT.md`` §3.4, from
wrangler's ``pages/hash.ts``)::

    blake3(base64(file_bytes) + extension_without_dot).hex()[:32]

Readings taken, each matching wrangler's Node.js code:

- ``base64`` is Node's ``Buffer.toString("base64")``: the standard alphabet, with ``=`` padding.
- the extension is ``path.extname(file).substring(1)``: ``""`` for ``_headers``, for dot-files
  such as ``.well-known`` and for a name ending in a dot.
- the string is hashed as UTF-8 (blake3-wasm's ``hash(string)``); asset keys are ASCII anyway.
- UNCONFIRMED: whether the Pages server re-verifies a hash against the uploaded bytes. It treats
  the hash as an opaque key as far as the contract knows, so a wrong hash would not fail an
  upload; it would defeat deduplication of unchanged files across deployments instead.

BLAKE3 is not in the standard library. The optional ``blake3`` package (Rust bindings) is used
when it is installed; otherwise a pure-Python implementation of the BLAKE3 specification runs
(roughly 1 MB of input per second), checked against the official test vectors in
``tests/build``. Hashes are memoised by (SHA-256 of the bytes, extension), so an asset shared
by many versions or sites is hashed once per process.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import posixpath
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import cache

_MASK = 0xFFFFFFFF
_IV = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
_CHUNK_START = 1
_CHUNK_END = 2
_PARENT = 4
_ROOT = 8
_BLOCK_LEN = 64
_CHUNK_LEN = 1024
_UNPACK_BLOCK = struct.Struct("<16I").unpack_from
_PACK_DIGEST = struct.Struct("<8I").pack


def _compress(
    cv: tuple[int, ...], m: tuple[int, ...], counter: int, block_len: int, flags: int
) -> tuple[int, ...]:
    """BLAKE3's compression function; returns the 8-word output ``v[i] ^ v[i + 8]``.

    Written out by hand (the G function inlined over local variables): this is the hot loop of
    the pure-Python fallback.
    """
    v0, v1, v2, v3, v4, v5, v6, v7 = cv
    v8, v9, v10, v11 = _IV[0], _IV[1], _IV[2], _IV[3]
    v12 = counter & _MASK
    v13 = (counter >> 32) & _MASK
    v14 = block_len
    v15 = flags
    mask = _MASK
    m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15 = m
    for round_index in range(7):
        if round_index:
            # BLAKE3's message permutation (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14,
            # 15, 8), applied between rounds by rebinding locals.
            m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15 = (
                m2,
                m6,
                m3,
                m10,
                m7,
                m0,
                m4,
                m13,
                m1,
                m11,
                m12,
                m5,
                m9,
                m14,
                m15,
                m8,
            )
        # Columns.
        v0 = (v0 + v4 + m0) & mask
        v12 ^= v0
        v12 = ((v12 >> 16) | (v12 << 16)) & mask
        v8 = (v8 + v12) & mask
        v4 ^= v8
        v4 = ((v4 >> 12) | (v4 << 20)) & mask
        v0 = (v0 + v4 + m1) & mask
        v12 ^= v0
        v12 = ((v12 >> 8) | (v12 << 24)) & mask
        v8 = (v8 + v12) & mask
        v4 ^= v8
        v4 = ((v4 >> 7) | (v4 << 25)) & mask

        v1 = (v1 + v5 + m2) & mask
        v13 ^= v1
        v13 = ((v13 >> 16) | (v13 << 16)) & mask
        v9 = (v9 + v13) & mask
        v5 ^= v9
        v5 = ((v5 >> 12) | (v5 << 20)) & mask
        v1 = (v1 + v5 + m3) & mask
        v13 ^= v1
        v13 = ((v13 >> 8) | (v13 << 24)) & mask
        v9 = (v9 + v13) & mask
        v5 ^= v9
        v5 = ((v5 >> 7) | (v5 << 25)) & mask

        v2 = (v2 + v6 + m4) & mask
        v14 ^= v2
        v14 = ((v14 >> 16) | (v14 << 16)) & mask
        v10 = (v10 + v14) & mask
        v6 ^= v10
        v6 = ((v6 >> 12) | (v6 << 20)) & mask
        v2 = (v2 + v6 + m5) & mask
        v14 ^= v2
        v14 = ((v14 >> 8) | (v14 << 24)) & mask
        v10 = (v10 + v14) & mask
        v6 ^= v10
        v6 = ((v6 >> 7) | (v6 << 25)) & mask

        v3 = (v3 + v7 + m6) & mask
        v15 ^= v3
        v15 = ((v15 >> 16) | (v15 << 16)) & mask
        v11 = (v11 + v15) & mask
        v7 ^= v11
        v7 = ((v7 >> 12) | (v7 << 20)) & mask
        v3 = (v3 + v7 + m7) & mask
        v15 ^= v3
        v15 = ((v15 >> 8) | (v15 << 24)) & mask
        v11 = (v11 + v15) & mask
        v7 ^= v11
        v7 = ((v7 >> 7) | (v7 << 25)) & mask

        # Diagonals.
        v0 = (v0 + v5 + m8) & mask
        v15 ^= v0
        v15 = ((v15 >> 16) | (v15 << 16)) & mask
        v10 = (v10 + v15) & mask
        v5 ^= v10
        v5 = ((v5 >> 12) | (v5 << 20)) & mask
        v0 = (v0 + v5 + m9) & mask
        v15 ^= v0
        v15 = ((v15 >> 8) | (v15 << 24)) & mask
        v10 = (v10 + v15) & mask
        v5 ^= v10
        v5 = ((v5 >> 7) | (v5 << 25)) & mask

        v1 = (v1 + v6 + m10) & mask
        v12 ^= v1
        v12 = ((v12 >> 16) | (v12 << 16)) & mask
        v11 = (v11 + v12) & mask
        v6 ^= v11
        v6 = ((v6 >> 12) | (v6 << 20)) & mask
        v1 = (v1 + v6 + m11) & mask
        v12 ^= v1
        v12 = ((v12 >> 8) | (v12 << 24)) & mask
        v11 = (v11 + v12) & mask
        v6 ^= v11
        v6 = ((v6 >> 7) | (v6 << 25)) & mask

        v2 = (v2 + v7 + m12) & mask
        v13 ^= v2
        v13 = ((v13 >> 16) | (v13 << 16)) & mask
        v8 = (v8 + v13) & mask
        v7 ^= v8
        v7 = ((v7 >> 12) | (v7 << 20)) & mask
        v2 = (v2 + v7 + m13) & mask
        v13 ^= v2
        v13 = ((v13 >> 8) | (v13 << 24)) & mask
        v8 = (v8 + v13) & mask
        v7 ^= v8
        v7 = ((v7 >> 7) | (v7 << 25)) & mask

        v3 = (v3 + v4 + m14) & mask
        v14 ^= v3
        v14 = ((v14 >> 16) | (v14 << 16)) & mask
        v9 = (v9 + v14) & mask
        v4 ^= v9
        v4 = ((v4 >> 12) | (v4 << 20)) & mask
        v3 = (v3 + v4 + m15) & mask
        v14 ^= v3
        v14 = ((v14 >> 8) | (v14 << 24)) & mask
        v9 = (v9 + v14) & mask
        v4 ^= v9
        v4 = ((v4 >> 7) | (v4 << 25)) & mask
    return (
        v0 ^ v8,
        v1 ^ v9,
        v2 ^ v10,
        v3 ^ v11,
        v4 ^ v12,
        v5 ^ v13,
        v6 ^ v14,
        v7 ^ v15,
    )


def _block_words(data: bytes, start: int, end: int) -> tuple[int, ...]:
    """The 16 little-endian words of one block, zero-padded when shorter than 64 bytes."""
    if end - start == _BLOCK_LEN:
        return _UNPACK_BLOCK(data, start)
    return _UNPACK_BLOCK(data[start:end].ljust(_BLOCK_LEN, b"\0"))


def _chunk_last_block(
    data: bytes, start: int, end: int, chunk_index: int
) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
    """Compress every block of one chunk but the last; return the last block's inputs.

    Returns ``(cv, words, block_len, flags)`` of the final block, so the caller can compress it
    as an ordinary chunk end or as the root.
    """
    cv: tuple[int, ...] = _IV
    flags = _CHUNK_START
    pos = start
    while end - pos > _BLOCK_LEN:
        cv = _compress(cv, _UNPACK_BLOCK(data, pos), chunk_index, _BLOCK_LEN, flags)
        flags = 0
        pos += _BLOCK_LEN
    return cv, _block_words(data, pos, end), end - pos, flags | _CHUNK_END


def blake3_digest(data: bytes) -> bytes:
    """The 32-byte BLAKE3 hash (default, unkeyed mode) of ``data``, in pure Python.

    Follows the reference implementation: chunks of 1 KiB, chaining values merged on a stack
    into a left-balanced binary tree, the last node compressed with the ROOT flag.
    """
    total = len(data)
    chunks = max(1, -(-total // _CHUNK_LEN))
    stack: list[tuple[int, ...]] = []
    for index in range(chunks - 1):
        cv, words, block_len, flags = _chunk_last_block(
            data, index * _CHUNK_LEN, (index + 1) * _CHUNK_LEN, index
        )
        node = _compress(cv, words, index, block_len, flags)
        merged = index + 1
        while not merged & 1:
            node = _compress(_IV, stack.pop() + node, 0, _BLOCK_LEN, _PARENT)
            merged >>= 1
        stack.append(node)
    last = chunks - 1
    cv, words, block_len, flags = _chunk_last_block(data, last * _CHUNK_LEN, total, last)
    counter = last
    while stack:
        node = _compress(cv, words, counter, block_len, flags)
        cv, words, counter, block_len, flags = _IV, stack.pop() + node, 0, _BLOCK_LEN, _PARENT
    # The root is always compressed with output block counter 0.
    return _PACK_DIGEST(*_compress(cv, words, 0, block_len, flags | _ROOT))


@cache
def _digest_function() -> Callable[[bytes], bytes]:
    """The fastest BLAKE3 available: the ``blake3`` package if installed, else pure Python."""
    try:
        module = importlib.import_module("blake3")
    except ImportError:
        return blake3_digest
    factory = module.blake3

    def native(data: bytes) -> bytes:
        digest: bytes = factory(data).digest()
        return digest

    return native


_MEMO_LIMIT = 8192
_memo: OrderedDict[tuple[bytes, str], str] = OrderedDict()
_memo_lock = threading.Lock()


def file_extension(path: str) -> str:
    """Node's ``path.extname(path).substring(1)``: the extension without its dot, or ``""``."""
    name = posixpath.basename(path)
    stripped = name.lstrip(".")
    dot = stripped.rfind(".")
    if dot <= 0:
        return ""
    return stripped[dot + 1 :]


def pages_asset_hash(data: bytes, path: str) -> str:
    """The Pages Direct Upload hash of one file: 32 hex characters.

    Args:
        data: the file's bytes.
        path: its path in the deployment (only the extension matters).

    Returns:
        ``blake3(base64(data) + extension).hex()[:32]``, exactly as wrangler computes it.
    """
    extension = file_extension(path)
    key = (hashlib.sha256(data).digest(), extension)
    with _memo_lock:
        known = _memo.get(key)
        if known is not None:
            _memo.move_to_end(key)
            return known
    message = base64.b64encode(data) + extension.encode("utf-8")
    value = _digest_function()(message).hex()[:32]
    with _memo_lock:
        _memo[key] = value
        while len(_memo) > _MEMO_LIMIT:
            _memo.popitem(last=False)
    return value
