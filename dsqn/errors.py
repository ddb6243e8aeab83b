"""One-line errors for the console scripts."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., int])


class UserError(Exception):
    """Bad input from the user (a file, an option, an environment). Printed as one line, exit 2."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by the handler :func:`stop_on_signals` installs; exit 143."""


_signalled = False


def _on_signal(signum: int, frame: object) -> None:
    # The first signal starts the shutdown; further ones (a terminal's repeated Ctrl-C, a SIGTERM after it) are
    # ignored so they cannot interrupt the cleanup that the exception runs.
    global _signalled
    _signalled = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: Ctrl-C raises KeyboardInterrupt and SIGTERM :class:`Terminated` in the main thread, once (later
    signals are ignored while the ``finally`` blocks stop what was started); :func:`cli_entry` exits 130 / 143.
    A SIGINT the caller ignores (a job started with '&' by a non-interactive shell) stays ignored. The previous
    handlers come back on leaving, unless a signal came (the process is on its way out)."""
    global _signalled
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    _signalled = False
    if old[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_signal)
    if old[signal.SIGTERM] is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_signal)
    try:
        yield
    finally:
        if not _signalled:
            for sig, handler in old.items():
                signal.signal(sig, handler)


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
    """Wrap a console-script main: UserError -> one line on stderr and exit 2; Ctrl-C -> exit 130; SIGTERM (where
    :func:`stop_on_signals` turned it into :class:`Terminated`) -> exit 143; a full disk anywhere -> one line, exit 2."""

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
            except Terminated:
                print(f"{prog}: terminated", file=sys.stderr)
                sys.exit(143)
            except OSError as exc:
                # a full disk (or quota) wherever it strikes -- a log row, a TensorBoard event: one line, exit 2
                # (checkpoints and exports are written atomically, so none is left half-written)
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                where = f" ({exc.filename})" if exc.filename else ""
                print(f"{prog}: error: cannot write{where}: {one_line(exc.strerror or str(exc))}", file=sys.stderr)
                sys.exit(2)

        return wrapper  # type: ignore[return-value]

    return deco
