"""The training model (lava-dl forward pass), the emulator and the exported file agree bit for bit."""

from pathlib import Path

import numpy as np
import pytest
import torch
from support import export, make_net

from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.emulator import Emulator

CONV_LAYERS = [{"type": "conv", "out": 4, "kernel": 3, "stride": 2}, {"type": "conv", "out": 6, "kernel": 3, "stride": 1},
               {"type": "dense", "out": 12}]


def slayer_vs_emulator(model, payload: np.ndarray, path: Path):
    T = model.spec.timesteps
    with torch.no_grad():
        q, spikes, volt = model(torch.from_numpy(payload.astype(np.float32)), return_spikes=True)
    net = read_netfile(export(model, path))
    emu = Emulator(net)
    v, windows, overflow = emu.infer(payload, T)
    return q.numpy(), spikes, volt.numpy(), net, v, windows, overflow


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_network_spikes_readout_and_q_identical(tmp_path, seed):
    rng = np.random.default_rng(seed)
    model = make_net(seed=seed, bias=[0.5, -0.25, 0.125], current_decay=[0.25, 0.5, 1.0][seed], voltage_decay=[0.125, 0.0, 0.5][seed])
    payload = rng.integers(0, 80, size=(6, 8))
    q, spikes, volt, net, v, windows, overflow = slayer_vs_emulator(model, payload, tmp_path / "m.net")
    T = model.spec.timesteps
    total = 0
    for i, s in enumerate(spikes):
        # slayer's block output is delayed by one step (the next synapse's delay); layer i is active from t = i+1
        sl = s.numpy()[..., 1:] > 0
        # sl[..., j] is layer i's spike on step j; its pipelined window starts at step i+1
        assert np.array_equal(sl[..., i + 1 :], windows[i][..., : T - 2 - i]), f"layer {i} spikes differ"
        total += int(sl.sum())
    assert total > 50, "test network should be active"
    assert np.array_equal(volt[..., -1].astype(np.int64), v)
    np.testing.assert_array_equal(q, model.spec.q_scale * v / (T * 4096))


def test_conv_network_identical(tmp_path):
    rng = np.random.default_rng(3)
    model = make_net(seed=3, input_shape=(2, 9, 9), layers=CONV_LAYERS, n_actions=4, timesteps=10, weight_gain=2.0,
                     bias=[0.1, 0.2, -0.3, 0.0])
    payload = rng.integers(0, 40, size=(3, 2, 9, 9))
    q, spikes, volt, net, v, windows, _ = slayer_vs_emulator(model, payload, tmp_path / "c.net")
    assert [layer.kind for layer in net.layers] == ["conv", "conv", "dense", "dense"]
    for i, s in enumerate(spikes):
        sl = s.numpy().reshape(s.shape[0], -1, s.shape[-1])[..., 1:] > 0
        assert np.array_equal(sl[..., i + 1 :], windows[i][..., : 10 - 2 - i]), f"layer {i} spikes differ"
    assert sum(int(s.sum()) for s in spikes) > 20
    assert np.array_equal(volt[..., -1].astype(np.int64), v)


def test_export_does_not_change_the_model(tmp_path):
    model = make_net(seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export(model, tmp_path / "m.net")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
