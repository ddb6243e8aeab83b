"""DSQN toolchain: train deep spiking Q-networks with exact Loihi arithmetic, export them to NetX, deploy on Lava/Loihi.

Stages live in sibling folders mapped into this package: ``dsqn.train``, ``dsqn.export``, ``dsqn.deploy``,
``dsqn.hw_sim``, ``dsqn.sweep``. Modules directly in ``dsqn`` are shared by all stages. The Python API
(``dsqn.load``, ``dsqn.train``, ``dsqn.export``, ``dsqn.deploy``; docs/api.md) is imported on first use, so
``import dsqn`` stays light.
"""

from __future__ import annotations

from typing import Any

from dsqn.version import __version__

__all__ = ["load", "train", "export", "deploy", "__version__"]
_API = {"load", "train", "export", "deploy"}


def __getattr__(name: str) -> Any:
    # train, export and deploy are the stages' subpackages, made callable (dsqn/callable_module.py): importing one
    # binds it here, so ``dsqn.train(...)`` works before and after ``import dsqn.train.cli``.
    if name == "load":
        from dsqn.api import load

        return load
    if name in _API:
        import importlib

        return importlib.import_module(f"dsqn.{name}")
    raise AttributeError(f"module 'dsqn' has no attribute {name!r}")
