"""CLI subcommands, one module each; ``cli.py`` registers them and maps errors to exit codes.

Each module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(args) -> int``. Commands parse and print; decisions live in ``core``.
"""
