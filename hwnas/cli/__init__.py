"""The ``hwnas`` command line, one module per group of commands.

``root`` holds the group (whose class, ``boundary.HwnasGroup``, is the one error boundary) and
the core commands; the others hold the commands that live beside their library (``devices``,
``anymodel``, ``supernet``, ``table``, ``records``) and the shared click types (``types``).
Importing this package imports click and these modules only: every library is imported inside
the command that needs it, so ``hwnas --help`` stays cheap (tests/test_layout.py).
"""

from hwnas.cli.root import cli, main

__all__ = ["cli", "main"]
