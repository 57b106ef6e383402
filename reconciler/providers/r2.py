"""R2 adapter: media originals and cached image variants through R2's S3-compatible API.

Built by ``wiring`` from :class:`~reconciler.settings.R2Settings` (endpoint, bucket, keys;
the keys are :class:`~reconciler.settings.Secret` and never printed); handed to the builder as
its asset store (``build/site.py`` ``AssetStore``: originals by key) and its variant cache
(``build/media.py`` ``VariantCache``). In the local world the same code talks to moto in server
mode (``sandbox/r2.py``).

The client is boto3 (the AWS SDK, which R2 documents for its S3 API), used synchronously: the
builder runs on a worker thread (``asyncio.to_thread``), and boto3 clients are thread-safe.
Requests are path-style and signed with SigV4 for region ``auto``, as R2 expects.

Errors become the reconciler's own (``errors.py``), once, here:

- ``NoSuchKey`` / HTTP 404 on a read: ``None`` (the builder turns it into a located
  ``missing asset`` build failure);
- throttling, HTTP 5xx, timeouts and connection failures: :class:`TransientError` (the publish
  is retried later; a transient read never becomes a build failure). boto3's own retries
  (standard mode, 3 attempts) run first;
- anything else (403 bad credentials, 400): :class:`PermanentError`.

Object layout in the bucket: originals at the key the content names (``acme-home/hero.jpg``);
variants under ``variants/`` (``build/media.py`` names them by the original's SHA-256 and the
encoder settings' digest, so a variant is never stale).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from reconciler.errors import PermanentError, ProviderError, TransientError
from reconciler.settings import R2Settings

__all__ = ["VARIANT_PREFIX", "R2Store"]

PROVIDER = "r2"
VARIANT_PREFIX = "variants/"
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
    }
)


class R2Store:
    """One R2 bucket: ``get`` originals, ``get_variant``/``put_variant`` the variant cache."""

    def __init__(self, settings: R2Settings, *, attempts: int = 3) -> None:
        """Prepare (without connecting) a client for ``settings``.

        Args:
            settings: endpoint, bucket, keys and signing region.
            attempts: boto3's total attempts per request (standard retry mode).

        Raises:
            ValueError: the settings are incomplete.
        """
        if not settings.configured:
            raise ValueError(
                "R2 is not configured: set R2_ENDPOINT, R2_BUCKET, R2_ACCESS_KEY_ID and "
                "R2_SECRET_ACCESS_KEY"
            )
        self._settings = settings
        self._attempts = attempts
        self._client: Any = None
        self._lock = threading.Lock()
        self.reads = 0  # objects read (originals and variants), for progress and benchmarks
        self.writes = 0

    def __repr__(self) -> str:
        """Endpoint and bucket; never a key."""
        return f"R2Store({self._settings.endpoint!r}, bucket={self._settings.bucket!r})"

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._settings.bucket

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                settings = self._settings
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=settings.endpoint,
                    aws_access_key_id=settings.access_key_id.reveal(),
                    aws_secret_access_key=settings.secret_access_key.reveal(),
                    region_name=settings.region,
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                        retries={"max_attempts": self._attempts, "mode": "standard"},
                        connect_timeout=5,
                        read_timeout=30,
                    ),
                )
            return self._client

    # ---- originals ------------------------------------------------------------------------

    def get(self, key: str, /) -> bytes | None:
        """The bytes of object ``key``, or ``None`` when there is no such object.

        Raises:
            TransientError: throttled, 5xx, timed out or unreachable (after boto3's retries).
            PermanentError: refused (bad credentials, no such bucket, a malformed request).
        """
        try:
            answer = self._s3().get_object(Bucket=self.bucket, Key=key)
            data: bytes = answer["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise _translate(exc, f"GET {key}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"GET {key}") from exc
        self.reads += 1
        return data

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data`` at ``key`` (seeding, tests, and the variant cache).

        Raises:
            TransientError | PermanentError: as for :meth:`get`.
        """
        try:
            self._s3().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"PUT {key}") from exc
        self.writes += 1

    def delete(self, key: str) -> None:
        """Remove object ``key`` (absent is fine)."""
        try:
            self._s3().delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"DELETE {key}") from exc

    def create_bucket(self) -> None:
        """Create the bucket unless it exists (the sandbox; on a real account, the dashboard)."""
        try:
            self._s3().create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            raise _translate(exc, f"CreateBucket {self.bucket}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"CreateBucket {self.bucket}") from exc

    # ---- the variant cache (build/media.py VariantCache) -----------------------------------

    def get_variant(self, name: str) -> bytes | None:
        """A cached variant (or index) by its content-addressed name, or ``None``."""
        return self.get(VARIANT_PREFIX + name)

    def put_variant(self, name: str, data: bytes, content_type: str) -> None:
        """Cache a variant (or index) under its content-addressed name."""
        self.put(VARIANT_PREFIX + name, data, content_type=content_type)


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
    code = error.get("Code", "") if isinstance(error, dict) else ""
    return str(code)


def _status(exc: ClientError) -> int | None:
    meta = exc.response.get("ResponseMetadata", {}) if isinstance(exc.response, dict) else {}
    status = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
    return status if isinstance(status, int) else None


def _translate(exc: Exception, what: str) -> ProviderError:
    """One boto error as the reconciler's own: transient or permanent (never a secret)."""
    if isinstance(exc, ClientError):
        code, status = _code(exc), _status(exc)
        if code in _TRANSIENT_CODES or (status is not None and (status >= 500 or status == 429)):
            return TransientError(PROVIDER, f"{what}: {code or status}", status=status)
        return PermanentError(PROVIDER, f"{what}: {code or status}", status=status)
    if isinstance(exc, EndpointConnectionError | BotoConnectionError | ConnectTimeoutError):
        return TransientError(PROVIDER, f"{what}: R2 unreachable", not_applied=True)
    if isinstance(exc, ReadTimeoutError):
        return TransientError(PROVIDER, f"{what}: timed out")
    return TransientError(PROVIDER, f"{what}: {type(exc).__name__}")
