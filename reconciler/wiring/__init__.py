"""The composition root: settings -> clients -> runtime. The one reader of the environment.

Commands call :func:`load_settings` (the only place ``os.environ`` is read), :func:`wall_clock`
(the only real clock the runtime sees; tests and the demo pass their own ``now``), and build
what they need here:

- :class:`ReadOnlyWorld`: observers only, for ``reconciler plan`` and every dry run. It
  constructs no writer at all, so a plan cannot change the world whatever the code below it
  does; it needs read-only tokens only.
- :class:`WriterWorld`: the write-capable clients of ``reconciler apply`` (and the daemon):
  Cloudflare and Evolution in the ``CHANGE`` lane, Stripe (still read-only: the reconciler
  never charges), the D1 database, the actions'
  :class:`~reconciler.runtime.actions.world.World`, its handlers and the checkpoints.
- :class:`DaemonWorld`: both of the above for ``reconciler run``, every client guarded by the
  provider's circuit breaker and the writers fenced by the leader lease, plus the loop's parts
  (Git follower, lease, status store, journal, metrics, HTTP endpoints).
- :class:`Buckets`: one shared :class:`~reconciler.providers.ratelimit.TokenBucket` per
  provider and credential, handed to every client of that credential (DESIGN.md section 7).

Two test-and-sandbox knobs are read here and nowhere else:

- ``RECONCILER_CRASH_AT`` (:data:`~reconciler.runtime.checkpoints.CRASH_ENV`): named crash
  points for the crash tests (:func:`load_checkpoints`); unset in production.
- ``RECONCILER_SANDBOX_CONTROL`` (:data:`SANDBOX_CONTROL_ENV`): the sandbox's control root
  (``http://127.0.0.1:<port>/__sandbox``). When set, the handlers' waits between deployment
  polls advance the sandbox's virtual clock instead of sleeping (:func:`load_sleep`), so a
  publish in the demo, the scenario tests and the benchmarks takes milliseconds, not the
  fifteen simulated seconds of a deployment; ``DNS_RESOLVER=sandbox`` reads the sandbox DNS
  there. ``Sandbox.settings_env()`` sets both. Unset in production.

The observers' DNS resolver (:func:`load_resolver`) follows ``DNS_RESOLVER``: the host's
resolvers (``system``, the default), the sandbox DNS, or none (``off``).

It calls the adapters' constructors (``providers/*``) and nothing else; no decision is made
here beyond "is this provider configured".

The package, one module a job: :mod:`~reconciler.wiring.env` (the environment readers),
:mod:`~reconciler.wiring.config` (the routing settings as the planner and handlers see them),
:mod:`~reconciler.wiring.clients` (the provider clients and their buckets),
:mod:`~reconciler.wiring.worlds` (the read-only and writer worlds) and
:mod:`~reconciler.wiring.daemon` (the daemon's guarded, fenced world).
"""

from __future__ import annotations

from reconciler.settings import SANDBOX_CONTROL_ENV
from reconciler.wiring.clients import EVOLUTION_BUDGET, Buckets, load_media
from reconciler.wiring.config import plan_settings, routing_config, worker_source
from reconciler.wiring.daemon import DaemonWorld
from reconciler.wiring.env import (
    Sleep,
    load_checkpoints,
    load_resolver,
    load_settings,
    load_sleep,
    wall_clock,
)
from reconciler.wiring.worlds import ReadOnlyWorld, WriterWorld

__all__ = [
    "EVOLUTION_BUDGET",
    "SANDBOX_CONTROL_ENV",
    "Buckets",
    "DaemonWorld",
    "ReadOnlyWorld",
    "Sleep",
    "WriterWorld",
    "load_checkpoints",
    "load_media",
    "load_resolver",
    "load_settings",
    "load_sleep",
    "plan_settings",
    "routing_config",
    "wall_clock",
    "worker_source",
]
