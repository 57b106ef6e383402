"""The seam between the executor and the code that performs each kind of action.

``runtime/execute.py`` walks a plan and calls one :class:`Handler` per :class:`ActionKind`;
``runtime/actions/`` implements them over the adapters. Handlers never see the plan's reasons
(``Action.reason`` is for people); they read the typed ``action.payload``
(``core/payloads.py``, parsed when the action was made) and the :class:`ActionContext`.

Contract every handler keeps:

1. Idempotent by construction: when ``ctx.resumed`` is true a previous run wrote the intent and
   may or may not have performed the side effect; the handler looks before acting (find the
   deployment by its publish id, the hostname by name, the dunning log row) and returns
   ``UNCHANGED`` when it is already done.
2. Provider failures propagate: ``runtime/execute.py`` turns a ``ProviderError`` into an
   outcome, once (``TransientError`` -> ``FAILED_TRANSIENT`` with ``retry_after``,
   ``PermanentError`` -> ``FAILED_PERMANENT``). A handler catches one only where the failure is
   itself an answer it acts on: a ``NotFoundError`` that means "already gone", or a send whose
   failure the dunning log row must record. Any other exception is a bug and propagates.
3. ``ctx.checkpoint(name)`` is called at the named points around each side effect; the crash
   tests make one of them kill the process, production runs make them no-ops.
4. D1 round trips are shared with the journal where the executor offers it: a handler with an
   ``opening`` method (:class:`Opens`) has those statements run in the intent's batch and reads
   their results in ``ctx.opened``; statements a handler gives ``ctx.record`` are written in the
   batch that records its outcome (after it returns). Without them (``None``: a handler called
   directly) the handler writes itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from reconciler.core.outcome import Outcome
from reconciler.core.plan import Action
from reconciler.providers.d1 import Statement, StatementResult


class Checkpoints(Protocol):
    """Named points in the executor and handlers (crash tests kill the process at one)."""

    def __call__(self, name: str) -> None:
        """Called at point ``name``, e.g. ``publish.after-upload``."""


def no_checkpoints(name: str) -> None:
    """The production checkpoints: nothing happens."""


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What a handler may know besides its action."""

    now: Callable[[], float]  # the injected clock
    revision: str | None  # the specs commit the plan was made from
    resumed: bool  # an intent for this action was left pending by an earlier run
    checkpoint: Checkpoints = field(default=no_checkpoints)
    progress: Callable[[str], None] = field(default=lambda message: None)
    opened: tuple[StatementResult, ...] | None = None  # the results of ``opening`` (rule 4)
    record: Callable[[Sequence[Statement]], None] | None = None  # written with the outcome


class Handler(Protocol):
    """Performs one kind of action."""

    provider: str  # whose concurrency limit applies: cloudflare | whatsapp | d1

    async def __call__(self, action: Action, ctx: ActionContext) -> Outcome:
        """Perform ``action`` (or confirm it is already done) and say what happened."""


@runtime_checkable
class Opens(Protocol):
    """A handler whose first D1 statements ride in the intent's batch (rule 4)."""

    def opening(self, action: Action, now: float, unless: Statement) -> Sequence[Statement]:
        """The statements to run with the intent; every write guarded by ``unless``.

        ``unless`` is an SQL condition with its parameters (:meth:`Journal.unless_done`):
        false when the journal already holds the action as done, and then nothing may change.
        """
        ...
