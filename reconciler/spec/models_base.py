"""What every spec model shares: the strict base, deferred cross-field checks, the scalar types.

:class:`Strict` is frozen and rejects unknown fields; :func:`raise_unless_deferred` runs a
model's ``checks()`` unless ``spec/load.py`` deferred them (:data:`DEFER_CHECKS`). The scalar
types (durations, names, IDNA hostnames, E.164 numbers, https URLs) and :class:`Metadata` are
used by the kinds' models (``models_site.py``, ``models_billing.py``, ``models_worker.py``);
``reconciler.spec.models`` re-exports them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import idna
import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)

API_VERSION = "sitebuilder/v1"


class Strict(BaseModel):
    """Base for every spec model: immutable, unknown fields rejected, no coercion surprises."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


DEFER_CHECKS = "defer_checks"
"""Validation-context key: when true, cross-field checks do not raise inside pydantic.

``spec/load.py`` validates with ``context={DEFER_CHECKS: True}`` and then asks
:func:`document_checks` for the same findings, each with its own field path, so every one gets
its own line and column. Constructing a model any other way still raises on them.
"""

FieldCheck = tuple[str, str]
"""A cross-field finding: (dotted field path relative to the checked model, message)."""


def raise_unless_deferred(model: Any, info: ValidationInfo) -> None:
    """Raise a model's cross-field findings as one ``ValueError``, unless checks are deferred."""
    if isinstance(info.context, dict) and info.context.get(DEFER_CHECKS):
        return
    checks: list[FieldCheck] = model.checks()
    if checks:
        raise ValueError(
            "; ".join(f"{field}: {message}" if field else message for field, message in checks)
        )


# --- scalar types --------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"


def parse_duration(value: Any) -> Any:
    """Turn ``"24h"``, ``"90m"``, ``"1h30m"``, ``"2d"`` or ``"45s"`` into a ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("a duration is written like '24h', '90m', '1h30m' or '2d'")
    match = _DURATION_RE.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"{value!r} is not a duration; write it like '24h', '90m' or '1h30m'")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if delta <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return delta


def format_duration(value: timedelta) -> str:
    """Inverse of :func:`parse_duration`, in the shortest exact form (``5400s`` -> ``1h30m``)."""
    total = int(value.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            out += f"{amount}{unit}"
    return out or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as '24h', '90m', '1h30m', '2d' or '45s'.",
        }
    ),
]

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        max_length=63,
        description="DNS-label style: lowercase letters, digits and '-', at most 63 characters.",
    ),
]

# Cloudflare Pages project names: lowercase, digits and dashes, at most 58 characters.
PagesProjectName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?$", max_length=58),
]


_ASCII_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# A lowercase LDH hostname whose labels are not IDNA-prefixed ("xn--", or any "??--") and whose
# last label is not numeric is already canonical; most fleets are made of nothing else.
_CANONICAL_ASCII_RE = re.compile(
    r"(?:(?!..--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?!..--)(?![0-9]+$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


_HOSTNAME_CACHE_SIZE = 1 << 18
_hostnames: dict[str, tuple[bool, str]] = {}
"""Each distinct name normalised so far -> (True, its canonical form) or (False, why not).

