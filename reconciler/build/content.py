"""The content snapshot: what the site editor writes to D1 ``site_versions.content_json``.

The publisher reads ``content_json`` for a (site, version) and calls :func:`parse_snapshot`;
``build/site.py`` renders the resulting :class:`ContentSnapshot` into static files.
``spec/schema.py`` exports ``ContentSnapshot.model_json_schema()`` into
``schemas/content.schema.json``, so these models are the single definition of the format.

Every model is frozen and rejects unknown fields. Scalars are strict (no ``"300"`` for a
number). A page holds an ordered list of blocks, discriminated on ``type``. Rules the JSON Schema
cannot express (unique page paths, a home page, unique asset keys, a contact form's recipient
matching its target) are model validators, so pydantic stays the judge.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from reconciler.build.errors import BuildError, BuildFailure

FORMAT_VERSION = 1
MAX_SNAPSHOT_BYTES = 5 * 1024 * 1024
MAX_REPORTED_PROBLEMS = 5

# --- scalar types --------------------------------------------------------------------------

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
ASSET_KEY_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
PAGE_PATH_PATTERN = r"^/(?:[a-z0-9][a-z0-9-]*(?:/[a-z0-9][a-z0-9-]*)*)?$"
HTTPS_URL_PATTERN = r"^https://[^\s/?#@]+(?:[/?#]\S*)?$"
LINK_URL_PATTERN = r"^(?:https?://[^\s/?#@]+(?:[/?#]\S*)?|mailto:\S+|tel:\+?[0-9 ().-]+|/\S*|#\S*)$"
RESERVED_PAGE_PREFIX = "/assets"

_HTTPS_URL_RE = re.compile(HTTPS_URL_PATTERN)
_LINK_URL_RE = re.compile(LINK_URL_PATTERN)
_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EMAIL_RE = re.compile(r"^[^\s@<>\"']+@[^\s@<>\"']+\.[^\s@<>\"']+$")


def _https_url(value: str) -> str:
    if not _HTTPS_URL_RE.fullmatch(value):
        raise ValueError(f"only https:// URLs are allowed, got {value!r}")
    return value


def _link_url(value: str) -> str:
    if not _LINK_URL_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a link this builder allows "
            "(https://, http://, mailto:, tel:, a /path or a #anchor)"
        )
    return value


def _require_unique(what: str, values: list[str]) -> None:
    """Refuse ``values`` that repeat, naming the repeated ones (sorted)."""
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(repeated)}")


def _url_field(description: str, pattern: str) -> Any:
    """A URL's limits: 2048 characters, its pattern shown in the schema (checked by a validator)."""
    return Field(max_length=2048, description=description, json_schema_extra={"pattern": pattern})


HttpsUrl = Annotated[
    StrictStr,
    _url_field("An absolute https:// URL.", HTTPS_URL_PATTERN),
    AfterValidator(_https_url),
]
LinkUrl = Annotated[
    StrictStr,
    _url_field(
        "Where a link goes: https://, http://, mailto:, tel:, a /path or a #anchor.",
        LINK_URL_PATTERN,
    ),
    AfterValidator(_link_url),
]
AssetKey = Annotated[
    StrictStr,
    Field(
        max_length=512,
        pattern=ASSET_KEY_PATTERN,
        description=(
            "Key of an asset listed in the snapshot's `assets` (e.g. `img/logo.png`): "
            "'/'-separated segments of letters, digits, '_', '-' and single dots."
        ),
    ),
]
ShortText = Annotated[StrictStr, Field(min_length=1, max_length=200)]
HexColor = Annotated[
    StrictStr,
    Field(pattern=r"^#[0-9a-fA-F]{6}$", description="A colour as #rrggbb."),
]
FontStack = Literal["system", "sans-serif", "serif", "monospace"]


