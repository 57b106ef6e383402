"""Shared sample content for the build tests: a small valid snapshot and its asset bytes.

Called by: pytest, for the modules in ``tests/build/``.
Calls: ``sandbox/photos.py`` for real (tiny) image files; each test copies and edits the sample.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from reconciler.sandbox.photos import make_photo

LOGO = make_photo(48, 48, fmt="png", seed=1)  # tiny, so every test stays fast
PHOTO = make_photo(96, 64, fmt="jpeg", seed=2)


def asset_entry(key: str, data: bytes, content_type: str = "image/png") -> dict[str, Any]:
    """The snapshot's description of one asset."""
    return {
        "key": key,
        "content_type": content_type,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


SAMPLE: dict[str, Any] = {
    "format": 1,
    "lang": "en",
    "pages": [
        {
            "path": "/",
            "title": "Acme Bakery",
            "description": "Fresh bread every morning",
            "blocks": [
                {
                    "type": "hero",
                    "heading": "Bread, baked at dawn",
                    "subheading": "Since 1990",
                    "image": "img/logo.png",
                    "image_alt": "Acme logo",
                    "cta": {"label": "Order now", "url": "/contact"},
                },
                {"type": "text", "text": "## Hours\nMon-Fri 8-18\n\n- Sourdough\n- Rye"},
                {"type": "image", "asset": "img/shop.jpg", "alt": "The shop", "caption": "Main St"},
                {
                    "type": "gallery",
                    "images": [
                        {"asset": "img/shop.jpg", "alt": "Shop"},
                        {"asset": "img/logo.png", "alt": ""},
                    ],
                },
                {
                    "type": "footer",
                    "text": "© Acme Bakery",
                    "links": [{"label": "Instagram", "url": "https://instagram.com/acme"}],
                },
            ],
        },
        {
            "path": "/contact",
            "title": "Contact",
            "blocks": [
                {
                    "type": "contact_form",
                    "fields": [
                        {"name": "name", "label": "Your name", "required": True},
                        {"name": "message", "label": "Message", "kind": "textarea"},
                    ],
                    "submit_label": "Send on WhatsApp",
                    "target": "whatsapp",
                    "recipient": "+15551234567",
                },
                {"type": "embed", "script_url": "https://maps.example.com/embed.js", "height": 300},
            ],
        },
    ],
    "assets": [
        asset_entry("img/logo.png", LOGO),
        asset_entry("img/shop.jpg", PHOTO, "image/jpeg"),
    ],
    "theme": {"colors": {"primary": "#aa3300"}, "font": "serif"},
}

ASSETS: dict[str, bytes] = {"img/logo.png": LOGO, "img/shop.jpg": PHOTO}


@pytest.fixture
def sample() -> dict[str, Any]:
    """A fresh deep copy of the valid sample snapshot, safe to edit."""
    return copy.deepcopy(SAMPLE)


@pytest.fixture
def assets() -> dict[str, bytes]:
    """The bytes of every asset the sample lists."""
    return dict(ASSETS)


@pytest.fixture
def make_asset() -> Any:
    """The helper that describes an asset for a snapshot's ``assets`` list."""
    return asset_entry
