"""Fixtures of tests/crash; the helpers and fixture bodies live in support/crash.py.

Test modules import helpers from the ``support`` package, never from conftest: several test
folders have a conftest, and a bare `import conftest` picks whichever is first on sys.path.
"""

from support.crash import crash_world  # noqa: F401 (pytest finds fixtures here)
