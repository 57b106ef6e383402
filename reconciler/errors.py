"""The project's error tree; every module raises these, only ``cli.py`` maps them to exit codes.

::

    ReconcilerError
    ├── SpecError          invalid desired state; carries every located problem; never retried
    ├── LoadError          specs could not be read at all (missing directory, unknown Git ref)
    ├── MigrationError     a D1 migration failed, was edited after being applied, or is partial
    ├── PlanError          dependency cycle, unknown kind; never retried
    ├── StalePlanError     a saved plan no longer matches the observed world; re-plan
    ├── UnreadableError    a provider could not be read (or refused the credentials): no plan
    └── ProviderError      a call to an external system failed (provider name kept)
        ├── TransientError     retry later: network, timeout, 5xx, 429 (``retry_after`` seconds)
        └── PermanentError     retrying the same call cannot help: validation, auth, not found

Adapters translate library and HTTP failures into ``TransientError`` or ``PermanentError`` and
chain the original as ``__cause__``; nothing above the adapters sees ``httpx`` or ``stripe``
exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.redact import redact


class ReconcilerError(Exception):
    """Root of every error the reconciler raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem in the desired state.

    ``line`` and ``column`` are 1-based; 0 means the position is unknown (for example a
    whole-file problem).
    """

    path: str
    line: int
    column: int
    subject: str  # "Site/acme-home", or "" when the document could not be identified
    field: str  # dotted location inside the document, "" for the document itself
    message: str

    def render(self) -> str:
        """Render as ``file:line:col: Kind/name: field: message``."""
        where = self.path
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        parts = [where]
        if self.subject:
            parts.append(self.subject)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class SpecError(ReconcilerError):
    """The desired state is invalid; ``problems`` holds every problem found, sorted."""

    def __init__(self, problems: list[Problem]) -> None:
        """Keep the problems sorted by file and position so output is stable."""
        self.problems = sorted(
            problems, key=lambda p: (p.path, p.line, p.column, p.subject, p.field, p.message)
        )
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the specs")


class LoadError(ReconcilerError):
    """The specs could not be read at all (no such directory, ref or repository)."""


class MigrationError(ReconcilerError):
    """A D1 migration failed or the migration history is inconsistent."""


class PlanError(ReconcilerError):
    """The plan could not be built (a cycle, an unknown kind)."""


class StalePlanError(ReconcilerError):
    """A saved plan was made against a world that has changed since."""


class UnreadableError(ReconcilerError):
    """A provider could not be read, so no honest plan exists; one line per provider.

    Raised by ``plan`` and ``apply`` after observing: a plan made without a provider's
    reading would say "No changes" or block everything for the wrong reason.
    """

    def __init__(self, lines: list[str]) -> None:
        """Keep one line per unreadable provider, each naming it and its endpoint."""
        self.lines = tuple(lines)
        super().__init__("\nerror: ".join(self.lines))


class ProviderError(ReconcilerError):
    """A call to an external system failed."""

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        """Record which provider failed, and the HTTP status when there was one.

        The message is redacted here, once (``reconciler/redact.py``): a provider's error body
        may echo a credential, and every output built from this error inherits the mask.
        """
        self.provider = provider
        self.status = status
        super().__init__(redact(f"{provider}: {message}"))


class TransientError(ProviderError):
    """Retrying later may succeed; ``retry_after`` is the server's hint in seconds, if any.

    ``not_applied`` is true when the request certainly had no effect (the connection was
    refused, or the server answered 429 before doing anything), so even a non-idempotent call
    such as a create may be sent again. A timeout or a 5xx leaves that unknown.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        not_applied: bool = False,
    ) -> None:
        """Keep the retry hint next to the provider error."""
        super().__init__(provider, message, status=status)
        self.retry_after = retry_after
        self.not_applied = not_applied


class PermanentError(ProviderError):
    """Retrying the same call cannot succeed until something else changes."""


class NotFoundError(PermanentError):
    """The object does not exist (callers decide whether that is final or success)."""
