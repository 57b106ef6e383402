"""Workers KV of the Cloudflare simulator: namespaces, keys, values and bulk operations.

Called by :mod:`reconciler.sandbox.cloudflare` (its lock held) for
``/accounts/{account_id}/storage/kv/namespaces…``. Shapes follow the official SDK's types
(``cloudflare/types/kv/…``: ``Namespace``, ``Key``, ``KeyBulkUpdateResponse``, the bulk get
results) and the limits of ``contracts/cloudflare/ROUTING.md`` §3: keys at most 512 bytes,
metadata at most 1,024 bytes serialized, values at most 25 MiB, at most 10,000 pairs per bulk
write or delete (and the whole request under 100 MB), 100 keys per bulk get,
``expiration_ttl`` at least 60 seconds.

Codes: 10009 key not found, 10013 namespace not found, 10014 duplicate title, 10041 a binding's
namespace missing are Cloudflare's (seen in wrangler output); the limit codes are the sandbox's
choice (docs/sandbox.md). Every write bumps the namespace's ``version``: the Worker host
(:mod:`reconciler.sandbox.workerd_host`) copies a namespace into workerd when its version moves.
Expired keys vanish lazily, measured on the virtual clock.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.cloudflare_common import (
    ApiError,
    IdSource,
    api_routes,
    one_page,
    page_params,
    require,
    success,
)
from reconciler.sandbox.pipeline import Call, Outcome

if TYPE_CHECKING:
    from reconciler.sandbox.cloudflare import CloudflareSim

MAX_KEY_BYTES = 512
MAX_METADATA_BYTES = 1024
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_BULK_PAIRS = 10_000
MAX_BULK_GET = 100
MAX_BULK_BYTES = 100 * 1000 * 1000
MIN_TTL = 60
LIST_DEFAULT_LIMIT = 1000
LIST_MIN_LIMIT = 10

KEY_NOT_FOUND = 10009
NAMESPACE_NOT_FOUND = 10013
DUPLICATE_TITLE = 10014
KEY_TOO_LONG = 10016  # sandbox's choice
BAD_REQUEST = 10026  # sandbox's choice: malformed body
METADATA_TOO_LARGE = 10027  # sandbox's choice
VALUE_TOO_LARGE = 10028  # sandbox's choice
TOO_MANY_PAIRS = 10029  # sandbox's choice
BAD_EXPIRATION = 10032  # sandbox's choice


_VERSIONS = itertools.count(1)
"""Namespace versions never repeat in a process, not even across simulator resets, so a Worker
host that copied a version never mistakes a fresh namespace for the one it copied."""


@dataclass(slots=True)
class Entry:
    """One stored value with its metadata and expiry (epoch seconds)."""

    value: bytes
    metadata: Any = None
    expiration: float | None = None


@dataclass(slots=True)
class Namespace:
    """One KV namespace; ``version`` grows with every write or delete."""

    id: str
    title: str
    entries: dict[str, Entry] = field(default_factory=dict)
    version: int = 0

    def as_json(self) -> dict[str, Any]:
        """The SDK's ``Namespace``."""
        return {"id": self.id, "title": self.title, "supports_url_encoding": True}

    def live(self, now: float) -> dict[str, Entry]:
        """Entries not expired at ``now`` (expired ones are dropped: a change, so a new version)."""
        gone = [
            k for k, e in self.entries.items() if e.expiration is not None and e.expiration <= now
        ]
        for key in gone:
            del self.entries[key]
        if gone:
            self.version = next(_VERSIONS)
        return self.entries


class KVStore:
    """Every KV namespace of the simulated account."""

    def __init__(self, ids: IdSource) -> None:
        """Start with no namespaces."""
        self._ids = ids
        self.namespaces: dict[str, Namespace] = {}

    def create(self, title: Any) -> Namespace:
        """A new namespace titled ``title`` (10014 when the title is taken)."""
        if not isinstance(title, str) or not title.strip() or len(title) > 512:
            raise ApiError(400, BAD_REQUEST, "A namespace title (1 to 512 characters) is required.")
        if any(ns.title == title for ns in self.namespaces.values()):
            raise ApiError(
                400, DUPLICATE_TITLE, "a namespace with this account ID and title already exists"
            )
        namespace = Namespace(id=self._ids.hex32(), title=title, version=next(_VERSIONS))
        self.namespaces[namespace.id] = namespace
        return namespace

    def get(self, namespace_id: str) -> Namespace:
        """One namespace or 404 10013."""
        namespace = self.namespaces.get(namespace_id)
        if namespace is None:
            raise ApiError(404, NAMESPACE_NOT_FOUND, "namespace not found")
        return namespace

    def put(self, namespace: Namespace, key: str, entry: Entry) -> None:
        """Store one entry (limits checked by the caller)."""
        namespace.entries[key] = entry
        touch(namespace)

    def export(self, namespace: Namespace, now: float) -> dict[str, Any]:
        """Every live entry as text, with the version (what the Worker host copies)."""
        return {
            "id": namespace.id,
            "title": namespace.title,
            "version": namespace.version,
            "entries": {
                key: {
                    "value": entry.value.decode("utf-8", errors="replace"),
                    "metadata": entry.metadata,
                    "expiration": entry.expiration,
                }
                for key, entry in sorted(namespace.live(now).items())
            },
        }


