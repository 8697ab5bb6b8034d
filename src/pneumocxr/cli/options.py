"""Shared argparse set-up of the sub-commands: a sub-command with its handler, and the arguments several share.

Each ``cli`` module's ``register`` builds its sub-commands with ``add_command`` and adds the shared
arguments (``add_run_dir``, ``add_root``) so their names, metavars and help read the same everywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

RUN_DIR_HELP = "run directory (config.toml, model.keras, threshold.json)"
Handler = Callable[[argparse.Namespace], int]


def add_command(
    subparsers: argparse._SubParsersAction, name: str, handler: Handler, help: str, description: str
) -> argparse.ArgumentParser:
    """Sub-command ``name`` whose ``func`` is ``handler`` (``cli.main`` calls it with the parsed arguments)."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=handler)
    return parser


def add_run_dir(parser: argparse.ArgumentParser, help: str = RUN_DIR_HELP) -> None:
    """The positional ``RUN_DIR``: a run directory written by ``pneumocxr train``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help=help)


def add_root(parser: argparse.ArgumentParser, default: str = "the config's, or $PNEUMOCXR_DATA", **options) -> None:
    """``--root``: the data root; ``default`` says where it comes from when the option is absent."""
    parser.add_argument("--root", help=f"data root (default: {default})", **options)
