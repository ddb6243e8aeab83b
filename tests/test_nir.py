"""NIR export (dsqn-export --format nir) and its round trip through snnTorch's NIR importer.

Exact checks: node types and shapes, every CubaLIF parameter against the fixed-point conversion of the layer's
Loihi integers, the weights against the NetX file of the same model, the metadata after nir.read, the literal
graph (with its Delay nodes, simulated here by NIR's equations) against the delay-free graph and the chip's
integers. Closed loop: a small trained CartPole policy imported by snnTorch chooses the model's action (= the
emulator's) on >= 99 % of steps.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from support import captured_call, make_net

from dsqn.encoding import Encoder
from dsqn.export.exporter import export_model, network_meta
from dsqn.files.netfile_read import read_netfile
from dsqn.kernels.fixed_point import DECAY_SCALE, READOUT_VTH_MANT, STATE_SCALE, WEIGHT_SCALE

nir = pytest.importorskip("nir")  # a core dependency: present in both lanes
from dsqn.export import nir_export  # noqa: E402
from dsqn.export.nir_export import DT, NO_LEAK, read_nir, without_delays, write_nir  # noqa: E402

ENC = Encoder(obs_scale=(1.0, 1.0, 1.0, 1.0))


def _meta(model, env_id: str = "CartPole-v1") -> dict:  # type: ignore[no-untyped-def]
    return network_meta(model.spec, ENC, env_id, "ab" * 32, {"train_final_eval": {"mean": 1.5}})


def _write(model, path: Path):  # type: ignore[no-untyped-def]
    write_nir(model, ENC, path, _meta(model))
    return read_nir(path)


def _call(main, argv: list[str]) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    return captured_call(main, argv)[:3]


def _one_line(result: tuple[int, str, str], prog: str, *needles: str) -> str:
    code, _, err = result
    lines = [x for x in err.splitlines() if x.strip() and "CUDA" not in x]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# --------------------------------------------------------------------------------------------------------------
# the graph: nodes, shapes, parameters, metadata
# --------------------------------------------------------------------------------------------------------------
def test_dense_graph_nodes_parameters_and_metadata_round_trip(tmp_path):
    model = make_net(seed=1, bias=[0.5, -0.25, 1.015625], current_decay=0.25, voltage_decay=0.125)
    graph = _write(model, tmp_path / "m.nir")
    T, L = model.spec.timesteps, model.spec.n_layers
    assert L == 3
    types = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert types == {"input": "Input", "layer0_synapse": "Linear", "layer0_delay": "Delay", "layer0_neuron": "CubaLIF",
                     "layer1_synapse": "Linear", "layer1_delay": "Delay", "layer1_neuron": "CubaLIF",
                     "readout_synapse": "Linear", "readout_delay": "Delay", "readout_bias": "Affine",
                     "readout_bias_delay": "Delay", "readout_neuron": "CubaLIF", "output": "Output"}
    assert sorted(graph.edges) == sorted([
        ("input", "layer0_synapse"), ("layer0_synapse", "layer0_delay"), ("layer0_delay", "layer0_neuron"),
        ("layer0_neuron", "layer1_synapse"), ("layer1_synapse", "layer1_delay"), ("layer1_delay", "layer1_neuron"),
        ("layer1_neuron", "readout_synapse"), ("readout_synapse", "readout_delay"), ("readout_delay", "readout_neuron"),
        ("input", "readout_bias"), ("readout_bias", "readout_bias_delay"), ("readout_bias_delay", "readout_neuron"),
        ("readout_neuron", "output")])
    n = graph.nodes
    assert list(n["input"].output_type["output"]) == [8]
    # weights: the NetX file's integers over 64, node for node
    net = read_netfile(export_model_file(model, tmp_path / "m.net"))
    for i, key in enumerate(["layer0_synapse", "layer1_synapse", "readout_synapse"]):
        np.testing.assert_array_equal(n[key].weight * WEIGHT_SCALE, net.layers[i].weight.reshape(n[key].weight.shape))
        assert np.all(n[key].weight * WEIGHT_SCALE == np.rint(n[key].weight * WEIGHT_SCALE))
    # per-neuron CubaLIF arrays from the Loihi integers: iDecay 1024, vDecay 512, vThMant 64 * 32 and 64
    for key, shape, vth_mant in (("layer0_neuron", (24,), 64 * 32), ("layer1_neuron", (16,), 64)):
        c = n[key]
        i_dec, v_dec = 1024, 512
        layer = net.layers[int(key[5])]
        assert (layer.i_decay, layer.v_decay, layer.vth_mant) == (i_dec, v_dec, vth_mant)
        for name in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
            assert getattr(c, name).shape == shape, name
        np.testing.assert_array_equal(c.tau_syn, np.full(shape, DT / (i_dec / DECAY_SCALE)))
        np.testing.assert_array_equal(c.w_in, np.full(shape, DECAY_SCALE / i_dec))
        np.testing.assert_array_equal(c.tau_mem, np.full(shape, DT / (v_dec / DECAY_SCALE)))
        np.testing.assert_array_equal(c.r, np.full(shape, DECAY_SCALE / v_dec))
        np.testing.assert_array_equal(c.v_threshold, np.full(shape, vth_mant / WEIGHT_SCALE))
        assert not c.v_leak.any() and not c.v_reset.any()
        # forward Euler at dt: the kept fractions are the chip's (4096 - decay) / 4096, the input gain exactly 1
        np.testing.assert_array_equal(1 - DT / c.tau_syn, (DECAY_SCALE - i_dec) / DECAY_SCALE)
        np.testing.assert_allclose(c.w_in * DT / c.tau_syn, 1.0, rtol=1e-15)
    ro = n["readout_neuron"]
    np.testing.assert_array_equal(ro.tau_syn, np.full(3, DT))  # iDecay 4096: u = this step's input
    np.testing.assert_array_equal(ro.tau_mem, np.full(3, DT * NO_LEAK))  # vDecay 0: no leak
    assert np.all(1 - DT / ro.tau_mem == 1.0) and np.all(ro.r * DT / ro.tau_mem == 1.0)
    np.testing.assert_array_equal(ro.v_threshold, np.full(3, READOUT_VTH_MANT / WEIGHT_SCALE))
    np.testing.assert_array_equal(n["readout_bias"].bias, [0.5, -0.25, 1.015625])  # bias_mant / 64
    assert not n["readout_bias"].weight.any() and n["readout_bias"].weight.shape == (3, 8)
    for key, steps in (("layer0_delay", 1), ("layer1_delay", 1), ("readout_delay", 1), ("readout_bias_delay", L)):
        np.testing.assert_array_equal(n[key].delay, np.full(n[key].delay.shape, steps * DT))
    md = graph.metadata
    assert md["dsqn_format"] == "dsqn-nir" and int(md["dsqn_format_version"]) == 1 and float(md["dt"]) == DT
    assert int(md["timesteps"]) == T == int(md["steps_per_inference"]) and int(md["steps_without_delays"]) == T - L
    assert md["readout_node"] == "readout_neuron" and md["readout_kind"] == "q" and md["encoding"] == "two_neuron"
    assert float(md["readout_scale"]) == 4.0 and int(md["readout_divisor"]) == T and md["env_id"] == "CartPole-v1"
    assert Encoder.from_dict(json.loads(md["encoder_json"])) == ENC
    stored, want = json.loads(md["dsqn_meta_json"]), json.loads(json.dumps(_meta(model)))
    assert stored.pop("created") and want.pop("created")
    assert stored == want


def export_model_file(model, path: Path) -> Path:  # type: ignore[no-untyped-def]
    export_model(model, ENC, path, _meta(model))
    return path


def test_heterogeneous_neurons_are_per_neuron_arrays_and_snntorch_refusal_is_one_line(tmp_path):
    """--membrane-jitter / --param-groups give each neuron its own integers: the CubaLIF arrays carry them neuron by
    neuron; snnTorch 1.0's importer takes one threshold per layer and says so (a UserError, one line)."""
    from dsqn.errors import UserError
    from dsqn.kernels.fixed_point import LoihiNeuron

    model = make_net(seed=1)
    group = np.arange(24) % 3
    grouped = LoihiNeuron(i_decay=np.array([1024, 2048, 4096]), v_decay=np.array([512, 0, 1024]),
                          vth_mant=np.array([64 * 32, 64 * 40, 64 * 48]))
    model.blocks[0].neuron.set_groups(group, grouped)
    c = _write(model, tmp_path / "m.nir").nodes["layer0_neuron"]
    i_dec, v_dec, vth = grouped.i_decay[group], grouped.v_decay[group], grouped.vth_mant[group]
    np.testing.assert_array_equal(c.tau_syn, DT / (i_dec / DECAY_SCALE))
    np.testing.assert_array_equal(c.w_in, DECAY_SCALE / i_dec)
    np.testing.assert_array_equal(c.tau_mem, np.where(v_dec > 0, DT / (np.maximum(v_dec, 1) / DECAY_SCALE), DT * NO_LEAK))
    np.testing.assert_array_equal(c.r, np.where(v_dec > 0, DECAY_SCALE / np.maximum(v_dec, 1), NO_LEAK))
    np.testing.assert_array_equal(c.v_threshold, vth / WEIGHT_SCALE)
    if importlib.util.find_spec("snntorch") is not None:
        from dsqn.export.nir_check import SnnTorchNetwork

        with pytest.raises(UserError, match="snnTorch's importer refused the graph"):
            SnnTorchNetwork(tmp_path / "m.nir")


