"""The ``pneumocxr`` command: one sub-command per step of the data's path.

Each module in this package that defines ``register(subparsers)`` adds its sub-commands; the
handler it sets as ``func`` returns the exit status. One error convention for every command (``main``):
a user error - a bad or missing config, run file, data folder or input (``OSError``, ``ValueError`` and
their subclasses such as ``ConfigError``, ``RunError``, ``RunFileError``) - prints one line
``pneumocxr COMMAND: error: ...`` and exits 2; any other exception is an internal fault: one line naming
its type, exit 1 (``-v`` shows the traceback). Handlers let exceptions propagate rather than catch them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from pneumocxr import __version__
from pneumocxr.plotting import use_headless_backend
from pneumocxr.quiet import quiet_native_logs

quiet_native_logs()  # before TensorFlow is imported anywhere: its C++ start-up lines are not the product's
USER_ERRORS = (OSError, ValueError)
log = logging.getLogger("pneumocxr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="pneumocxr", description=__doc__.splitlines()[0].rstrip("."))
    parser.add_argument("--version", action="version", version=f"pneumocxr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pneumocxr`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    use_headless_backend()  # the command writes figures to files only
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as a SIGPIPE-killed tool would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python docs, "Note on SIGPIPE"
        return 141
    except USER_ERRORS as exc:
        print(f"pneumocxr {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pneumocxr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal fault, not the user's: say so in one line, traceback with -v
        log.debug("traceback of the internal error", exc_info=True)
        print(
            f"pneumocxr {args.command}: internal error: {type(exc).__name__}: {one_line(exc)} "
            "(a bug: rerun with -v for the traceback)",
            file=sys.stderr,
        )
        return 1


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (``str(exc)`` with newlines folded)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:  # KeyError quotes its key: say what it is
        text = f"missing key {exc.args[0]!r}"
    return text


if __name__ == "__main__":
    sys.exit(main())
