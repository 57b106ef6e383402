"""The one error a build raises: why a publish failed, in words fit for an operator.

``build/content.py`` raises it for an invalid content snapshot, ``build/site.py`` for a missing
or corrupt asset, an unsafe script URL or a build over its time limit, ``build/media.py`` for
hostile media (undecodable, wrong type, over a limit, an unsafe SVG). The publisher stores
``error.message`` in ``publish_versions.error_message`` (runbook 1) and never retries the same
snapshot: a build is deterministic, so the same input fails the same way.
"""

from __future__ import annotations

from enum import StrEnum

from reconciler.errors import ReconcilerError

MAX_MESSAGE_CHARS = 1000


class BuildFailure(StrEnum):
    """What kind of build failure this is; stable values for logs, metrics and conditions."""

    INVALID_CONTENT = "invalid_content"  # content_json is malformed or a block is invalid
    MISSING_ASSET = "missing_asset"  # a referenced asset is absent from the asset store
    CORRUPT_ASSET = "corrupt_asset"  # bytes differ from the snapshot's sha256, or undecodable
    WRONG_TYPE = "wrong_type"  # the bytes are not the declared content type
    OVERSIZED_ASSET = "oversized_asset"  # over the byte or pixel limit (decompression bombs)
    UNSAFE_ASSET = "unsafe_asset"  # an SVG that could run script or load a URL
    UNSAFE_SCRIPT = "unsafe_script"  # a site script is not an https:// URL
    TIMEOUT = "timeout"  # the build exceeded its time limit


class BuildError(ReconcilerError):
    """A build failed; ``message`` is what ``publish_versions.error_message`` records.

    Messages are single-line, at most ``MAX_MESSAGE_CHARS`` characters, and name the place in
    the content (``pages[0].blocks[3] (image): alt: Field required``).
    """

    def __init__(self, message: str, *, reason: BuildFailure) -> None:
        """Keep a one-line, bounded message and its failure kind."""
        line = " ".join(message.split())
        if len(line) > MAX_MESSAGE_CHARS:
            line = line[: MAX_MESSAGE_CHARS - 1] + "…"
        self.message = line
        self.reason = reason
        super().__init__(line)
