"""The core without Lava: one neuron kernel (numba = torch reference), training forward = emulator bit for bit in
every regime, the chip's numbers converted in one place, and a model.net that stays inside Loihi's fields."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import export, make_net

from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.emulator import Emulator
from dsqn.kernels import neuron as kernel
from dsqn.kernels import timing
from dsqn.kernels.fixed_point import (
    BIAS_MANT_MAX,
    DECAY_SCALE,
    UV_MAX,
    V_LIMIT,
    VTH_MANT_MAX,
    LoihiNeuron,
    NeuronParams,
    weight_to_int,
)
from dsqn.layers.cuba import Dense
from dsqn.layers.exact import quantize_8bit
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec


def _params(rng: np.random.Generator, n: int, big: bool) -> kernel.KernelParams:
    keep_u = rng.choice([0, 1, 2048, 3000, 4095, 4096], n).astype(np.int64)
    keep_v = rng.choice([0, 512, 4095, 4096], n).astype(np.int64)
    vth = (rng.integers(1, VTH_MANT_MAX if big else 200, n) << 6).astype(np.int64)
    bias = (rng.integers(-BIAS_MANT_MAX, BIAS_MANT_MAX, n) << 6).astype(np.int64) * rng.integers(0, 2, n)
    return kernel.KernelParams(keep_u, keep_v, bias, vth, tau_rho=np.full(n, 0.7), scale_rho=0.3)


@pytest.mark.skipif(not kernel.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("scale", [40.0, 5000.0])
@pytest.mark.parametrize("const,delay", [(False, False), (True, False), (False, True)])
def test_numba_kernel_equals_torch_reference(scale, const, delay):
    """Forward bit for bit (spikes, pre-reset v, u, wrap/saturation count), backward to float rounding."""
    rng = np.random.default_rng(int(scale) + const)
    b, n, s = 3, 17, 12
    z = torch.from_numpy(np.round(rng.normal(0, scale, (b, 1 if const else s, n)) * 64) / 64).float()
    p = _params(rng, n, big=scale > 100)
    resets = rng.random(s) < 0.2
    out_t = kernel.forward(z, const, 2, 9, s, p, resets, record_u=True, delay=delay, backend="torch")
    out_n = kernel.forward(z, const, 2, 9, s, p, resets, record_u=True, delay=delay, backend="numba")
    if delay:  # the spike of step t leaves on step t + 1
        plain = kernel.forward(z, const, 2, 9, s, p, resets, backend="numba")[0]
        assert torch.equal(out_n[0][:, 1:], plain[:, :-1]) and not out_n[0][:, 0].any()
    for a, c in zip(out_t[:3], out_n[:3]):
        assert torch.equal(a, c)
    assert out_t[3] == out_n[3]
    if scale > 100:  # the large-input case must really wrap u and saturate v
        assert out_n[3] > 10 and (out_n[1].abs() == V_LIMIT).any() and (out_n[2].abs() <= UV_MAX).any()
    gs, gv = torch.randn(b, s, n), torch.randn(b, s, n)
    gz_t, gb_t = kernel.backward(gs, gv, out_t[1], p, 3, True, delay=delay, backend="torch")
    gz_n, gb_n = kernel.backward(gs, gv, out_n[1], p, 3, True, delay=delay, backend="numba")
    torch.testing.assert_close(gz_n, gz_t, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(gb_n, gb_t, rtol=1e-5, atol=1e-3)
    # a constant input's gradient, summed over the steps it was held, in the kernel (numba) or after it (torch)
    gz_t, _ = kernel.backward(gs, None, out_t[1], p, 3, False, delay=delay, backend="torch", const_from=2)
    gz_n, _ = kernel.backward(gs, None, out_n[1], p, 3, False, delay=delay, backend="numba", const_from=2)
    assert gz_n.shape == (b, 1, n)
    torch.testing.assert_close(gz_n, gz_t, rtol=1e-5, atol=1e-3)
    assert gz_n.abs().sum() > 0


@pytest.mark.skipif(not kernel.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("const,delay", [(False, True), (True, False)])
def test_numba_kernel_split_over_neurons_equals_torch_reference(const, delay):
    """One inference, more neurons than a slice: the kernel splits it over two threads (one job per slice of
    neurons); spikes, voltages, currents and the wrap/saturation count stay the reference's, bit for bit."""
    rng = np.random.default_rng(5)
    b, n, s = 1, 5000, 20
    z = torch.from_numpy(np.round(rng.normal(0, 3000.0, (b, 1 if const else s, n)) * 64) / 64).float()
    p = _params(rng, n, big=True)
    resets = rng.random(s) < 0.2
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out_n = kernel.forward(z, const, 2, 15, s, p, resets, record_u=True, delay=delay, backend="numba")
    finally:
        torch.set_num_threads(threads)
    out_t = kernel.forward(z, const, 2, 15, s, p, resets, record_u=True, delay=delay, backend="torch")
    for a, c in zip(out_t[:3], out_n[:3]):
        assert torch.equal(a, c)
    assert out_t[3] == out_n[3] > 0 and out_n[0].sum() > 100


