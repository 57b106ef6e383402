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

BLAKE3 comes from the ``blake3`` package (the reference Rust implementation's bindings);
``tests/build`` checks our use of it against the official test vectors. Hashes are memoised by
(SHA-256 of the bytes, extension), so an asset shared by many versions or sites is hashed once
per process.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import threading
from collections import OrderedDict

from blake3 import blake3


def blake3_digest(data: bytes) -> bytes:
    """The 32-byte BLAKE3 hash of ``data``."""
    return blake3(data).digest()


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
    value = blake3_digest(message).hex()[:32]
    with _memo_lock:
        _memo[key] = value
        while len(_memo) > _MEMO_LIMIT:
            _memo.popitem(last=False)
    return value
