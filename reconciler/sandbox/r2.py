"""moto in server mode as the sandbox's R2: a launcher for the process and its settings.

Used by :class:`reconciler.sandbox.world.Sandbox` (so ``reconciler sandbox up``, the demo, the
scenario tests and the benchmarks), and by ``tests/providers/test_r2.py``. :class:`LocalR2`
starts ``python -m moto.server -H 127.0.0.1 -p <free port>`` from the running interpreter's
environment as a separate process (the same pattern as ``sandbox/localstripe.py``), waits until
it answers, creates the bucket, and always stops it again (``stop()``, the context managers and
an ``atexit`` hook as a last resort).

moto is a real S3 implementation nobody here wrote; the reconciler reaches it exactly as it
reaches R2, through ``providers/r2.py`` and boto3 with an endpoint URL. Two differences from R2
matter and are handled here, not in the adapter: moto wants a real AWS region name to create a
bucket (R2 uses ``auto``), and it accepts any access key. The keys this module prints are
sandbox fakes.
"""

from __future__ import annotations

import atexit
import secrets
import time
from typing import Any

import httpx

from reconciler.redact import register
from reconciler.sandbox.peer import LoggedPeer, free_port, spawn_logged
from reconciler.settings import R2Settings, Secret

DEFAULT_BUCKET = "sitebuilder-media"
SANDBOX_REGION = "us-east-1"


class LocalR2Error(RuntimeError):
    """moto could not be started, or stopped answering."""


class LocalR2(LoggedPeer):
    """A moto S3 server on a loopback port, with one bucket: the sandbox's R2."""

    _failure = LocalR2Error
    _what = "the sandbox R2"

    def __init__(
        self,
        *,
        bucket: str = DEFAULT_BUCKET,
        startup_timeout: float = 30.0,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure, without starting anything.

        Args:
            bucket: the bucket to create at start.
            startup_timeout: seconds to wait for the first answer before giving up.
            host: the loopback address to bind and reach.
        """
        self.bucket = bucket
        super().__init__(host=host, startup_timeout=startup_timeout)
        self._admin: Any = None  # one R2Store for bucket creation and resets (a client is slow)
        self.access_key_id = "sandbox-r2-" + secrets.token_hex(6)
        self.secret_access_key = secrets.token_hex(20)
        # Fakes, but masked like every credential (``sandbox up`` writes them to its env file).
        register((self.access_key_id, self.secret_access_key))

    def _details(self) -> tuple[str, ...]:
        return (f"bucket={self.bucket!r}",)

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL, ``http://127.0.0.1:<port>``."""
        return self._root()

    def settings(self) -> R2Settings:
        """Settings that point ``providers/r2.py`` at this server."""
        return R2Settings(
            endpoint=self.endpoint,
            bucket=self.bucket,
            access_key_id=Secret(self.access_key_id),
            secret_access_key=Secret(self.secret_access_key),
            region=SANDBOX_REGION,
        )

    def env(self) -> dict[str, str]:
        """The ``R2_*`` environment variables of :meth:`settings`."""
        return {
            "R2_ENDPOINT": self.endpoint,
            "R2_BUCKET": self.bucket,
            "R2_ACCESS_KEY_ID": self.access_key_id,
            "R2_SECRET_ACCESS_KEY": self.secret_access_key,
            "R2_REGION": SANDBOX_REGION,
        }

    def start(self) -> LocalR2:
        """Start the process, wait until it answers and create the bucket (idempotent).

        Raises:
            LocalR2Error: it exited or did not answer within ``startup_timeout``.
        """
        if self.running:
            return self
        self._launch(lambda: free_port(self._host), 3)
        self._create_bucket()
        return self

    def stop(self) -> None:
        """Terminate the process and release its log (idempotent, never raises)."""
        atexit.unregister(self.stop)
        self._reap()

    def reset(self) -> None:
        """Forget every object (moto's reset endpoint) and create the bucket again."""
        answer = httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10.0)
        if answer.status_code != 200:
            raise LocalR2Error(f"moto reset: HTTP {answer.status_code}")
        self._create_bucket()

    def _spawn(self, port: int) -> None:
        self._port = port
        self._admin = None
        self._process, self._log = spawn_logged(
            "moto.server", ["-H", self._host, "-p", str(port)], log_prefix="moto-"
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=2.0) as http:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    raise LocalR2Error(
                        f"moto exited before answering on port {self._port}; its output ends "
                        f"with:\n{self.output_tail()}"
                    )
                try:
                    if http.get(f"{self.endpoint}/moto-api/data.json").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() >= deadline:
                    raise LocalR2Error(
                        f"moto did not answer on port {self._port} within "
                        f"{self._startup_timeout:.0f}s:\n{self.output_tail()}"
                    )
                time.sleep(0.05)

    def _create_bucket(self) -> None:
        from reconciler.providers.r2 import R2Store

        if self._admin is None:
            self._admin = R2Store(self.settings())
        self._admin.create_bucket()
