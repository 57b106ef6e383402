"""D1 access for the reconciler: one ``Database`` interface, two backends.

Who calls it: ``runtime/migrate.py`` (schema migrations), the observers and executors that read
and write the app tables and the reconciler's ledger (intents, status, events, leases), and the
sandbox's D1 simulator (which serves a :class:`SqliteDatabase` over HTTP).

What it calls:

- :class:`SqliteDatabase` runs :mod:`sqlite3` on one dedicated worker thread (WAL, foreign keys
  on, a busy timeout). It is the default backend: D1 *is* SQLite, so the same SQL serves both.
- :class:`D1HttpDatabase` sends SQL to the Cloudflare REST query endpoint through a
  :class:`D1QueryAPI` (implemented by ``providers/cloudflare.py``'s client, which owns HTTP,
  the envelope, retries and the rate budget).

D1's documented limits (``contracts/d1/NOTES.md`` §3) hold on both backends, so a statement
that works locally also works in production:

1. at most :data:`MAX_BOUND_PARAMETERS` (100) bound parameters per statement;
2. at most :data:`MAX_STATEMENT_BYTES` (100,000) bytes of SQL per statement;
3. a batch runs atomically, all statements or none.

:func:`chunked_insert` splits multi-row inserts to fit, and :func:`param_chunks` splits long
``IN (...)`` lists. Failures become the project's error types: a constraint violation is a
:class:`ConstraintError` (a ``PermanentError``), a busy or locked database a ``TransientError``,
other SQL errors a :class:`SqlError` (also permanent). The original exception is the cause.

The pieces: :mod:`~reconciler.providers.d1_types` (the protocol, limits, values and errors),
:mod:`~reconciler.providers.d1_sql` (SQL text helpers), :mod:`~reconciler.providers.d1_sqlite`
and :mod:`~reconciler.providers.d1_http` (the backends). This module re-exports their public
names, which is where the rest of the reconciler imports them from.
"""

from __future__ import annotations

from reconciler.providers.d1_http import D1HttpDatabase as D1HttpDatabase
from reconciler.providers.d1_sql import check_statement as check_statement
from reconciler.providers.d1_sql import chunked_insert as chunked_insert
from reconciler.providers.d1_sql import inline_params as inline_params
from reconciler.providers.d1_sql import param_chunks as param_chunks
from reconciler.providers.d1_sql import placeholders as placeholders
from reconciler.providers.d1_sql import render_literal as render_literal
from reconciler.providers.d1_sql import split_sql as split_sql
from reconciler.providers.d1_sql import strip_comments as strip_comments
from reconciler.providers.d1_sqlite import SqliteDatabase as SqliteDatabase
from reconciler.providers.d1_types import MAX_BOUND_PARAMETERS as MAX_BOUND_PARAMETERS
from reconciler.providers.d1_types import MAX_STATEMENT_BYTES as MAX_STATEMENT_BYTES
from reconciler.providers.d1_types import PROVIDER as PROVIDER
from reconciler.providers.d1_types import ConstraintError as ConstraintError
from reconciler.providers.d1_types import D1QueryAPI as D1QueryAPI
from reconciler.providers.d1_types import D1Result as D1Result
from reconciler.providers.d1_types import Database as Database
from reconciler.providers.d1_types import ExecResult as ExecResult
from reconciler.providers.d1_types import Row as Row
from reconciler.providers.d1_types import SqlError as SqlError
from reconciler.providers.d1_types import SqlValue as SqlValue
from reconciler.providers.d1_types import Statement as Statement
from reconciler.providers.d1_types import StatementResult as StatementResult
from reconciler.providers.d1_types import StatementTooLargeError as StatementTooLargeError