def touch(namespace: Namespace) -> None:
    """Give ``namespace`` a new version after a write or delete."""
    namespace.version = next(_VERSIONS)


# ---- validation -----------------------------------------------------------------------------


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ApiError(400, BAD_REQUEST, "A key name is required.")
    if len(key.encode("utf-8", errors="surrogatepass")) > MAX_KEY_BYTES:
        raise ApiError(
            414, KEY_TOO_LONG, f"key name exceeds the maximum of {MAX_KEY_BYTES} bytes: {key[:40]}…"
        )
    if key in (".", ".."):
        raise ApiError(400, BAD_REQUEST, "Illegal key name: '.' and '..' are not allowed.")
    return key


def _check_metadata(metadata: Any) -> Any:
    if metadata is None:
        return None
    size = len(json.dumps(metadata, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ApiError(
            413,
            METADATA_TOO_LARGE,
            f"metadata is {size} bytes; the maximum is {MAX_METADATA_BYTES} bytes",
        )
    return metadata


def _check_value(value: bytes) -> bytes:
    if len(value) > MAX_VALUE_BYTES:
        raise ApiError(
            413, VALUE_TOO_LARGE, f"value exceeds the maximum of {MAX_VALUE_BYTES} bytes"
        )
    return value


def _expiry(expiration: Any, ttl: Any, now: float) -> float | None:
    """Absolute expiry from ``expiration_ttl`` (wins) or ``expiration``; None for no expiry."""
    if ttl not in (None, ""):
        try:
            seconds = float(ttl)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, BAD_EXPIRATION, "expiration_ttl must be a number") from exc
        if seconds < MIN_TTL:
            raise ApiError(
                400, BAD_EXPIRATION, f"expiration_ttl must be at least {MIN_TTL} seconds"
            )
        return now + seconds
    if expiration not in (None, ""):
        try:
            at = float(expiration)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, BAD_EXPIRATION, "expiration must be a number") from exc
        if at < now + MIN_TTL:
            raise ApiError(
                400, BAD_EXPIRATION, f"expiration must be at least {MIN_TTL} seconds in the future"
            )
        return at
    return None


def _bulk_entry(item: Any, now: float) -> tuple[str, Entry]:
    if not isinstance(item, dict) or not isinstance(item.get("value"), str):
        raise ApiError(400, BAD_REQUEST, "Each pair needs a string key and a string value.")
    key = _check_key(item.get("key"))
    raw = item["value"]
    if item.get("base64") is True:
        try:
            value = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, BAD_REQUEST, f"value of {key} is not valid base64") from exc
    else:
        value = raw.encode("utf-8", errors="surrogatepass")
    entry = Entry(
        value=_check_value(value),
        metadata=_check_metadata(item.get("metadata")),
        expiration=_expiry(item.get("expiration"), item.get("expiration_ttl"), now),
    )
    return key, entry


def _key_list(body: Any, limit: int, what: str) -> list[str]:
    if not isinstance(body, list) or not all(isinstance(k, str) for k in body):
        raise ApiError(400, BAD_REQUEST, f"The body of {what} must be an array of key names.")
    if len(body) > limit:
        raise ApiError(
            413, TOO_MANY_PAIRS, f"{what} takes at most {limit} keys per request; got {len(body)}"
        )
    return [_check_key(k) for k in body]


# ---- handlers -------------------------------------------------------------------------------


def _namespace(sim: CloudflareSim, call: Call) -> Namespace:
    require(call.params.get("account_id"), sim.config.account_id, call)
    store: KVStore = sim.kv
    return store.get(call.params["namespace"])


def list_namespaces(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/storage/kv/namespaces`` (``page``, ``per_page`` 5–100, ``order``, ``direction``)."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    page, per_page = page_params(
        call.query, default_per_page=20, min_per_page=5, max_per_page=100, clamp=False
    )
    items = list(sim.kv.namespaces.values())
    if call.query.get("order") in ("id", "title"):
        items.sort(key=lambda ns: getattr(ns, call.query["order"]))
    if call.query.get("direction") == "desc":
        items.reverse()
    chunk, info = one_page(items, page, per_page, total_pages=True)
    return Outcome(200, success([ns.as_json() for ns in chunk], info))