def _train_vs_emulator(model: SpikingQNet, payload: np.ndarray, path: Path) -> tuple[int, int]:
    """Every layer's spikes over its window and the readout voltage: training forward == emulator; and the
    one-call paths (dsqn.kernels.fused: acting, the emulator's small dense networks) == the layer-by-layer ones."""
    T = model.spec.timesteps
    x = torch.from_numpy(payload.astype(np.float32))
    with torch.no_grad():
        q, spikes, volt = model(x, return_spikes=True)  # layer by layer
        q_act = model(x)  # as acting runs it: one compiled call for dense networks
    with torch.enable_grad():
        q_grad = model(x)  # as the update runs it: layer by layer, differentiable
    assert torch.equal(q_act, q) and torch.equal(q_grad.detach(), q)
    net = read_netfile(export(model, path))
    emu = Emulator(net)
    v, windows, overflow = emu.infer(payload, T)
    for kw in ({"fused_path": False}, {"fused_path": False, "windowed": False}):  # window by window; all T + L steps
        v_lw, windows_lw, overflow_lw = emu.infer(payload, T, **kw)
        assert np.array_equal(v, v_lw) and overflow == overflow_lw
        assert all(np.array_equal(a, c) for a, c in zip(windows, windows_lw))
    active = 0
    for i, s in enumerate(spikes):
        sl = s.numpy().reshape(s.shape[0], -1, T)[..., 1:] > 0  # block outputs are delayed by one step
        assert np.array_equal(sl[..., i + 1 :], windows[i][..., : T - 2 - i]), f"layer {i} spikes differ"
        active += int(sl.sum())
    assert np.array_equal(volt[..., timing.readout_step(T)].numpy().astype(np.int64), v)
    np.testing.assert_array_equal(q.numpy(), net.readout.decode(v).astype(np.float32))
    return active, sum(overflow)


CONV = [{"type": "conv", "out": 4, "kernel": 3, "stride": 2}, {"type": "conv", "out": 6, "kernel": 3, "stride": 1},
        {"type": "dense", "out": 12}]


@pytest.mark.parametrize("case", ["pixels_conv", "large_threshold", "decays_0_and_1", "wrap_and_saturate", "integrators"])
def test_training_forward_equals_emulator(tmp_path, case):
    rng = np.random.default_rng(hash(case) % 1000)
    if case == "pixels_conv":  # 8-bit pixel payloads into a conv layer (float32 slayer loses bits here)
        model = make_net(seed=1, input_shape=(4, 12, 12), layers=CONV, n_actions=4, timesteps=10, threshold=1.0,
                         weight_gain=2.0, bias=[0.5, -0.25, 0.0, 1.0], input_unit=255)
        payload = rng.integers(0, 256, (3, 4, 12, 12))
    elif case == "large_threshold":
        model = make_net(seed=2, threshold=60.0, weight_gain=30.0, bias=[20.0, -10.0, 3.0], timesteps=16)
        payload = rng.integers(0, 256, (4, 8))
    elif case == "decays_0_and_1":
        model = make_net(seed=3, current_decay=0.0, voltage_decay=1.0, weight_gain=2.0, timesteps=8)
        payload = rng.integers(0, 100, (4, 8))
    elif case == "integrators":  # no leak at all: v grows until it saturates
        model = make_net(seed=4, current_decay=0.0, voltage_decay=0.0, threshold=500.0, weight_gain=8.0, timesteps=32,
                         input_unit=1)
        payload = rng.integers(0, 256, (3, 8))
    else:  # saturated weights, pixel-sized input, slow decays: u wraps and v saturates in the first layer
        model = make_net(seed=5, current_decay=0.001, voltage_decay=0.001, threshold=2000.0, weight_gain=1.0,
                         timesteps=12, input_unit=1)
        with torch.no_grad():
            model.blocks[0].synapse.weight.fill_(4.0)  # clipped to 254
        payload = rng.integers(200, 256, (3, 8))
    active, overflow = _train_vs_emulator(model, payload, tmp_path / "m.net")
    assert active > 10
    if case in ("wrap_and_saturate", "integrators"):
        assert overflow > 0, "the network should reach the 24-bit limits"


