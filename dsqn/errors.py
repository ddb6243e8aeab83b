"""One-line errors for the console scripts."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., int])


class UserError(Exception):
    """Bad input from the user (a file, an option, an environment). Printed as one line, exit 2."""


def one_line(text: str) -> str:
    """The message on one line whatever a damaged file put into it: line breaks (all that str.splitlines
    knows) become spaces, other unprintable characters their escapes."""
    text = " ".join(text.splitlines())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are UserErrors: one line (no usage block) through :func:`cli_entry`, exit 2."""

    def error(self, message: str):  # type: ignore[no-untyped-def,override]
        raise UserError(f"{' '.join(message.split())} (see {self.prog} --help)")


def cli_entry(prog: str) -> Callable[[F], F]:
    """Wrap a console-script main: UserError -> one line on stderr and exit 2; Ctrl-C -> exit 130."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return fn(*args, **kwargs)
            except UserError as exc:
                print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                sys.exit(130)

        return wrapper  # type: ignore[return-value]

    return deco