class ContentModel(BaseModel):
    """Base for every content model: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- blocks --------------------------------------------------------------------------------


class CallToAction(ContentModel):
    """A button-style link."""

    label: ShortText = Field(description="Button text.")
    url: LinkUrl


class HeroBlock(ContentModel):
    """The large banner at the top of a page: heading, optional subheading, image and button."""

    type: Literal["hero"]
    heading: ShortText
    subheading: Annotated[StrictStr, Field(max_length=500)] | None = None
    image: AssetKey | None = Field(default=None, description="Background or side image.")
    image_alt: Annotated[StrictStr, Field(max_length=500)] = Field(
        default="", description="Alternative text of the image; empty when decorative."
    )
    cta: CallToAction | None = Field(default=None, description="Optional call to action.")


class TextBlock(ContentModel):
    """Markdown-ish plain text.

    Blank lines separate paragraphs; a line starting with `## ` is a heading, lines starting
    with `- ` form a list. Everything else is shown as written (no HTML is interpreted).
    """

    type: Literal["text"]
    text: Annotated[StrictStr, Field(min_length=1, max_length=50_000)]


class ImageBlock(ContentModel):
    """One image with required alternative text and an optional caption."""

    type: Literal["image"]
    asset: AssetKey
    alt: Annotated[StrictStr, Field(max_length=500)] = Field(
        description="Alternative text (required; an empty string marks a decorative image)."
    )
    caption: Annotated[StrictStr, Field(max_length=500)] | None = None


class GalleryImage(ContentModel):
    """One image of a gallery."""

    asset: AssetKey
    alt: Annotated[StrictStr, Field(max_length=500)] = Field(
        description="Alternative text (required; an empty string marks a decorative image)."
    )


class GalleryBlock(ContentModel):
    """A grid of images that open larger when clicked."""

    type: Literal["gallery"]
    images: tuple[GalleryImage, ...] = Field(min_length=1, max_length=100)


class FormField(ContentModel):
    """One input of a contact form."""

    name: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")] = Field(
        description="Machine name, unique within the form."
    )
    label: ShortText
    kind: Literal["text", "email", "tel", "textarea"] = "text"
    required: StrictBool = False


class ContactFormBlock(ContentModel):
    """A contact form sent as a WhatsApp message or an e-mail from the visitor's device."""

    type: Literal["contact_form"]
    fields: tuple[FormField, ...] = Field(min_length=1, max_length=20)
    submit_label: ShortText = "Send"
    target: Literal["whatsapp", "email"]
    recipient: Annotated[StrictStr, Field(min_length=3, max_length=254)] = Field(
        description="E.164 number (+15551234567) for whatsapp, an e-mail address for email."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ContactFormBlock:
        _require_unique("field names", [f.name for f in self.fields])
        if self.target == "whatsapp" and not _E164_RE.fullmatch(self.recipient):
            raise ValueError(
                f"recipient {self.recipient!r} is not an E.164 number like +15551234567"
            )
        if self.target == "email" and not _EMAIL_RE.fullmatch(self.recipient):
            raise ValueError(f"recipient {self.recipient!r} is not an e-mail address")
        return self


class FooterLink(ContentModel):
    """A link in the footer."""

    label: ShortText
    url: LinkUrl


class FooterBlock(ContentModel):
    """The page footer: a line of text and links."""

    type: Literal["footer"]
    text: Annotated[StrictStr, Field(max_length=1000)] = ""
    links: tuple[FooterLink, ...] = Field(default=(), max_length=30)


class EmbedBlock(ContentModel):
    """A third-party widget loaded from an https:// script URL (counted by the budget)."""

    type: Literal["embed"]
    script_url: HttpsUrl = Field(description="The widget's script; https:// only.")
    height: StrictInt = Field(ge=50, le=4000, description="Reserved height in CSS pixels.")


Block = Annotated[
    HeroBlock | TextBlock | ImageBlock | GalleryBlock | ContactFormBlock | FooterBlock | EmbedBlock,
    Field(discriminator="type"),
]

# --- snapshot ------------------------------------------------------------------------------


class Page(ContentModel):
    """One page of the site, rendered at its path (`/about` -> `about/index.html`)."""

    path: Annotated[StrictStr, Field(max_length=200, pattern=PAGE_PATH_PATTERN)] = Field(
        description="`/` or lowercase segments like `/about/team`; `/assets` is reserved."
    )
    title: ShortText
    description: Annotated[StrictStr, Field(max_length=300)] | None = Field(
        default=None, description="Meta description for search engines."
    )
    blocks: tuple[Block, ...] = Field(default=(), max_length=200)

    @model_validator(mode="after")
    def _not_reserved(self) -> Page:
        if self.path == RESERVED_PAGE_PREFIX or self.path.startswith(RESERVED_PAGE_PREFIX + "/"):
            raise ValueError(f"path {self.path!r} is reserved for the site's files")
        return self


class Asset(ContentModel):
    """A file the site uses (stored in R2), served at `/assets/media/<key>`."""

    key: AssetKey
    content_type: Annotated[StrictStr, Field(pattern=r"^[a-z]+/[a-z0-9.+-]+$", max_length=100)] = (
        Field(description="MIME type, e.g. image/webp.")
    )
    bytes: StrictInt = Field(ge=0, le=25 * 1024 * 1024, description="Size; at most 25 MiB.")
    sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="Lowercase hex SHA-256 of the bytes; checked at build time."
    )


