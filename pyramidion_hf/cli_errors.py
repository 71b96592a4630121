"""How every command line of ours fails: an expected error (bad input, a bad folder, no network) is ONE
line on stderr and exit status 2; `--debug` (or PYRAMIDION_DEBUG=1) shows the full traceback instead."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["DEBUG_ENV", "EXPECTED_ERRORS", "add_debug_argument", "cli_main", "one_line"]

DEBUG_ENV = "PYRAMIDION_DEBUG"
DEBUG_FLAG = "--debug"
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
EXIT_STATUS = 2

T = TypeVar("T")


def one_line(error: BaseException) -> str:
    """The error's first non-empty line; a hint to `--debug` when the message had more."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] + (f" (run with {DEBUG_FLAG} for the rest)" if len(lines) > 1 else "")


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """List `--debug` in the parser's --help (`cli_main` reads and removes it before parsing)."""
    parser.add_argument(
        DEBUG_FLAG, action="store_true", help=f"show the full traceback of an error (or set {DEBUG_ENV}=1)"
    )


def cli_main(prog: str) -> Callable[[Callable[[list[str]], T]], Callable[[Sequence[str] | None], T]]:
    """Decorate a CLI's `main(argv)`: expected errors become `prog: error: ...` on stderr and exit status 2,
    unless `--debug` is in argv or PYRAMIDION_DEBUG=1 (then they propagate with their traceback)."""

    def decorate(main: Callable[[list[str]], T]) -> Callable[[Sequence[str] | None], T]:
        @functools.wraps(main)
        def wrapper(argv: Sequence[str] | None = None) -> T:
            args = list(sys.argv[1:] if argv is None else argv)
            debug = DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
            try:
                return main([arg for arg in args if arg != DEBUG_FLAG])
            except EXPECTED_ERRORS as error:
                if debug:
                    raise
                sys.stderr.write(f"{prog}: error: {one_line(error)}\n")
                raise SystemExit(EXIT_STATUS) from None
            except KeyboardInterrupt:
                if debug:
                    raise
                sys.stderr.write(f"{prog}: interrupted\n")
                raise SystemExit(130) from None

        return wrapper

    return decorate
