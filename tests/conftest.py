"""The lava lane's switch and shared fixtures (helpers shared by test files live in tests/support/).

Tests marked ``lava`` need the lava extra (lava-nc, lava-dl; Python 3.10). Without it they are skipped -- the
core lane -- unless DSQN_REQUIRE_LAVA=1 (the lava lane sets it), where a missing lava fails the run instead.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from dsqn.extras import lava_available

HAVE_LAVA = lava_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_LAVA:
        return
    if os.environ.get("DSQN_REQUIRE_LAVA") == "1":
        raise pytest.UsageError("DSQN_REQUIRE_LAVA=1 but lava-nc / lava-dl are not importable")
    skip = pytest.mark.skip(reason="needs the lava extra (lava-nc, lava-dl; Python 3.10)")
    for item in items:
        if "lava" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