A fleet validation normalises every hostname three times (its type, the Site's own checks, the
fleet's uniqueness check); ``spec/parallel.py``'s workers normalise the ones they meet and hand
the results over with :func:`remember_hostnames`.
"""


def normalize_hostname(value: str) -> str:
    """Return the canonical form of a hostname: IDNA 2008 A-labels, lowercase, no final dot.

    ``WWW.Acme.com.``, ``www.acme.com`` and ``xn--bcher-kva.example`` / ``bücher.example`` pairs
    normalise to the same string, which is how Cloudflare stores and compares custom hostnames.
    Results are cached per distinct string (:func:`hostname_verdict`).

    Raises:
        ValueError: with a readable message when the name is not a valid hostname.
    """
    valid, text = hostname_verdict(value)
    if not valid:
        raise ValueError(text)
    return text


def hostname_verdict(value: str) -> tuple[bool, str]:
    """(True, the canonical form of ``value``) or (False, why it is no hostname); cached."""
    try:
        return _hostnames[value]
    except KeyError:
        pass
    try:
        verdict = (True, _normalized(value))
    except ValueError as exc:
        verdict = (False, str(exc))
    remember_hostnames({value: verdict})
    return verdict


def remember_hostnames(verdicts: dict[str, tuple[bool, str]]) -> None:
    """Add results of :func:`hostname_verdict` worked out elsewhere (another process)."""
    if len(_hostnames) + len(verdicts) > _HOSTNAME_CACHE_SIZE:
        _hostnames.clear()
    _hostnames.update(verdicts)


def _normalized(value: str) -> str:
    text = value.strip()
    if text.endswith("."):
        text = text[:-1]
    lowered = text.lower()
    if len(lowered) <= 253 and _CANONICAL_ASCII_RE.fullmatch(lowered):
        # Skipping the pure-Python IDNA codec (~30 µs a name) keeps a 15,000-domain fleet fast.
        return value if lowered == value else lowered
    if not text:
        raise ValueError("a hostname may not be empty")
    if any(ch.isspace() for ch in text) or "/" in text or ":" in text:
        raise ValueError(f"{value!r} is not a valid hostname")
    labels = text.split(".")
    if any(not label for label in labels):
        raise ValueError(f"{value!r} is not a valid hostname (empty label)")
    if len(labels) < 2:
        raise ValueError(f"{value!r} is not a fully qualified hostname")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"{value!r} is not a valid hostname: {exc}") from exc
    if len(ascii_name) > 253:
        raise ValueError(f"{value!r} is longer than 253 characters")
    for label in ascii_name.split("."):
        if not _ASCII_LABEL_RE.fullmatch(label):
            raise ValueError(f"{value!r} is not a valid hostname (label {label!r})")
    if ascii_name.split(".")[-1].isdigit():
        raise ValueError(f"{value!r} is an IP address, not a hostname")
    return ascii_name


def check_hostname(value: str) -> str:
    """The ``Hostname`` type's validator: ``value`` itself, or a ``ValueError`` saying why not."""
    normalize_hostname(value)
    return value


Hostname = Annotated[
    str,
    AfterValidator(check_hostname),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 3,
            "maxLength": 253,
            "pattern": r"^[^\s/:]+\.[^\s/:]+\.?$",
            "description": "A fully qualified hostname (IDNA 2008; Unicode or punycode).",
        }
    ),
]


_E164_RE = re.compile(r"\+[1-9]\d{6,14}")
_E164_CACHE_SIZE = 1 << 18
_e164_problems: dict[str, str | None] = {}
"""Each distinct string checked so far -> why it is not an E.164 number, or None when it is.

Checking one number with ``phonenumbers`` costs about 20 µs (a third of validating a Tenant);
a daemon reloads the same numbers at every commit, and ``spec/parallel.py`` checks them in its
worker processes and hands the results over with :func:`remember_e164`.
"""


def e164_problem(value: str) -> str | None:
    """Why ``value`` is not a valid E.164 phone number, or None; cached per distinct string."""
    try:
        return _e164_problems[value]
    except KeyError:
        pass
    problem = _e164_verdict(value)
    remember_e164({value: problem})
    return problem


def remember_e164(problems: dict[str, str | None]) -> None:
    """Add results of :func:`e164_problem` worked out elsewhere (another process) to its cache."""
    if len(_e164_problems) + len(problems) > _E164_CACHE_SIZE:
        _e164_problems.clear()
    _e164_problems.update(problems)


def _e164_verdict(value: str) -> str | None:
    if not _E164_RE.fullmatch(value):
        return f"{value!r} is not an E.164 number (write it like +5511912345678)"
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        return f"{value!r} is not a valid phone number: {exc}"
    if not phonenumbers.is_valid_number(number):
        return f"{value!r} is not a valid phone number"
    return None


def check_e164(value: str) -> str:
    """The ``E164`` type's validator: ``value`` itself, or a ``ValueError`` saying why not."""
    problem = e164_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


E164 = Annotated[
    str,
    AfterValidator(check_e164),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\+[1-9][0-9]{6,14}$",
            "description": "A phone number in E.164 form, such as +5511912345678.",
        }
    ),
]

HttpsUrl = Annotated[
    str,
    Field(
        pattern=r"^https://[^\s/]+(/\S*)?$",
        max_length=2048,
        description="An https:// URL; plain http scripts are refused (mixed content).",
    ),
]


# --- metadata ----------------------------------------------------------------------------


class Metadata(Strict):
    """Identity of a document: its name is unique per kind."""

    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
