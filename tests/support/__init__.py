"""Helpers the test files share (imported as ``support``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from dsqn.encoding import Encoder
from dsqn.export.exporter import export_model, network_meta
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec

REPO = Path(__file__).resolve().parents[2]


def call(main, argv: list[str]) -> int:  # type: ignore[no-untyped-def]
    """A console script's main run in this process: its exit code (argparse's SystemExit included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return 0 if code is None else int(code)


def captured_call(main, argv: list[str]) -> tuple[int, str, str, list]:  # type: ignore[no-untyped-def]
    """A console script's main in this process: (exit code, stdout, stderr, warnings raised)."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        code = call(main, argv)
    return code, out.getvalue(), err.getvalue(), list(caught)


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
    return scaled(SpikingQNet(spec), weight_gain, bias)


def scaled(model: SpikingQNet, weight_gain: float, bias: list[float] | None = None) -> SpikingQNet:
    """The network with every synapse's initial weights times ``weight_gain`` (so that it spikes) and, optionally,
    the readout bias set."""
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