@pytest.mark.skipif(not kernel.HAVE_NUMBA, reason="numba not installed")
def test_acting_in_one_call_equals_the_layer_by_layer_forward_across_updates():
    """dsqn.kernels.fused (acting, evaluation, the target network) == the layer-by-layer forward at batch 1 and at a batch
    large enough for the parallel kernel, with an odd q_scale, and again after the optimizer changed the weights
    (the cached network is rebuilt)."""
    model = make_net(seed=11, layers=[{"type": "dense", "out": 64}, {"type": "dense", "out": 48}], n_actions=5,
                     timesteps=12, weight_gain=4.0, bias=[0.3, -1.2, 0.0, 2.5, -0.7], q_scale=0.37)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    assert model._fused_net() is not None
    try:
        for _ in range(3):
            for b in (1, 200):
                x = torch.from_numpy(rng.integers(0, 64, (b, 8)).astype(np.float32))
                with torch.no_grad():
                    model.fused_enabled = True
                    q_fused = model(x)
                    model.fused_enabled = False
                    q_layers = model(x)
                assert torch.equal(q_fused, q_layers)
                assert len(torch.unique(q_fused)) > b  # the readout moves: the comparison is not of constants
            model.fused_enabled = True
            loss = model(x).pow(2).mean()  # differentiable: layer by layer
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)


def test_emulator_windows_equal_the_full_run_with_biased_hidden_layers(tmp_path):
    """Hidden layers with a bias (netx allows it; our exports do not write one) spike before their window; those
    spikes must not matter, so computing each layer over its window only equals running all T + L steps."""
    model = make_net(seed=7, input_shape=(4, 12, 12), layers=CONV, n_actions=4, timesteps=10, weight_gain=2.0,
                     input_unit=255)
    net = read_netfile(export(model, tmp_path / "m.net"))
    rng = np.random.default_rng(3)
    for layer in net.layers[:-1]:
        layer.bias = rng.integers(-300, 900, layer.n_neurons)
    emu = Emulator(net)
    payload = rng.integers(0, 256, (2, 4, 12, 12))
    v, windows, _ = emu.infer(payload, 10)
    v_full, windows_full, _ = emu.infer(payload, 10, windowed=False)
    assert np.array_equal(v, v_full) and all(np.array_equal(a, c) for a, c in zip(windows, windows_full))
    early = emu.run(payload.reshape(2, -1, 1), reset_interval=10, reset_offset=timing.RESET_OFFSET, const_steps=10,
                    n_steps=14)
    assert early.traces[1].spikes[..., :2].any(), "a biased layer should spike before its window"


def test_dense_block_forward_is_exact_and_shaped_like_slayer():
    torch.manual_seed(0)
    block = Dense({"threshold": 0.5, "current_decay": 0.25, "voltage_decay": 0.125}, 6, 5, weight_scale=3)
    x = (torch.rand(2, 6, 9) > 0.5).float()
    s = block(x)
    assert s.shape == (2, 5, 9) and torch.equal(s[..., 0], torch.zeros(2, 5))  # delay_shift
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    w = quantize_8bit(block.synapse.weight)
    assert torch.equal(w * 64, torch.round(w * 64)) and (w * 64).abs().max() <= 256
    assert np.array_equal(weight_to_int(block.synapse.weight.detach().numpy()).reshape(5, 6, 1, 1, 1) / 64.0, w.detach().numpy())


def test_neuron_params_convert_once_each_way_and_broadcast():
    p = NeuronParams(current_decay=0.25, voltage_decay=np.array([0.0, 0.5, 1.0]), threshold=1.25, bias=-0.5)
    n = p.to_loihi("layer 0")
    assert int(n.i_decay) == 1024 and n.v_decay.tolist() == [0, 2048, 4096] and int(n.vth_mant) == 80 and int(n.bias_mant) == -32
    keep_u, keep_v, bias, vth = n.per_neuron(3)
    assert keep_u.tolist() == [3072] * 3 and keep_v.tolist() == [4096, 2048, 0] and bias.tolist() == [-2048] * 3
    assert vth.tolist() == [80 << 6] * 3
    back = n.to_float()
    assert back.current_decay == 0.25 and back.threshold == 1.25 and back.bias == -0.5
    assert np.array_equal(back.to_loihi().v_decay, n.v_decay)
    assert LoihiNeuron(1, 2, 3).keep_u == DECAY_SCALE - 1


