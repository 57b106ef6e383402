"""Fixtures of tests/runtime/actions; the helpers and fixture bodies live in support/actions.py.

Test modules import helpers from the ``support`` package, never from conftest: several test
folders have a conftest, and a bare `import conftest` picks whichever is first on sys.path.
"""

from support.actions import db, rig  # noqa: F401 (pytest finds fixtures here)
