"""Shared fixtures: small random spiking Q-networks and their exported files."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

with contextlib.redirect_stdout(io.StringIO()):  # lava-dl prints optional-dependency notices on import
    import lava.lib.dl.slayer  # noqa: F401

from dsqn.encoding import Encoder
from dsqn.export.exporter import export_model, network_meta
from dsqn.train.model import NetSpec, SpikingQNet


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
) -> SpikingQNet:
    torch.manual_seed(seed)
    spec = NetSpec(
        input_shape=list(input_shape), layers=layers or [{"type": "dense", "out": 24}, {"type": "dense", "out": 16}],
        n_actions=n_actions, timesteps=timesteps, threshold=threshold, current_decay=current_decay,
        voltage_decay=voltage_decay, input_unit=32, q_scale=4.0,
    )
    model = SpikingQNet(spec)
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
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


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
