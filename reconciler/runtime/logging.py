"""Structured logs for the daemon: one JSON object per line, with secrets masked.

Called by ``reconciler run`` (through :func:`setup_logging`, once at start) and by anything that
stores text that might hold a secret (:func:`redact`, used by ``runtime/status.py``). Every
module logs through the standard :mod:`logging` API with ``extra={...}`` fields; this module
only decides the shape of a line and what never appears in one. It calls nothing else.

A line looks like::

    {"ts": "2024-05-01T12:00:00.123Z", "level": "info", "logger": "reconciler.runtime.loop",
     "msg": "pass finished", "actions": 3, "duration_s": 1.2}

Rules:

1. Secrets never reach a line. Tokens are injected as ``Secret`` values whose repr hides them,
   but an error message or a URL could still carry one, so :class:`RedactingFilter` passes the
   message, the extra fields and the traceback through :func:`reconciler.redact.redact` (every
   configured secret, and anything shaped like one). Extra fields whose *name* says secret are
   masked whole.
2. Extra fields keep their JSON types; values JSON cannot hold are written as their ``str``.
3. One JSON object per line, for machines: no ANSI colour codes anywhere in it (uvicorn's
   ``color_message`` field is dropped, escape sequences are stripped from every string), and
   the message is text, never JSON inside JSON.
4. Third-party libraries' request logs (httpx, httpcore, uvicorn and its access log, GitPython,
   stripe, asyncio) are kept at WARNING unless the daemon runs at DEBUG: at INFO they were
   most of the volume and none of the signal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from reconciler.redact import MASK, redact

__all__ = [
    "MASK",
    "THIRD_PARTY",
    "JsonFormatter",
    "RedactingFilter",
    "redact",
    "setup_logging",
]

_SECRET_NAME = re.compile(
    r"(?i)(api[-_]?key|apikey|token|secret|password|passwd|authorization|signature|cookie)"
)

THIRD_PARTY = (
    "httpx",
    "httpcore",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "git",
    "stripe",
    "asyncio",
)
"""Loggers held at WARNING unless the daemon logs at DEBUG (rule 4)."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_DROPPED = frozenset({"color_message"})  # uvicorn's coloured copy of the message (rule 3)

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _plain(text: str) -> str:
    """``text`` without ANSI escape sequences (rule 3)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def _redact_value(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name) and value is not None:
        return MASK
    if isinstance(value, str):
        return _plain(redact(value))
    if isinstance(value, Mapping):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(name, item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, extra fields and traceback (rule 1).

    Installed on the handler, so it sees records of every logger, and rewrites the record in
    place: the message is formatted once and its arguments dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record; never drops one."""
        record.msg = redact(record.getMessage())
        record.args = None
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD:
                setattr(record, name, _redact_value(name, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, then the extra fields (rule 2)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line of JSON."""
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _plain(redact(record.getMessage())),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in line and name not in _DROPPED:
                line[name] = _redact_value(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: int | str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr by default) as redacted JSON lines.

    Replaces a handler installed by an earlier call, so calling it twice does not duplicate
    lines; other handlers on the root logger are left alone. Third-party loggers are held at
    WARNING unless ``level`` is DEBUG (rule 4).

    Args:
        level: the root logger's level, a name (``"debug"``) or a number.
        stream: where lines go.

    Returns:
        The installed handler.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_reconciler_json", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    handler._reconciler_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    quiet = root.getEffectiveLevel() > logging.DEBUG
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    return handler
