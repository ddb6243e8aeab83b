"""The optional lava extra (lava-nc, lava-dl; Python 3.10): one check of whether it is installed."""

from __future__ import annotations

import importlib.util

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
