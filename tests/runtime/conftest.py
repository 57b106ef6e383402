"""Fixtures of tests/runtime (the daemon loop tests); their bodies live in support/daemon.py.

Test modules import helpers from the ``support`` package, never from conftest: several test
folders have a conftest, and a bare `import conftest` picks whichever is first on sys.path.
"""

from support.daemon import daemon_sandbox, fleet, start_daemon  # noqa: F401 (pytest finds fixtures here)
