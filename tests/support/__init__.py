"""Helpers shared by the test folders: one module per concern, imported as ``support.<name>``.

A test folder holds only ``test_*.py`` files and, where its fixtures need one, a ``conftest.py``
that imports fixture bodies from here (``tests/test_structure.py`` checks this). The fixtures
every folder can use (the Evolution simulator, localstripe, D1 scratch databases) are registered
once for the whole suite by ``tests/conftest.py`` (``pytest_plugins``), so a session-scoped
simulator starts once, not once per folder.

- ``actions``: the handler rig (simulators, a migrated D1, action builders) for runtime/actions.
- ``chaos``: the chaos world (sandbox, fleet remote, fault timeline) for tests/chaos.
- ``contract``: the OpenAPI checker, the documented corrections and the SDK judge.
- ``core``: literal builders of desired and observed values for the pure-core tests.
- ``crash``: the crash world (kill points, subprocess applies) for tests/crash.
- ``d1``: scratch SQLite databases, the migrations and a fake D1 REST API.
- ``daemon``: a daemon against the sandbox and a local Git remote (runtime loop tests).
- ``evolution``: the Evolution API simulator handle, fake time and fixtures.
- ``execute``: fake handlers and a migrated D1 for the executor and the CLI apply tests.
- ``golden``: the literal inputs of the golden plans (tests/core/golden/).
- ``plan``: converged sandboxes and plans for the observe and apply tests.
- ``scenario``: the runbook scenario world (sandbox, fleet, in-process CLI).
- ``spec``: the example fleet and spec-writing helpers.
- ``stripe``: localstripe, a stub Stripe server and a webhook receiver.
"""
