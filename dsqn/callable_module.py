"""``dsqn.train(...)``, ``dsqn.export(...)`` and ``dsqn.deploy(...)`` name both a stage's subpackage and the API function
that runs the stage. Python binds a subpackage to its parent's attribute as soon as it is imported, so a plain
function of that name would be shadowed; instead each stage's package module is made callable, forwarding to the
API function (:mod:`dsqn.api`). ``import dsqn.train.cli`` and ``dsqn.train(...)`` then both work in any order."""

from __future__ import annotations

import sys
import types
from typing import Any


def make_callable(module_name: str, api_name: str) -> None:
    """Make the (sub)package ``module_name`` callable as ``dsqn.api.<api_name>``, with that function's docstring."""

    class StageModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            from dsqn import api

            return getattr(api, api_name)(*args, **kwargs)

    StageModule.__call__.__doc__ = f"dsqn.api.{api_name}: see docs/api.md"
    sys.modules[module_name].__class__ = StageModule
