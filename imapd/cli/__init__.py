"""The `imapd` command line (argparse): one module per command family.

``main`` and ``build_parser`` are the entry points (the ``imapd`` console script and
``python -m imapd``); imapd/cli/app.py builds the parser and dispatches.
"""

from imapd.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