def create_namespace(sim: CloudflareSim, call: Call) -> Outcome:
    """``POST …/storage/kv/namespaces`` with ``{"title": …}``."""
    require(call.params.get("account_id"), sim.config.account_id, call)
    body = call.json if isinstance(call.json, dict) else {}
    return Outcome(200, success(sim.kv.create(body.get("title")).as_json()))


def get_namespace(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/namespaces/{namespace_id}``."""
    return Outcome(200, success(_namespace(sim, call).as_json()))


def delete_namespace(sim: CloudflareSim, call: Call) -> Outcome:
    """``DELETE …/namespaces/{namespace_id}``."""
    namespace = _namespace(sim, call)
    del sim.kv.namespaces[namespace.id]
    return Outcome(200, success({}))


def list_keys(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/keys`` with ``prefix``, ``limit`` (10–1000) and an opaque ``cursor``."""
    namespace = _namespace(sim, call)
    try:
        limit = int(float(call.query.get("limit", str(LIST_DEFAULT_LIMIT))))
    except ValueError as exc:
        raise ApiError(400, BAD_REQUEST, "limit must be a number") from exc
    if not LIST_MIN_LIMIT <= limit <= LIST_DEFAULT_LIMIT:
        raise ApiError(
            400, BAD_REQUEST, f"limit must be between {LIST_MIN_LIMIT} and {LIST_DEFAULT_LIMIT}"
        )
    prefix = call.query.get("prefix", "")
    names = sorted(k for k in namespace.live(sim.clock.now()) if k.startswith(prefix))
    start = 0
    cursor = call.query.get("cursor", "")
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor.encode()).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, BAD_REQUEST, "Invalid cursor.") from exc
        start = next((i for i, name in enumerate(names) if name > after), len(names))
    chunk = names[start : start + limit]
    more = start + limit < len(names)
    next_cursor = base64.urlsafe_b64encode(chunk[-1].encode()).decode() if more and chunk else ""
    keys = []
    for name in chunk:
        entry = namespace.entries[name]
        item: dict[str, Any] = {"name": name}
        if entry.expiration is not None:
            item["expiration"] = entry.expiration
        if entry.metadata is not None:
            item["metadata"] = entry.metadata
        keys.append(item)
    info = {"count": len(keys), "cursor": next_cursor}
    return Outcome(200, success(keys, info))


def bulk_write(sim: CloudflareSim, call: Call) -> Outcome:
    """``PUT …/bulk``: up to 10,000 ``{key, value, base64?, expiration?, expiration_ttl?,
    metadata?}``; all pairs are checked before any is written."""
    namespace = _namespace(sim, call)
    if len(call.body) > MAX_BULK_BYTES:
        raise ApiError(
            413, TOO_MANY_PAIRS, f"bulk requests must be under {MAX_BULK_BYTES} bytes in total"
        )
    body = call.json
    if not isinstance(body, list):
        raise ApiError(400, BAD_REQUEST, "The body must be an array of key-value pairs.")
    if len(body) > MAX_BULK_PAIRS:
        raise ApiError(
            413,
            TOO_MANY_PAIRS,
            f"bulk writes take at most {MAX_BULK_PAIRS} pairs per request; got {len(body)}",
        )
    now = sim.clock.now()
    pairs = [_bulk_entry(item, now) for item in body]
    for key, entry in pairs:
        namespace.entries[key] = entry
    touch(namespace)
    return Outcome(200, success({"successful_key_count": len(pairs), "unsuccessful_keys": []}))


def bulk_delete(sim: CloudflareSim, call: Call) -> Outcome:
    """``POST …/bulk/delete`` with an array of up to 10,000 key names (absent ones are fine)."""
    namespace = _namespace(sim, call)
    keys = _key_list(call.json, MAX_BULK_PAIRS, "bulk delete")
    for key in keys:
        namespace.entries.pop(key, None)
    touch(namespace)
    return Outcome(200, success({"successful_key_count": len(keys), "unsuccessful_keys": []}))


