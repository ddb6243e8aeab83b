"""Heterogeneous neurons (Akl et al. 2023) quantized into groups: the draw, the grouping, training forward = the
one-call path = the emulator on heterogeneous files, the CUBA_GROUPS file format and its refusals, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from support import call, export

from dsqn.deploy.cli import main as deploy_main
from dsqn.errors import UserError
from dsqn.export.cli import main as export_main
from dsqn.files.checkpoint import load_checkpoint, model_from_checkpoint
from dsqn.files.format import GROUPED_NEURON_TYPE
from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.emulator import Emulator
from dsqn.kernels.fixed_point import LoihiNeuron, NeuronParams, draw_neurons, group_neurons
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec
from dsqn.train.cli import main as train_main
from dsqn.train.runner import evaluate


def hetero_net(k: int, seed: int = 3, jitter: float = 0.3, gain: float = 3.0, bias: list[float] | None = None) -> SpikingQNet:
    spec = NetSpec(input_shape=[8], layers=[{"type": "dense", "out": 24}, {"type": "dense", "out": 16}], n_actions=3,
                   timesteps=8, threshold=0.5, current_decay=0.25, voltage_decay=0.125, input_unit=32, q_scale=2.0,
                   membrane_jitter=jitter, param_groups=k).with_drawn_neurons(seed)
    torch.manual_seed(seed)
    model = SpikingQNet(spec)
    with torch.no_grad():
        for block in model.blocks:
            block.synapse.weight.data *= gain
        if bias is not None:
            model.readout_bias.data[:] = torch.tensor(bias)
    return model


def test_draw_is_seeded_clipped_and_homogeneous_without_jitter():
    mean = NeuronParams(current_decay=0.9, voltage_decay=0.05, threshold=0.5)
    a = draw_neurons(mean, 1000, 0.5, np.random.default_rng([1, 0]), "layer 0")
    b = draw_neurons(mean, 1000, 0.5, np.random.default_rng([1, 0]), "layer 0")
    assert np.array_equal(a.current_decay, b.current_decay) and np.array_equal(a.threshold, b.threshold)
    assert a.current_decay.max() == 1.0 and a.voltage_decay.min() == 0.0  # clipped into the Loihi ranges
    assert a.threshold.min() >= 1 / 64
    assert abs(float(np.mean(a.threshold)) - 0.5) < 0.05 and 0.2 < float(np.std(a.threshold)) < 0.3
    spec = NetSpec(input_shape=[4], layers=[{"type": "dense", "out": 5}], n_actions=2)
    assert spec.with_drawn_neurons(7) is spec and SpikingQNet(spec).blocks[0].neuron.groups is None
    with pytest.raises(ValueError, match="membrane jitter -0.1"):
        draw_neurons(mean, 3, -0.1, np.random.default_rng(0), "layer 0")


def test_grouping_is_exact_where_it_can_be_and_deterministic():
    n = LoihiNeuron(i_decay=np.array([100, 100, 2000, 2000, 2010]), v_decay=np.array([5, 5, 50, 50, 50]),
                    vth_mant=np.array([30, 30, 90, 90, 96]))
    group, g = group_neurons(n, 5, 3)  # three distinct triples, three groups: every neuron keeps its values
    assert np.array_equal(g.i_decay[group], n.i_decay) and np.array_equal(g.vth_mant[group], n.vth_mant)
    group, g = group_neurons(n, 5, 2)
    assert group.tolist() == [0, 0, 1, 1, 1]
    assert g.i_decay.tolist() == [100, 2003] and g.v_decay.tolist() == [5, 50] and g.vth_mant.tolist() == [30, 92]
    group, g = group_neurons(n, 5, 1)  # one group: the rounded mean
    assert group.tolist() == [0] * 5 and g.i_decay.tolist() == [1242] and g.vth_mant.tolist() == [67]
    with pytest.raises(ValueError, match="6 param groups for a layer of 5 neurons"):
        group_neurons(n, 5, 6)
    spec = hetero_net(4).spec
    assert [len(layer["i_decay"]) for layer in spec.neuron_groups] == [4, 4]
    assert spec.neuron_groups == hetero_net(4).spec.neuron_groups  # the same seed, the same groups


@pytest.mark.parametrize("k", [0, 1, 3])
def test_training_forward_equals_fused_and_emulator(tmp_path: Path, k: int):
    """Layer-by-layer training forward = one-call path = emulator on the exported heterogeneous file, bit for bit."""
    model = hetero_net(k, bias=[0.25, -0.5, 0.0])
    path = export(model, tmp_path / "h.net")
    net = read_netfile(path)
    assert all(layer.heterogeneous for layer in net.layers[:-1]) and not net.layers[-1].heterogeneous
    for i, block in enumerate(model.neuron_blocks()):
        assert np.array_equal(net.layers[i].neuron().vth_mant, block.neuron.loihi().vth_mant)
    if k:
        assert [int(np.unique(layer.group).size) for layer in net.layers[:-1]] == [k, k]
    x = torch.from_numpy(np.random.default_rng(k).integers(0, 200, (40, 8)).astype(np.float32))
    model.fused_enabled = False
    with torch.no_grad():
        q, spikes, v = model(x, return_spikes=True)
    v_layer = v[..., 7].numpy().astype(np.int64)
    model.fused_enabled = True
    v_fused = model.readout_voltage(x)
    v_emu, windows, _ = Emulator(net).infer(x.numpy().astype(np.int64), 8)
    assert np.array_equal(v_layer, v_emu) and np.array_equal(v_fused, v_emu)
    for i, s in enumerate(spikes):  # training's delayed spikes = the emulator's pipelined windows (test_exactness)
        sl = s.numpy()[..., 1:] > 0  # the block output is delayed by one step; layer i is active from step i + 1
        assert np.array_equal(sl[..., i + 1:], windows[i][..., : 8 - 2 - i]), i
    assert 0.1 < float(spikes[0].mean()) < 0.9 and 0.05 < float(spikes[1].mean()) < 0.95


def test_heterogeneous_file_format_and_refusals(tmp_path: Path):
    path = export(hetero_net(3), tmp_path / "h.net")
    with h5py.File(path, "r") as f:
        n = f["layer/1/neuron"]
        assert n["type"][()].decode() == GROUPED_NEURON_TYPE and int(n["groupsVersion"][()]) == 1
        assert n["iDecay"].shape == (3,) and n["group"].shape == (24,)

    def damaged(name: str, edit) -> Path:  # type: ignore[no-untyped-def]
        p = tmp_path / name
        p.write_bytes(path.read_bytes())
        with h5py.File(p, "a") as f:
            edit(f["layer/1/neuron"])
        return p

    def replace(key: str, value):  # type: ignore[no-untyped-def]
        def edit(g):  # type: ignore[no-untyped-def]
            del g[key]
            if value is not None:
                g.create_dataset(key, data=value)
        return edit

    cases = [
        ("short.net", replace("group", np.zeros(23, np.int32)), "layer 1/neuron/group: 23 entries for 24 neurons"),
        ("index.net", replace("group", np.full(24, 3, np.int32)), "layer 1/neuron/group: group index 3 outside 0..2"),
        ("version.net", replace("groupsVersion", 2), "layer 1/neuron/groupsVersion: 2"),
        ("noversion.net", replace("groupsVersion", None), "layer 1/neuron/groupsVersion: missing"),
        ("vdecay.net", replace("vDecay", np.array([1, 2], np.int32)), "layer 1/neuron/vDecay: 2 values, expected one per group (3)"),
        ("range.net", replace("iDecay", np.array([1, 5000, 2], np.int32)), "layer 1/neuron/iDecay: 5000 outside 0..4096"),
    ]
    for name, edit, needle in cases:
        with pytest.raises(UserError) as exc:
            read_netfile(damaged(name, edit))
        assert needle in str(exc.value) and "\n" not in str(exc.value), (name, str(exc.value))


TINY = ["--env-id", "CartPole-v1", "--total-steps", "300", "--learning-starts", "100", "--eval-every", "150",
        "--eval-episodes", "2", "--final-eval-episodes", "2", "--hidden", "16", "16", "--batch-size", "16",
        "--no-progress", "--seed", "4", "--membrane-jitter", "0.2", "--param-groups", "4"]


def test_cli_trains_exports_and_deploys_a_grouped_network(tmp_path: Path):
    d = tmp_path / "run"
    assert call(train_main, [*TINY, "--out", str(d)]) == 0
    ckpt = load_checkpoint(d / "model.pt")
    spec = json.loads(ckpt["spec_json"])
    assert spec["membrane_jitter"] == 0.2 and spec["param_groups"] == 4
    assert [len(g["vth_mant"]) for g in spec["neuron_groups"]] == [4, 4]
    assert call(export_main, [str(d / "model.pt")]) == 0
    model, _, encoder, _ = model_from_checkpoint(ckpt, d / "model.pt")
    rep = tmp_path / "r.json"
    assert call(deploy_main, [str(d / "model.net"), "--backend", "emu", "--episodes", "2", "--seed", "9", "--report", str(rep)]) == 0
    assert json.loads(rep.read_text())["episodes"]["returns"] == evaluate(model, encoder, "CartPole-v1", 2, seed=9)
    # a resumed run keeps its neurons
    assert call(train_main, ["--resume", str(d / "model.pt"), "--total-steps", "400"]) == 0
    assert json.loads(load_checkpoint(d / "model.pt")["spec_json"])["neuron_groups"] == spec["neuron_groups"]


@pytest.mark.parametrize("args,needle", [
    (["--param-groups", "17"], "layer 0: --param-groups 17 is larger than the layer (16 neurons)"),
    (["--membrane-jitter", "-0.1"], "--membrane-jitter -0.1: must lie in [0, 1]"),
    (["--membrane-jitter", "nan"], "--membrane-jitter nan: not a finite number"),
    (["--membrane-jitter", "0", "--param-groups", "2"], "--param-groups 2: groups quantize heterogeneous neurons"),
    (["--param-groups", "-1"], "--param-groups -1: must not be negative"),
])
def test_bad_heterogeneity_options_are_one_line(tmp_path: Path, capsys, args: list[str], needle: str):
    assert call(train_main, [*TINY, *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()
