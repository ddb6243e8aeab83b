"""The optional lava extra (lava-nc, lava-dl; Python 3.10): one check of whether it is installed."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import multiprocessing
import sys
from types import ModuleType

from dsqn.errors import UserError

INSTALL_HINT = "pip install 'dsqn[lava]' (Python 3.10)"


def lava_available() -> bool:
    """Whether lava-dl's netx can be imported, found without importing it (lava-dl imports torchvision and opencv)."""
    try:
        return importlib.util.find_spec("lava.lib.dl.netx") is not None
    except ModuleNotFoundError:
        return False


def require_lava(what: str) -> None:
    """One-line UserError naming ``what`` and how to install the extra."""
    if not lava_available():
        raise UserError(f"{what} needs the lava extra: {INSTALL_HINT}; --backend emu runs the same arithmetic without it")


def ready_for_lava() -> None:
    """Call before importing lava. Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')``
    when it is first imported, which raises 'context has already been set' once any start method is fixed -- and
    numba's parallel kernels (training, the emulator) fix the default the first time they start their threads.
    Clearing that choice lets Lava set the 'fork' it needs (the default on Linux anyway)."""
    if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules and \
            multiprocessing.get_start_method(allow_none=True) is not None:
        multiprocessing.set_start_method(None, force=True)  # type: ignore[arg-type]


def import_lava_dl(module: str = "netx") -> ModuleType:
    """``lava.lib.dl.<module>`` (netx, slayer, ...), imported the one way every caller needs: after
    :func:`ready_for_lava`, with lava-dl's import-time notices (stdout, and torch.utils.cpp_extension's
    "No CUDA runtime is found" on stderr) captured. An ImportError still raises."""
    ready_for_lava()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return importlib.import_module(f"lava.lib.dl.{module}")
