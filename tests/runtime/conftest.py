"""Fixtures of tests/daemon_loop; the helpers and fixture bodies live in daemon_loop_support.py.

Test modules import helpers from daemon_loop_support, never from conftest: several test folders
have a conftest, and a bare `import conftest` picks whichever is first on sys.path.
"""

from daemon_loop_support import daemon_sandbox, fleet, start_daemon  # noqa: F401 (pytest finds fixtures here)
