"""Fixtures of tests/crash; the helpers and fixture bodies live in crash_support.py.

Test modules import helpers from crash_support, never from conftest: several test folders
have a conftest, and a bare `import conftest` picks whichever is first on sys.path.
"""

from crash_support import crash_world  # noqa: F401 (pytest finds fixtures here)
