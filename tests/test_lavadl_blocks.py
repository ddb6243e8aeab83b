"""Our CUBA blocks against lava-dl's own ``slayer.block.cuba`` blocks with the same weights and parameters:
identical spikes and voltages where slayer is exact (float64), identical HDF5 groups, and surrogate gradients
equal to float tolerance; and Lava ``fixed_pt`` = training forward = emulator on networks slayer cannot run
exactly (24-bit wrap and saturation)."""


import h5py
import numpy as np
import pytest
import torch
from support import export, make_net

from dsqn.deploy.lava_backend import LavaNetwork
from dsqn.extras import import_lava_dl
from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.emulator import Emulator
from dsqn.kernels import timing
from dsqn.layers import cuba

pytestmark = pytest.mark.lava


def _slayer():  # type: ignore[no-untyped-def]
    return import_lava_dl("slayer")


NEURON = {"threshold": 0.75, "current_decay": 0.3, "voltage_decay": 0.1, "tau_grad": 0.05, "scale_grad": 3.0}


def _pair(kind: str, seed: int):  # type: ignore[no-untyped-def]
    slayer = _slayer()
    torch.manual_seed(seed)
    if kind == "dense":
        theirs = slayer.block.cuba.Dense(NEURON, 10, 7, weight_scale=4, delay_shift=True)
        torch.manual_seed(seed)
        ours = cuba.Dense(NEURON, 10, 7, weight_scale=4, delay_shift=True)
        x = (torch.rand(3, 10, 16) > 0.6).double()
    else:
        theirs = slayer.block.cuba.Conv(NEURON, 2, 3, 3, stride=2, padding=1, weight_scale=4, delay_shift=True)
        torch.manual_seed(seed)
        ours = cuba.Conv(NEURON, 2, 3, 3, stride=2, padding=1, weight_scale=4, delay_shift=True)
        ours.neuron.shape = (3, 4, 4)
        x = (torch.rand(3, 2, 7, 7, 16) > 0.6).double()
    return theirs, ours, x


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_blocks_equal_lava_dl_blocks(kind, tmp_path):
    theirs, ours, x = _pair(kind, seed=3)
    assert torch.equal(theirs.synapse.weight, ours.synapse.weight), "same initialisation from the same seed"
    assert sorted(theirs.state_dict()) == sorted(ours.state_dict())
    theirs.double()
    x_t, x_o = x.clone().requires_grad_(True), x.float().clone().requires_grad_(True)
    s_t = theirs(x_t)
    s_o = ours(x_o)
    assert torch.equal(s_t.float(), s_o) and s_o.sum() > 20
    # voltages: slayer's pre-reset voltage (float state / 4096) and ours (integer state units)
    x_tm = x.float().movedim(-1, 1)
    z = ours.synaptic_input(x_tm.reshape(3 * 16, *x_tm.shape[2:]), binary=True).reshape(3, 16, -1)
    _, v_slayer = theirs.neuron.dynamics(theirs.synapse(x))
    spikes, v_post = cuba.neuron_forward(z, ours.neuron.kernel_params(z.shape[-1]), 16)
    vs = (v_slayer.reshape(3, -1, 16).movedim(-1, 1) * 4096).round()  # slayer: pre-reset voltage, time last
    mask = spikes == 0  # where no spike reset it, the post-reset voltage is the pre-reset one
    assert torch.equal(vs[mask].float(), v_post[mask]) and mask.sum() > 100
    # surrogate gradients through time, to the input and the weights
    g = torch.randn(s_o.shape)
    (s_t * g.double()).sum().backward()
    (s_o * g).sum().backward()
    torch.testing.assert_close(x_o.grad.double(), x_t.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.synapse.weight.grad.double(), theirs.synapse.weight.grad, rtol=1e-4, atol=1e-6)
    # identical NetX groups
    with h5py.File(tmp_path / "b.h5", "w") as f:
        theirs.export_hdf5(f.create_group("theirs"))
        ours.export_hdf5(f.create_group("ours"))
        names: list[str] = []
        f["theirs"].visit(names.append)
        other: list[str] = []
        f["ours"].visit(other.append)
        assert sorted(names) == sorted(other)
        for name in names:
            a, b = f["theirs"][name], f["ours"][name]
            if isinstance(a, h5py.Dataset):
                assert np.array_equal(np.asarray(a[()]), np.asarray(b[()])), name


def test_flatten_and_readout_groups_match(tmp_path):
    slayer = _slayer()
    theirs = slayer.block.cuba.Flatten()
    theirs(torch.zeros(1, 3, 4, 5, 2))
    ours = cuba.Flatten([3, 4, 5])
    with h5py.File(tmp_path / "f.h5", "w") as f:
        theirs.export_hdf5(f.create_group("a"))
        ours.export_hdf5(f.create_group("b"))
        assert np.array_equal(f["a/shape"][()], f["b/shape"][()]) and f["a/type"][0] == f["b/type"][0]