class ThemeColors(ContentModel):
    """Colour overrides; each falls back to the builder's default."""

    primary: HexColor | None = None
    background: HexColor | None = None
    text: HexColor | None = None
    accent: HexColor | None = None


class Theme(ContentModel):
    """Optional look of the site."""

    colors: ThemeColors = Field(default_factory=ThemeColors)
    font: FontStack = "system"
    heading_font: FontStack | None = Field(default=None, description="Defaults to `font`.")


class ContentSnapshot(ContentModel):
    """One version of a site's content, as stored in D1 `site_versions.content_json`."""

    format: Literal[1] = Field(description="Format version of this document; always 1.")
    lang: Annotated[StrictStr, Field(pattern=r"^[a-zA-Z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")] = Field(
        default="en", description="BCP 47 language of the pages, e.g. `en` or `pt-BR`."
    )
    pages: tuple[Page, ...] = Field(min_length=1, max_length=500)
    assets: tuple[Asset, ...] = Field(default=(), max_length=5000)
    theme: Theme = Field(default_factory=Theme)

    @model_validator(mode="after")
    def _consistent(self) -> ContentSnapshot:
        paths = [page.path for page in self.pages]
        _require_unique("page paths", paths)
        if "/" not in paths:
            raise ValueError("the site needs a home page with path '/'")
        _require_unique("asset keys", [asset.key for asset in self.assets])
        return self


# --- parsing -------------------------------------------------------------------------------

_BLOCK_TYPES = frozenset(
    {"hero", "text", "image", "gallery", "contact_form", "footer", "embed"},
)


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as ``pages[0].blocks[3] (image): alt: Field required``."""
    loc = error["loc"]
    head = ""
    tail = ""
    index = 0
    while index < len(loc):
        part = loc[index]
        if isinstance(part, int):
            head += f"[{part}]"
        else:
            head += f".{part}" if head else str(part)
        index += 1
        if (
            isinstance(part, int)
            and index >= 2
            and loc[index - 2] == "blocks"
            and index < len(loc)
            and loc[index] in _BLOCK_TYPES
        ):
            head += f" ({loc[index]})"
            rest = loc[index + 1 :]
            tail = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
            tail = tail.lstrip(".")
            break
    message = error["msg"]
    if message.startswith("Tuple "):  # the models use tuples; the JSON has arrays
        message = "List " + message[len("Tuple ") :]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return ": ".join(part for part in (head, tail, message) if part)


def _is_echo(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """A ``too_short`` on a list only because its items failed (pydantic counts valid ones)."""
    if error["type"] != "too_short":
        return False
    loc = error["loc"]
    return any(len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in errors)


def describe_validation_error(exc: ValidationError) -> str:
    """Every problem of a validation error, located, joined with ``; `` (at most five shown)."""
    errors = exc.errors(include_url=False)
    problems = [_describe(error) for error in errors if not _is_echo(error, errors)]
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    text = "; ".join(shown)
    if more:
        text += f"; and {more} more problem{'s' if more != 1 else ''}"
    return text


def parse_snapshot(raw: str | bytes) -> ContentSnapshot:
    """Parse and validate ``content_json`` into a :class:`ContentSnapshot`.

    Args:
        raw: the ``site_versions.content_json`` text, as stored in D1.

    Returns:
        The validated snapshot.

    Raises:
        BuildError: ``INVALID_CONTENT`` with a located message, e.g.
            ``invalid content: pages[0].blocks[3] (image): alt: Field required``.
    """
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > MAX_SNAPSHOT_BYTES:
        raise BuildError(
            f"invalid content: content_json is {size} bytes, over the limit of "
            f"{MAX_SNAPSHOT_BYTES} bytes",
            reason=BuildFailure.INVALID_CONTENT,
        )
    try:
        return ContentSnapshot.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            detail = errors[0]["msg"].removeprefix("Invalid JSON: ")
            raise BuildError(
                f"invalid content: content_json is not valid JSON: {detail}",
                reason=BuildFailure.INVALID_CONTENT,
            ) from exc
        raise BuildError(
            f"invalid content: {describe_validation_error(exc)}",
            reason=BuildFailure.INVALID_CONTENT,
        ) from exc


def snapshot_from_data(data: Any) -> ContentSnapshot:
    """Validate already-decoded JSON data (a dict) the way :func:`parse_snapshot` does.

    Raises:
        BuildError: ``INVALID_CONTENT`` with a located message.
    """
    try:
        return ContentSnapshot.model_validate(data)
    except ValidationError as exc:
        raise BuildError(
            f"invalid content: {describe_validation_error(exc)}",
            reason=BuildFailure.INVALID_CONTENT,
        ) from exc
