"""The emulator reproduces Lava on NetX files written directly by lava-dl blocks (no dsqn metadata)."""


import h5py
import numpy as np
import pytest
import torch

from dsqn.deploy.lava_backend import LavaNetwork
from dsqn.extras import import_lava_dl
from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.emulator import Emulator

pytest.importorskip("lava.lib.dl.slayer", reason="needs the lava extra (lava-nc, lava-dl; Python 3.10)")
slayer = import_lava_dl("slayer")

pytestmark = pytest.mark.lava


def neuron(rng: np.random.Generator) -> dict:
    return {"threshold": float(rng.choice([0.5, 1.25, 2.0])), "current_decay": float(rng.choice([0.0, 0.1, 0.3, 0.7, 1.0])),
            "voltage_decay": float(rng.choice([0.0, 0.05, 0.2, 0.6])), "requires_grad": False}


def write(blocks, path, x):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        for block in blocks:  # slayer learns neuron shapes from a forward pass
            x = block(x)
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(f"{i}"))


@pytest.mark.parametrize("seed", [0, 1])
def test_random_dense_file(tmp_path, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    sizes = [12, 40, 30, 5]
    blocks = [slayer.block.cuba.Dense(neuron(rng), a, b, weight_scale=float(rng.choice([2, 4, 6]))) for a, b in zip(sizes, sizes[1:])]
    path = tmp_path / "dense.net"
    write(blocks, path, torch.zeros(1, 12, 4))
    check(path, rng.integers(0, 50, size=(12,)), (12,), steps=16, reset_interval=8)


def test_random_conv_file(tmp_path):
    rng = np.random.default_rng(5)
    torch.manual_seed(5)
    blocks = [slayer.block.cuba.Conv(neuron(rng), 2, 4, 3, stride=2, weight_scale=4),
              slayer.block.cuba.Conv(neuron(rng), 4, 5, 3, stride=1, padding=1, weight_scale=4),
              slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(neuron(rng), 5 * 4 * 4, 6, weight_scale=4)]
    path = tmp_path / "conv.net"
    write(blocks, path, torch.zeros(1, 2, 9, 9, 4))
    check(path, rng.integers(0, 30, size=(2, 9, 9)), (2, 9, 9), steps=12, reset_interval=None)


def check(path, payload, input_shape, steps, reset_interval):  # type: ignore[no-untyped-def]
    net = read_netfile(path, require_meta=False, input_shape=input_shape)
    with LavaNetwork(path, steps, 8, reset_interval, 0, input_shape=input_shape) as ln:
        inf = ln.infer(payload, record_state=True)
    res = Emulator(net).run(np.repeat(payload.reshape(1, -1, 1), steps, axis=-1), reset_interval=reset_interval,
                              reset_offset=0, record=True)
    active = 0
    for i in range(len(net.layers)):
        assert np.array_equal(inf.spikes[i], res.traces[i].spikes[0]), f"layer {i} spikes"
        assert np.array_equal(inf.u[i], res.traces[i].u[0]), f"layer {i} u"
        assert np.array_equal(inf.v[i], res.traces[i].v[0]), f"layer {i} v"
        active += int(inf.spikes[i].sum())
    assert active > 20
