"""Lava's fixed_pt simulator runs the exported file exactly as the training model and the emulator do."""

import numpy as np
import pytest
import torch
from support import export, make_net

from dsqn.deploy.lava_backend import LavaNetwork
from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.emulator import Emulator

pytestmark = pytest.mark.lava


def lava_stream(path, payloads, record_state=True):
    net = read_netfile(path)
    with LavaNetwork.from_netfile(net) as ln:
        infs = [ln.infer(p, record_state=record_state) for p in payloads]
    return net, infs


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_lava_matches_emulator_at_every_step(tmp_path, kind):
    """Spikes, u and v of every layer on every step of three back-to-back inferences (resets included)."""
    rng = np.random.default_rng(7)
    if kind == "dense":
        model = make_net(seed=7, bias=[0.25, -0.5, 0.0])
        payloads = rng.integers(0, 60, size=(3, 8))
    else:
        model = make_net(seed=8, input_shape=(2, 7, 7), n_actions=2, timesteps=8, weight_gain=2.0,
                         layers=[{"type": "conv", "out": 3, "kernel": 3, "stride": 2}, {"type": "dense", "out": 10}],
                         bias=[0.1, -0.1])
        payloads = rng.integers(0, 40, size=(3, 2, 7, 7))
    path = export(model, tmp_path / "m.net")
    net, infs = lava_stream(path, payloads)
    T = model.spec.timesteps
    stream = np.repeat(payloads.reshape(3, -1), T, axis=0).T[None]  # (1, C, 3T)
    res = Emulator(net).run(stream, reset_interval=T, reset_offset=1, record=True)
    active = 0
    for k, inf in enumerate(infs):
        sl = slice(k * T, (k + 1) * T)
        for i in range(len(net.layers)):
            assert np.array_equal(inf.spikes[i], res.traces[i].spikes[0][:, sl]), f"inference {k} layer {i} spikes"
            assert np.array_equal(inf.u[i], res.traces[i].u[0][:, sl]), f"inference {k} layer {i} u"
            assert np.array_equal(inf.v[i], res.traces[i].v[0][:, sl]), f"inference {k} layer {i} v"
            active += int(inf.spikes[i].sum())
        assert np.array_equal(inf.readout_v, res.traces[-1].v[0][:, (k + 1) * T - 1])
    assert active > 30


def test_lava_matches_lava_dl_forward_pass(tmp_path):
    """Layer-by-layer spike trains and the readout of the lava-dl model equal the Lava run (graded input)."""
    rng = np.random.default_rng(11)
    model = make_net(seed=11, bias=[0.5, 0.0, -0.25])
    payloads = rng.integers(0, 70, size=(3, 8))
    path = export(model, tmp_path / "m.net")
    _, infs = lava_stream(path, payloads, record_state=False)
    T = model.spec.timesteps
    with torch.no_grad():
        q, spikes, volt = model(torch.from_numpy(payloads.astype(np.float32)), return_spikes=True)
    for k, inf in enumerate(infs):
        for i, s in enumerate(spikes):
            slayer_spikes = s[k].numpy()[:, 1:] > 0  # step j of layer i (slayer's output is delayed by one)
            # within its own window (steps i+1 .. T-1) the Lava layer carries only this inference
            assert np.array_equal(inf.spikes[i][:, i + 1 : T - 1], slayer_spikes[:, i + 1 :]), f"inference {k} layer {i}"
        assert np.array_equal(inf.readout_v, volt[k, :, -1].numpy().astype(np.int64))
        np.testing.assert_allclose(model.spec.q_scale * inf.readout_v / (T * 4096), q[k].numpy(), rtol=0, atol=0)


def test_lava_starts_after_numba_parallel_kernels_ran(tmp_path):
    """numba's parallel kernels fix multiprocessing's start method when they first start their threads; Lava's
    import then used to fail with 'context has already been set'. Train-style work first, then Lava, in one
    fresh process (as a notebook or a script that trains and deploys would do)."""
    import subprocess
    import sys
    import textwrap

    path = export(make_net(seed=3), tmp_path / "m.net")
    script = textwrap.dedent(f"""
        import multiprocessing, numpy as np, torch
        from dsqn.kernels import neuron
        torch.set_num_threads(2)
        n, s, b = 256, 64, 8
        p = neuron.KernelParams(np.full(n, 2048), np.full(n, 2048), np.zeros(n, np.int64), np.full(n, 4096),
                                np.ones(n), 1.0)
        neuron.forward(torch.randn(b, s, n), False, 0, s, s, p, np.zeros(s, bool), backend="numba")
        assert multiprocessing.get_start_method(allow_none=True) is not None  # what broke Lava's import
        from dsqn.deploy.lava_backend import LavaNetwork
        from dsqn.hw_sim.emulator import Emulator
        from dsqn.files.netfile_read import read_netfile
        net = read_netfile({str(path)!r})
        payload = np.arange(8) * 3
        with LavaNetwork.from_netfile(net) as ln:
            v_lava = ln.infer(payload).readout_v
        v_emu = Emulator(net).infer(payload[None], net.timesteps)[0][0]
        assert np.array_equal(np.asarray(v_lava).reshape(-1), v_emu), (v_lava, v_emu)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