@pytest.mark.parametrize("kw,needle", [({"current_decay": 1.5}, "current_decay 1.5"), ({"voltage_decay": -0.1}, "voltage_decay"),
                                       ({"threshold": 5000.0}, "threshold 5000"), ({"threshold": 0.001}, "threshold"),
                                       ({"bias": 100.0}, "bias mantissa 6400"), ({"threshold": float("nan")}, "not a finite")])
def test_out_of_range_parameters_name_the_layer_and_the_value(kw, needle):
    with pytest.raises(ValueError, match="layer 3") as info:
        NeuronParams(**kw).to_loihi("layer 3")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_first_layer_threshold_beyond_17_bits_is_refused_at_build():
    spec = NetSpec(input_shape=[8], layers=[{"type": "dense", "out": 4}], n_actions=2, threshold=16.0, input_unit=255)
    with pytest.raises(ValueError, match="layer 0: threshold 4080"):
        SpikingQNet(spec)


def test_timing_rules():
    T, L = 8, 3
    assert [timing.reset_step(i, T) for i in range(L)] == [1, 2, 3]
    assert timing.reset_mask(2, 20, T).nonzero()[0].tolist() == [3, 11, 19]
    assert timing.window(1, T) == slice(2, 10) and timing.inference_steps(T, L) == 11
    assert timing.readout_active_steps(T, L) == T - L
    with pytest.raises(ValueError, match="must exceed"):
        timing.check_timesteps(3, 3)


def test_export_writes_every_value_inside_its_loihi_field(tmp_path):
    model = make_net(seed=6, bias=[0.5, -0.25, 0.125])
    path = export(model, tmp_path / "m.net")
    with h5py.File(path) as f:
        for i in range(1, len(f["layer"])):
            g = f[f"layer/{i}"]
            assert 1 <= int(g["neuron/vThMant"][()]) <= VTH_MANT_MAX
            assert 0 <= int(g["neuron/iDecay"][()]) <= DECAY_SCALE and 0 <= int(g["neuron/vDecay"][()]) <= DECAY_SCALE
    net = read_netfile(path)
    assert net.layers[-1].vth_mant == VTH_MANT_MAX and net.timesteps == 8 and net.reset_interval == 8
    assert net.reset_offset == timing.RESET_OFFSET and net.readout.scale == 4.0
    meta_text = str(net.meta)
    assert "reset_interval" not in meta_text and "divisor" not in meta_text and "train_config" not in meta_text


def test_backward_is_finite_and_reaches_every_weight():
    model = make_net(seed=7, weight_gain=2.0)
    x = torch.randint(0, 60, (5, 8)).float()
    q = model(x)
    (q * torch.randn_like(q)).sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("scale", [40.0, 5000.0])