# --------------------------------------------------------------------------------------------------------------
# the graph's meaning: NIR's equations (forward Euler at dt) with the Delay nodes = the chip's integers
# --------------------------------------------------------------------------------------------------------------
def _simulate(graph, x: np.ndarray, steps: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """NIR's equations in float64, forward Euler at the metadata's dt, Delay nodes as k-step buffers, every node from
    zero state, ``x`` on every step; the readout neuron's voltage after ``steps`` steps."""
    dt = float(graph.metadata["dt"])
    order = nir_export._topological(graph)
    srcs = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
    state: dict = {}
    for _ in range(steps):
        out: dict = {}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                out[name] = x
                continue
            inp = sum(out[s] for s in srcs[name])
            if isinstance(node, nir.Linear):
                out[name] = node.weight @ inp
            elif isinstance(node, nir.Affine):
                out[name] = node.weight @ inp + node.bias
            elif isinstance(node, nir.Conv2d):
                w = torch.from_numpy(node.weight)
                out[name] = torch.nn.functional.conv2d(torch.from_numpy(inp)[None], w, torch.from_numpy(node.bias),
                                                       stride=tuple(node.stride), padding=tuple(node.padding))[0].numpy()
            elif isinstance(node, nir.Flatten):
                out[name] = inp.reshape(-1)
            elif isinstance(node, nir.Delay):
                k = int(np.rint(node.delay.reshape(-1)[0] / dt))
                buf = state.setdefault(name, [np.zeros_like(inp)] * k)
                buf.append(inp)
                out[name] = buf.pop(0)
            elif isinstance(node, nir.CubaLIF):
                i, v = state.get(name, (np.zeros_like(inp), np.zeros_like(inp)))
                i = (1 - dt / node.tau_syn) * i + (dt / node.tau_syn) * node.w_in * inp
                v = (1 - dt / node.tau_mem) * v + (dt / node.tau_mem) * (node.v_leak + node.r * i)
                z = v > node.v_threshold
                v = np.where(z, node.v_reset, v)
                state[name] = (i, v)
                out[name] = z.astype(np.float64)
            elif isinstance(node, nir.Output):
                out[name] = inp
    return state["readout_neuron"][1]


def _model_voltage(model, payloads: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The model's readout voltage after step T - 1 in NIR units (Loihi state units / 4096)."""
    with torch.no_grad():
        _, _, v = model(torch.from_numpy(payloads.astype(np.float32)), return_spikes=True)
    return v[..., -1].double().numpy() / STATE_SCALE


IF_NET = {"current_decay": 1.0, "voltage_decay": 0.0}  # integrate-and-fire: the chip's decays truncate nothing


@pytest.mark.parametrize("conv", [False, True], ids=["dense", "conv"])
def test_graph_with_delays_and_delay_free_graph_equal_the_chips_integers(tmp_path, conv):
    """Where Loihi's decays truncate nothing (integrate-and-fire layers), NIR's equations are exact in float64: the
    literal graph run for T steps, and the graph without Delay nodes run for T - L steps, end with the chip's readout
    voltage exactly -- the delays, the step counts and the readout bias's L-step delay are all right."""
    rng = np.random.default_rng(3)
    if conv:
        model = make_net(seed=2, input_shape=(2, 9, 9), layers=[{"type": "conv", "out": 4, "kernel": 3, "stride": 2},
                         {"type": "dense", "out": 12}], n_actions=3, timesteps=8, bias=[0.25, -0.5, 0.0], **IF_NET)
        payloads = rng.integers(0, 6, size=(6, 2, 9, 9))
    else:
        model = make_net(seed=2, bias=[0.5, -0.25, 1.015625], **IF_NET)
        payloads = rng.integers(0, 256, size=(6, 8))
    graph = _write(model, tmp_path / "m.nir")
    flat, shift = without_delays(graph)
    T, L = model.spec.timesteps, model.spec.n_layers
    assert shift == L and not any(isinstance(node, nir.Delay) for node in flat.nodes.values())
    want = _model_voltage(model, payloads)
    assert np.abs(want).max() > 1.0 and len({tuple(r) for r in np.round(want, 6)}) == len(payloads)  # spikes reached it
    for p, w in zip(payloads, want):
        np.testing.assert_array_equal(_simulate(graph, p.astype(np.float64), T), w)
        np.testing.assert_array_equal(_simulate(flat, p.astype(np.float64), T - L), w)
    # one step more of the delay-free graph adds one more step of input and bias: the count matters
    assert not np.array_equal(_simulate(flat, payloads[0].astype(np.float64), T - L + 1), want[0])


def test_without_delays_refuses_unbalanced_graphs():
    w = np.eye(2)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}), "a": nir.Linear(weight=w),
                            "d": nir.Delay(delay=np.full(2, DT)), "b": nir.Linear(weight=w),
                            "output": nir.Output(output_type={"output": np.array([2])})},
                     edges=[("input", "a"), ("a", "d"), ("d", "b"), ("input", "b"), ("b", "output")], metadata={"dt": DT})
    with pytest.raises(ValueError, match="not balanced"):
        without_delays(g)