def bulk_get(sim: CloudflareSim, call: Call) -> Outcome:
    """``POST …/bulk/get`` with ``{keys: [...≤100], type?: text|json, withMetadata?}``.

    A key that does not exist is left out of ``values``, or ``null`` with metadata: the SDK's
    two result types (which of them Cloudflare uses for a plain get is unconfirmed; a client
    should read absent and null alike)."""
    namespace = _namespace(sim, call)
    body = call.json if isinstance(call.json, dict) else {}
    keys = _key_list(body.get("keys"), MAX_BULK_GET, "bulk get")
    kind = body.get("type", "text")
    if kind not in ("text", "json"):
        raise ApiError(400, BAD_REQUEST, "type must be text or json")
    with_metadata = body.get("withMetadata", body.get("with_metadata")) is True
    live = namespace.live(sim.clock.now())
    values: dict[str, Any] = {}
    for key in keys:
        entry = live.get(key)
        if entry is None:
            if with_metadata:  # the SDK types a missing key as null only with metadata
                values[key] = None
            continue
        text = entry.value.decode("utf-8", errors="replace")
        value: Any = text
        if kind == "json":
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ApiError(400, BAD_REQUEST, f"the value of {key} is not JSON") from exc
        if with_metadata:
            item: dict[str, Any] = {"value": value, "metadata": entry.metadata}
            if entry.expiration is not None:
                item["expiration"] = entry.expiration
            values[key] = item
        else:
            values[key] = value
    return Outcome(200, success({"values": values}))


def _key_param(call: Call) -> str:
    """The key from the path (already percent-decoded once, as ``supports_url_encoding``)."""
    return _check_key(call.params["key"])


def put_value(sim: CloudflareSim, call: Call) -> Outcome:
    """``PUT …/values/{key}``: a raw body, or multipart ``value`` + JSON ``metadata`` parts;
    ``expiration``/``expiration_ttl`` in the query."""
    namespace = _namespace(sim, call)
    key = _key_param(call)
    metadata: Any = None
    if call.form is not None:
        value_part = next((p for p in call.parts if p.name == "value"), None)
        if value_part is None:
            raise ApiError(400, BAD_REQUEST, "A multipart write needs a 'value' part.")
        value = value_part.data
        if "metadata" in call.form:
            try:
                metadata = json.loads(call.form["metadata"])
            except ValueError as exc:
                raise ApiError(400, BAD_REQUEST, "metadata must be JSON") from exc
    else:
        value = call.body
    now = sim.clock.now()
    entry = Entry(
        value=_check_value(value),
        metadata=_check_metadata(metadata),
        expiration=_expiry(call.query.get("expiration"), call.query.get("expiration_ttl"), now),
    )
    sim.kv.put(namespace, key, entry)
    return Outcome(200, success({}))


def _live_entry(sim: CloudflareSim, call: Call, verb: str) -> Entry:
    """The unexpired entry the call's key names (404 10009, as ``verb`` words it, if none)."""
    entry = _namespace(sim, call).live(sim.clock.now()).get(_key_param(call))
    if entry is None:
        raise ApiError(404, KEY_NOT_FOUND, f"{verb}: 'key not found'")
    return entry


def get_value(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/values/{key}``: the raw bytes (404 10009 in the envelope when absent)."""
    entry = _live_entry(sim, call, "get")
    headers = {"content-type": "application/octet-stream"}
    if entry.expiration is not None:
        headers["expiration"] = str(int(entry.expiration))
    return Outcome(200, None, headers, raw=entry.value)


def delete_value(sim: CloudflareSim, call: Call) -> Outcome:
    """``DELETE …/values/{key}`` (absent keys are fine, as on Cloudflare)."""
    namespace = _namespace(sim, call)
    key = _key_param(call)
    namespace.entries.pop(key, None)
    touch(namespace)
    return Outcome(200, success({}))


def get_metadata(sim: CloudflareSim, call: Call) -> Outcome:
    """``GET …/metadata/{key}``: the key's metadata."""
    entry = _live_entry(sim, call, "metadata")
    return Outcome(200, success(entry.metadata))


_T = "/accounts/{account_id}/storage/kv/namespaces"
_T1 = _T + "/{namespace_id}"

ROUTE_SPECS: tuple[tuple[str, str, str, Any], ...] = api_routes(
    {
        _T: {"GET": list_namespaces, "POST": create_namespace},
        _T1: {"GET": get_namespace, "DELETE": delete_namespace},
        _T1 + "/keys": {"GET": list_keys},
        _T1 + "/bulk": {"PUT": bulk_write},
        _T1 + "/bulk/delete": {"POST": bulk_delete},
        _T1 + "/bulk/get": {"POST": bulk_get},
        _T1 + "/values/{key_name}": {"PUT": put_value, "GET": get_value, "DELETE": delete_value},
        _T1 + "/metadata/{key_name}": {"GET": get_metadata},
    }
)
"""``(method, path regex, path template, handler)`` for the simulator's router."""