@pytest.mark.parametrize("const", [False, True])
def test_triton_kernel_equals_torch_reference_on_cuda(scale, const):
    from dsqn.kernels import neuron_triton

    if not neuron_triton.available():
        pytest.skip("Triton 3 not installed (torch 2.3 ships Triton 2.3; CUDA then runs the torch loop)")
    rng = np.random.default_rng(int(scale) + const)
    b, n, s = 5, 300, 24
    z = torch.from_numpy(np.round(rng.normal(0, scale, (b, 1 if const else s, n)) * 64) / 64).float()
    p = _params(rng, n, big=scale > 100)
    resets = rng.random(s) < 0.2
    ref = kernel.forward(z, const, 2, 19, s, p, resets, record_u=True, backend="torch")
    gpu = kernel.forward(z.cuda(), const, 2, 19, s, p, resets, record_u=True, backend="triton")
    for a, c in zip(ref[:3], gpu[:3]):
        assert torch.equal(a, c.cpu())
    assert ref[3] == gpu[3]
    gs, gv = torch.randn(b, s, n), torch.randn(b, s, n)
    gz_t, gb_t = kernel.backward(gs, gv, ref[1], p, 3, True, backend="torch")
    gz_g, gb_g = kernel.backward(gs.cuda(), gv.cuda(), gpu[1], p, 3, True, backend="triton")
    ref_d = kernel.forward(z, const, 2, 19, s, p, resets, delay=True, backend="torch")
    gpu_d = kernel.forward(z.cuda(), const, 2, 19, s, p, resets, delay=True, backend="triton")
    assert torch.equal(ref_d[0], gpu_d[0].cpu())
    gz_td, _ = kernel.backward(gs, None, ref_d[1], p, 0, False, delay=True, backend="torch")
    gz_gd, _ = kernel.backward(gs.cuda(), None, gpu_d[1], p, 0, False, delay=True, backend="triton")
    torch.testing.assert_close(gz_gd.cpu(), gz_td, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(gz_g.cpu(), gz_t, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(gb_g.cpu(), gb_t, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_training_forward_on_cuda_equals_cpu():
    """The same network on the GPU (Triton, TF32 off) gives the CPU's Q-values and gradients' signs."""
    from dsqn.layers.exact import exact_matmul_settings

    exact_matmul_settings()
    model = make_net(seed=1, input_shape=(4, 12, 12), layers=CONV, n_actions=4, timesteps=10, weight_gain=2.0,
                     bias=[0.5, -0.25, 0.0, 1.0], input_unit=255)
    x = torch.randint(0, 256, (6, 4, 12, 12)).float()
    with torch.no_grad():
        q_cpu, s_cpu, v_cpu = model(x, return_spikes=True)
        model.cuda()
        q_gpu, s_gpu, v_gpu = model(x.cuda(), return_spikes=True)
    assert torch.equal(q_cpu, q_gpu.cpu()) and torch.equal(v_cpu, v_gpu.cpu())
    assert all(torch.equal(a, b.cpu()) for a, b in zip(s_cpu, s_gpu))


def test_format_1_files_still_load(tmp_path):
    """Files exported before format 2 (T also as reset_interval, readout.q_scale/divisor, readout vThMant 2**17)."""
    import json

    from dsqn.files.format import ATTR_META, ATTR_VERSION

    path = export(make_net(seed=8), tmp_path / "old.net")
    with h5py.File(path, "r+") as f:
        meta = json.loads(f.attrs[ATTR_META])
        meta["reset_interval"] = meta["timesteps"]
        meta["readout"] = {"layer": 2, "state": "v", "q_scale": 4.0, "divisor": meta["timesteps"] * 4096}
        f.attrs[ATTR_META] = json.dumps(meta)
        f.attrs[ATTR_VERSION] = 1
        del f["layer/3/neuron/vThMant"]
        f["layer/3/neuron/vThMant"] = 1 << 17
    net = read_netfile(path)
    assert net.readout.scale == 4.0 and net.reset_interval == net.timesteps == 8 and net.layers[-1].vth_mant == 1 << 17
    assert net.readout.decode(np.array([8 * 4096])) == 4.0


def test_triton_kernels_in_the_interpreter_equal_the_torch_reference():
    """The CUDA kernels' logic, checked without a GPU: Triton's interpreter runs them on the CPU."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton not installed (the core lane installs it)")
    import triton

    if int(triton.__version__.split(".")[0]) < 3:
        pytest.skip(f"Triton {triton.__version__} (torch 2.3's): the kernels need Triton 3")
    script = Path(__file__).with_name("triton_interpret_check.py")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and r.stdout.strip().endswith("ALL OK"), r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.parametrize("regime", ["binary", "pixels", "wide"])
def test_exact_product_equals_the_float64_product_past_float32s_exact_range(regime):
    """exact.exact_product: spikes in one float32 product; 8-bit pixels whose sums pass 2**24 as two float32
    products of their 4-bit halves; wider payloads in float64 -- each equal to the exact (float64) result."""
    from dsqn.layers.exact import exact_operands, exact_product

    g = torch.Generator().manual_seed(0)
    w = torch.randint(-256, 255, (8, 8, 8, 8), generator=g).float()  # fan-in 512, weight integers at their extremes
    w[:, :, :4] = -256
    hi = {"binary": 2, "pixels": 256, "wide": 4096}[regime]
    x = torch.randint(0, hi, (3, 8, 84, 84), generator=g).float()
    x[:, :, :8, :8] = hi - 1  # one window at the maximum: |sum| reaches 512 * 255 * 256 > 2**24
    conv = lambda x_, w_: F.conv2d(x_, w_, stride=4)  # noqa: E731
    got = exact_product(conv, x, w, 512, regime == "binary")
    assert got.dtype == (torch.float32 if regime == "binary" else torch.float64)
    assert torch.equal(got.double(), conv(x.double(), w.double()))
    assert len(exact_operands(x, 512, regime == "binary") or []) == {"binary": 1, "pixels": 2, "wide": 0}[regime]
    if regime == "pixels":  # the split is needed: one float32 product is not exact here
        assert not torch.equal(conv(x, w).double(), conv(x.double(), w.double()))
