"""Redaction: the one path every output passes through, so no secret is ever printed or stored.

Who calls it: :class:`reconciler.errors.ProviderError` (every provider error message, so
outcomes, plan reasons, D1 status rows and PR comments built from them are clean at the
source), ``runtime/logging.py`` (every log line), ``runtime/server.py`` (every HTTP answer),
``cli.py`` (stdout and stderr of every command, through :class:`RedactingStream`) and the
commands that write files (``plan --out``). The adapters and the wiring :func:`register` every
configured credential. It calls nothing.

Rules:

1. Every registered secret (a configured token, API key, webhook secret or plan key) is
   replaced by ``***`` wherever it appears, whatever surrounds it: a gateway that echoes its
   ``apikey`` inside prose is masked too.
2. Anything shaped like a credential is masked even when it was never registered:
   ``Bearer``/``Basic`` values, Stripe keys (``sk_``, ``rk_``, ``pk_``, ``whsec_``),
   ``apikey``/``token``/``secret``/``password``/``authorization`` values after ``:`` or ``=``,
   and the user:password part of URLs.
3. Registration is process-wide and only grows; values shorter than :data:`MIN_SECRET` are not
   registered (masking ``"ab"`` everywhere would garble every output and protect nothing).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import IO, Any

__all__ = ["MASK", "MIN_SECRET", "RedactingStream", "redact", "register"]

MASK = "***"
MIN_SECRET = 6

# NB: order matters: "Authorization: Bearer x" is first reduced to "Authorization: Bearer ***"
# by the Bearer rule, and the key=value rule then masks what is left after the separator.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), rf"\1 {MASK}"),
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{4,}"), MASK),
    (re.compile(r"\b(?:sk|rk)_[A-Za-z0-9_]{8,}"), MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{4,}"), MASK),
    (
        re.compile(
            r"""(?ix)
            (?<![A-Za-z0-9])((?:x-)?(?:api[-_]?key|apikey|auth[-_]?token|access[-_]?token|token|secret|
                password|passwd|authorization))
            (["']?\s*[:=]\s*["']?)
            (?!\*\*\*)(?:(?:bearer|basic)\s+)?[^\s"',;&}]+
            """
        ),
        rf"\1\2{MASK}",
    ),
    (re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@"), rf"\g<scheme>{MASK}@"),
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register(values: Iterable[str]) -> None:
    """Add ``values`` to the secrets masked everywhere (rule 3); empty and short ones are
    ignored."""
    global _secrets
    with _lock:
        known = set(_secrets)
        known.update(value for value in values if len(value) >= MIN_SECRET)
        # longest first, so a secret containing another is masked whole
        _secrets = tuple(sorted(known, key=lambda value: (-len(value), value)))


# Every pattern needs one of these (lower-cased) in the text it masks: a cheap test that keeps
# a 10 MB plan from going through six regular expressions when it holds nothing to mask.
_GATES = ("bearer", "basic", "k_", "whsec_", "key", "token", "secret", "passw", "authoriz", "://")
_LONG = 4096


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped value masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if len(text) <= _LONG:
        return _patterns(text) if _gated(text) else text
    if not _gated(text):
        return text
    # Long text (a whole plan): only its lines that could hold a credential are rewritten.
    lines = text.splitlines(keepends=True)
    return "".join(_patterns(line) if _gated(line) else line for line in lines)


def _gated(text: str) -> bool:
    lowered = text.lower()
    return any(gate in lowered for gate in _GATES)


def _patterns(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingStream:
    """A text stream that writes everything through :func:`redact` (``cli.py`` wraps stdout
    and stderr in it); every other attribute is the wrapped stream's."""

    def __init__(self, stream: IO[str]) -> None:
        """Wrap ``stream``."""
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` redacted; return the length given (callers count what they wrote)."""
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line redacted."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
