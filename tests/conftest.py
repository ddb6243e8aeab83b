"""Shared fixtures: small random spiking Q-networks and their exported files; the lava lane's switch.

Tests marked ``lava`` need the lava extra (lava-nc, lava-dl; Python 3.10). Without it they are skipped -- the
core lane -- unless DSQN_REQUIRE_LAVA=1 (the lava lane sets it), where a missing lava fails the run instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dsqn.encoding import Encoder
from dsqn.export.exporter import export_model, network_meta
from dsqn.extras import lava_available
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec


def make_net(
    seed: int = 0,
    input_shape: tuple[int, ...] = (8,),
    layers: list[dict] | None = None,
    n_actions: int = 3,
    timesteps: int = 8,
    threshold: float = 1.0,
    current_decay: float = 0.25,
    voltage_decay: float = 0.125,
    weight_gain: float = 3.0,
    bias: list[float] | None = None,
    input_unit: int = 32,
    q_scale: float = 4.0,
) -> SpikingQNet:
    torch.manual_seed(seed)
    spec = NetSpec(
        input_shape=list(input_shape), layers=layers or [{"type": "dense", "out": 24}, {"type": "dense", "out": 16}],
        n_actions=n_actions, timesteps=timesteps, threshold=threshold, current_decay=current_decay,
        voltage_decay=voltage_decay, input_unit=input_unit, q_scale=q_scale,
    )
    model = SpikingQNet(spec)
    with torch.no_grad():
        for block in model.blocks:
            if hasattr(block, "synapse"):
                block.synapse.weight.data *= weight_gain
        if bias is not None:
            model.readout_bias.data[:] = torch.tensor(bias)
    return model


def export(model: SpikingQNet, path: Path, env_id: str = "CartPole-v1", obs_dim: int = 4) -> Path:
    enc = Encoder(obs_scale=tuple([1.0] * obs_dim))
    meta = network_meta(model.spec, enc, env_id, "0" * 64, {})
    export_model(model, enc, path, meta)
    return path


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


def call(main, argv: list[str]) -> int:  # type: ignore[no-untyped-def]
    """A console script's main run in this process: its exit code (argparse's SystemExit included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return 0 if code is None else int(code)
