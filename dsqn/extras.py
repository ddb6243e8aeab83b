"""The optional extras (pyproject.toml): one check each, and one line naming the pip command when one is missing."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import multiprocessing
import sys
from types import ModuleType

from dsqn.errors import UserError

# Each optional extra of pyproject.toml and the pip command that brings it (the same packages and pins), so a missing
# one is named in one line that works whether dsqn came from a clone (pip install -e '.[x]') or not.
EXTRAS: dict[str, str] = {
    "atari": "pip install 'ale-py>=0.9' opencv-python-headless",
    "mujoco": "pip install 'gymnasium[mujoco]>=1.0'",
    "sweep": "pip install 'optuna>=4.5'",
    "postgres": "pip install 'optuna>=4.5' psycopg2-binary",
    "lava": "pip install lava-nc==0.10.0 lava-dl==0.6.0 (Python 3.10 only)",
    "nir": "pip install 'nir>=1.0' 'snntorch>=1.0' 'nirtorch>=2.0'",
    "video": "pip install moviepy 'gymnasium[classic-control]>=1.0'",
}
INSTALL_HINT = EXTRAS["lava"]


def missing_extra(what: str, extra: str) -> UserError:
    """The one-line error for a feature whose extra is not installed."""
    return UserError(f"{what} needs the {extra} extra: {EXTRAS[extra]} (in a clone: pip install -e '.[{extra}]')")


def require(what: str, extra: str, *modules: str) -> None:
    """Raise :func:`missing_extra` unless every module (found without importing it) is installed."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ModuleNotFoundError, ValueError):
            found = False
        if not found:
            raise missing_extra(what, extra)


def lava_available() -> bool:
    """Whether lava-dl's netx can be imported, found without importing it (lava-dl imports torchvision and opencv)."""
    try:
        return importlib.util.find_spec("lava.lib.dl.netx") is not None
    except ModuleNotFoundError:
        return False


def require_lava(what: str) -> None:
    """One-line UserError naming ``what`` and how to install the extra."""
    if not lava_available():
        raise UserError(f"{what} needs the lava extra: {INSTALL_HINT} (in a clone: pip install -e '.[lava]'); "
                        "--backend emu runs the same arithmetic without it")


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
