"""The builder's own fingerprint: its version and the image encoder settings, as one string.

Part of every build's identity (``core/identity.py`` ``BuildInputs.builder``): the observer
(``runtime/observe.py``) and the publisher (``runtime/actions/publish.py``) take it from here,
so a new builder release or new encoder settings plans a rebuild of every site, with that as
its reason. Bump :data:`BUILDER_VERSION` whenever a change to ``build/`` changes output bytes.
"""

from __future__ import annotations

from reconciler.build.media import EncoderSettings

__all__ = ["BUILDER_VERSION", "builder_fingerprint"]

BUILDER_VERSION = 2
"""2: images as WebP/AVIF ``<picture>``, reserved heights in site.css."""


def builder_fingerprint(encoder: EncoderSettings | None = None) -> str:
    """``sitebuilder-build/<version> encoder/<settings digest>``."""
    return f"sitebuilder-build/{BUILDER_VERSION} encoder/{(encoder or EncoderSettings()).digest()}"