# --------------------------------------------------------------------------------------------------------------
# snnTorch's importer
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("conv", [False, True], ids=["dense", "conv"])
def test_snntorch_import_reproduces_the_chips_readout_voltage(tmp_path, conv):
    """snnTorch's own importer (float32), on integrate-and-fire layers where float is exact: the chip's voltage."""
    pytest.importorskip("snntorch")
    from dsqn.export.nir_check import SnnTorchNetwork

    rng = np.random.default_rng(5)
    if conv:
        model = make_net(seed=4, input_shape=(2, 9, 9), layers=[{"type": "conv", "out": 4, "kernel": 3, "stride": 2},
                         {"type": "dense", "out": 12}], bias=[0.25, -0.5, 0.0], **IF_NET)
        payloads = rng.integers(0, 6, size=(5, 2, 9, 9))
    else:
        model = make_net(seed=4, bias=[0.5, -0.25, 1.015625], **IF_NET)
        payloads = rng.integers(0, 256, size=(5, 8))
    _write(model, tmp_path / "m.nir")
    net = SnnTorchNetwork(tmp_path / "m.nir")
    assert net.steps == model.spec.timesteps - model.spec.n_layers
    want = _model_voltage(model, payloads)
    got = np.stack([net.voltage(p) for p in payloads])
    np.testing.assert_array_equal(got, want)
    with torch.no_grad():
        q = model(torch.from_numpy(payloads.astype(np.float32))).double().numpy()
    np.testing.assert_allclose(np.stack([net.q(p) for p in payloads]), q, rtol=1e-6, atol=1e-6)


