"""Fixtures of tests/actions; the helpers and fixture bodies live in actions_support.py.

Test modules import helpers from actions_support, never from conftest: several test folders
have a conftest, and a bare `import conftest` picks whichever is first on sys.path.
"""

from actions_support import db, evo, evolution_sim, rig  # noqa: F401 (pytest finds fixtures here)