def test_state_dict_of_a_lava_dl_built_network_loads_into_ours():
    """Checkpoints written while the network was built from lava-dl blocks load unchanged."""
    slayer = _slayer()
    torch.manual_seed(0)
    blocks = [slayer.block.cuba.Dense(NEURON, 8, 16, weight_scale=2), slayer.block.cuba.Dense(NEURON, 16, 4, weight_scale=2)]
    torch.manual_seed(0)
    mine = [cuba.Dense(NEURON, 8, 16, weight_scale=2), cuba.Dense(NEURON, 16, 4, weight_scale=2)]
    for a, b in zip(blocks, mine):
        b.load_state_dict(a.state_dict(), strict=True)


@pytest.mark.parametrize("case", ["wrap", "graded_pixels"])
def test_training_forward_equals_emulator_equals_lava(tmp_path, case):
    """Where slayer is not exact (float32 with pixel payloads; no 24-bit wrap or saturation), Lava still agrees
    with our training forward at every layer and step."""
    rng = np.random.default_rng(21)
    if case == "wrap":
        model = make_net(seed=9, current_decay=0.001, voltage_decay=0.001, threshold=2000.0, timesteps=12, input_unit=1,
                         bias=[1.0, -2.0, 0.5])
        with torch.no_grad():
            model.blocks[0].synapse.weight.fill_(4.0)
        payloads = rng.integers(200, 256, (2, 8))
    else:
        model = make_net(seed=10, input_shape=(2, 9, 9), n_actions=2, timesteps=10, weight_gain=2.0, input_unit=255,
                         layers=[{"type": "conv", "out": 3, "kernel": 3, "stride": 2}, {"type": "dense", "out": 10}],
                         bias=[0.5, -0.5])
        payloads = rng.integers(0, 256, (2, 2, 9, 9))
    path = export(model, tmp_path / "m.net")
    net = read_netfile(path)
    T = net.timesteps
    with LavaNetwork.from_netfile(net) as ln:
        infs = [ln.infer(p, record_state=True) for p in payloads]
    with torch.no_grad():
        q, spikes, volt = model(torch.from_numpy(payloads.astype(np.float32)), return_spikes=True)
    stream = np.repeat(payloads.reshape(len(payloads), -1), T, axis=0).T[None]
    res = Emulator(net).run(stream, reset_interval=T, reset_offset=net.reset_offset, record=True)
    assert sum(res.overflow) > 0 or case != "wrap"
    for k, inf in enumerate(infs):
        sl = slice(k * T, (k + 1) * T)
        for i in range(len(net.layers)):
            assert np.array_equal(inf.spikes[i], res.traces[i].spikes[0][:, sl]), f"inference {k} layer {i} spikes"
            assert np.array_equal(inf.u[i], res.traces[i].u[0][:, sl]), f"inference {k} layer {i} u"
            assert np.array_equal(inf.v[i], res.traces[i].v[0][:, sl]), f"inference {k} layer {i} v"
        for i, s in enumerate(spikes):
            trained = s[k].reshape(-1, T).numpy()[:, 1:] > 0
            assert np.array_equal(inf.spikes[i][:, i + 1 : T - 1], trained[:, i + 1 :]), f"inference {k} layer {i}"
        assert np.array_equal(inf.readout_v, volt[k, :, timing.readout_step(T)].numpy().astype(np.int64))
        np.testing.assert_array_equal(net.readout.decode(inf.readout_v).astype(np.float32), q[k].numpy())


def test_whole_q_network_forward_and_gradients_equal_the_lava_dl_network():
    """The Q-network built from our blocks and the same network from lava-dl's blocks (tests/support/lavadl_qnet.py,
    what dsqn trained with before): same initial weights from a seed, same Q (float64 slayer), gradients of every
    parameter within float tolerance."""
    from support.lavadl_qnet import LavaDlQNet

    from dsqn.layers.qnet import SpikingQNet
    from dsqn.layers.spec import NetSpec

    spec = NetSpec(input_shape=[2, 9, 9], layers=[{"type": "conv", "out": 4, "kernel": 3, "stride": 2}, {"type": "dense", "out": 12}],
                   n_actions=3, timesteps=8, threshold=0.5, current_decay=0.25, voltage_decay=0.125, input_unit=32,
                   q_scale=2.0, tau_grad=0.05, scale_grad=3.0)
    torch.manual_seed(4)
    ours = SpikingQNet(spec)
    torch.manual_seed(4)
    theirs = LavaDlQNet(spec)
    with torch.no_grad():
        theirs(torch.zeros(1, 2, 9, 9))  # slayer learns neuron shapes on the first pass
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    with torch.no_grad():
        for block in ours.neuron_blocks():
            block.synapse.weight.mul_(3)
        ours.readout_bias[:] = torch.tensor([0.5, -0.25, 0.125])
    theirs.load_state_dict(ours.state_dict())
    theirs.double()
    x = torch.randint(0, 60, (5, 2, 9, 9)).float()
    r = torch.randn(5, 3)
    q_ours, q_theirs = ours(x), theirs(x.double())
    assert torch.equal(q_ours.double(), q_theirs)
    (q_ours * r).sum().backward()
    (q_theirs * r.double()).sum().backward()
    checked = 0
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-4, atol=1e-6, msg=name)
            assert a.grad.abs().sum() > 0, name
            checked += 1
    assert checked == 4  # conv weight, dense weight, readout weight, readout bias