def test_snntorch_where_loihi_truncates_agrees_on_the_action_not_on_every_bit(tmp_path):
    """T = 16 with decays 0.25 / 0.125: Loihi truncates decayed states toward zero in 1/4096 units, float32 rounds, so
    some Q values differ; the greedy action still agrees on >= 99 % of random inputs (measured: 99.9 % of 1000)."""
    pytest.importorskip("snntorch")
    from dsqn.export.nir_check import SnnTorchNetwork

    model = make_net(seed=7, timesteps=16, current_decay=0.25, voltage_decay=0.125, bias=[0.1, -0.2, 0.3])
    _write(model, tmp_path / "m.nir")
    net = SnnTorchNetwork(tmp_path / "m.nir")
    payloads = np.random.default_rng(0).integers(0, 120, size=(400, 8))
    with torch.no_grad():
        q = model(torch.from_numpy(payloads.astype(np.float32))).double().numpy()
    q_nir = np.stack([net.q(p) for p in payloads])
    identical = np.all(q == q_nir, axis=1).mean()
    assert 0.5 < identical < 1.0  # float cannot follow every truncation, but most inferences come out bit for bit
    assert (q.argmax(1) == q_nir.argmax(1)).mean() >= 0.99
    assert np.abs(q - q_nir).max() < 0.1 * np.ptp(q)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A small CartPole policy trained for 3000 steps (~30 s of one core): it balances for ~100-300 steps."""
    from dsqn.train.cli import main as train_main

    d = tmp_path_factory.mktemp("nir_train")
    code, _, err = _call(train_main, ["--env-id", "CartPole-v1", "--total-steps", "3000", "--learning-starts", "500",
                                      "--eval-every", "1000", "--eval-episodes", "3", "--final-eval-episodes", "3",
                                      "--seed", "1", "--no-progress", "--out", str(d / "run")])
    assert code == 0, err
    return d / "run" / "model.pt"


def test_closed_loop_snntorch_chooses_the_emulators_action(trained, tmp_path):
    """dsqn-export --format nir, snnTorch's importer, closed loop on CartPole: the same action as the model (= the
    emulator on the NetX file, bit for bit) on >= 99 % of steps."""
    pytest.importorskip("snntorch")
    from dsqn.export.cli import main as export_main
    from dsqn.export.nir_check import main as check_main

    out = tmp_path / "policy.nir"
    code, stdout, err = _call(export_main, [str(trained), "--format", "nir", "-o", str(out)])
    assert code == 0, err
    assert f"wrote {out}" in stdout and "readout_neuron" in stdout
    assert [p.name for p in tmp_path.iterdir()] == ["policy.nir"]  # no temporary file left
    # the measurement, by the command a user runs (the imported network drives; the model is asked on every step)
    code, stdout, err = _call(check_main, [str(trained), "--nir", str(out), "--episodes", "3", "--max-steps", "200"])
    assert code == 0, err
    print(stdout)
    m = re.search(r"same action on (\d+)/(\d+) = ", stdout)
    assert m, stdout
    same, steps = int(m.group(1)), int(m.group(2))
    assert steps >= 150, stdout  # a trained policy: episodes last (an untrained one falls within ~10 steps)
    assert same / steps >= 0.99, stdout


# --------------------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, no output
# --------------------------------------------------------------------------------------------------------------
def test_export_nir_bad_input_is_one_line_and_leaves_no_file(tmp_path, trained, monkeypatch):
    from dsqn.export.cli import main as export_main

    _one_line(_call(export_main, [str(tmp_path / "missing.pt"), "--format", "nir"]), "dsqn-export", "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    _one_line(_call(export_main, [str(junk), "--format", "nir"]), "dsqn-export", "junk.pt")
    _one_line(_call(export_main, [str(trained), "--format", "onnx"]), "dsqn-export", "--format")
    _one_line(_call(export_main, [str(trained), "--format", "nir", "-o", str(tmp_path / "nodir" / "x.nir")]), "dsqn-export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt"]

    # a write that fails halfway (a full disk): one line, neither the output nor a temporary file is left
    def half_write(filename, graph, **kw):  # type: ignore[no-untyped-def]
        Path(filename).write_bytes(b"\x89HDF\r\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nir, "write", half_write)
    out = tmp_path / "full.nir"
    _one_line(_call(export_main, [str(trained), "--format", "nir", "-o", str(out)]), "dsqn-export", "full.nir",
              "No space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt"]


def test_nir_check_refuses_damaged_files_in_one_line(tmp_path, trained, monkeypatch):
    """python -m dsqn.export.nir_check --nir reads the user's file as dsqn-deploy reads .net files: first in a forked
    child (dsqn.files.netfile.check_read_in_child), so that a file that crashes libhdf5 is a one-line error too (issue 27);
    garbage, empty, truncated, damaged and foreign files: one line naming the file, exit 2."""
    import os
    import signal

    from dsqn.export import nir_check
    from dsqn.export.cli import main as export_main

    good = tmp_path / "good.nir"
    assert _call(export_main, [str(trained), "--format", "nir", "-o", str(good)])[0] == 0
    data = good.read_bytes()
    damaged = bytearray(data)
    at = data.index(b"GCOL")  # the global heap holding the variable-length strings: its signature overwritten
    damaged[at:at + 4] = b"XXXX"
    foreign = tmp_path / "foreign.nir"
    nir.write(str(foreign), nir.NIRGraph.from_list(nir.Linear(weight=np.eye(2))))
    cases = {"garbage.nir": b"garbage " * 100, "empty.nir": b"", "truncated.nir": data[: len(data) // 2],
             "damaged.nir": bytes(damaged)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    needles = {"garbage.nir": "not a readable NIR graph", "empty.nir": "not a readable NIR graph",
               "truncated.nir": "not a readable NIR graph", "damaged.nir": "not a readable NIR graph",
               "foreign.nir": "a NIR graph, but not one written by dsqn-export"}
    for name, needle in needles.items():
        _one_line(_call(nir_check.main, [str(trained), "--nir", str(tmp_path / name), "--episodes", "1"]),
                  "nir_check", f"{tmp_path / name}: {needle}")
    # A file on which libhdf5 itself crashes: the reader is killed by SIGSEGV in the forked pre-read (only there:
    # without the pre-read, this process would go on and read it as a good file)
    parent, read = os.getpid(), nir_check.read_nir

    def crashing_read(path):  # type: ignore[no-untyped-def]
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGSEGV)
        return read(path)

    monkeypatch.setattr(nir_check, "read_nir", crashing_read)
    _one_line(_call(nir_check.main, [str(trained), "--nir", str(good), "--episodes", "1"]), "nir_check",
              f"{good}: damaged HDF5 file (the HDF5 library crashed reading it: SIGSEGV)")


def test_deploy_refuses_a_nir_file_and_names_the_tools_that_run_it(tmp_path):
    from dsqn.deploy.cli import main as deploy_main

    model = make_net(seed=0)
    path = tmp_path / "m.nir"
    _write(model, path)
    line = _one_line(_call(deploy_main, [str(path), "--backend", "emu"]), "dsqn-deploy", "m.nir is a NIR graph",
                     "snnTorch", "dsqn-export --format netx")
    assert "not a NetX file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nir"]  # no report written
    # the metadata check of read_nir: a NIR file from another tool is named as such
    foreign = tmp_path / "foreign.nir"
    nir.write(str(foreign), nir.NIRGraph.from_list(nir.Linear(weight=np.eye(2))))
    with pytest.raises(Exception, match="not one written by dsqn-export"):
        read_nir(foreign)
