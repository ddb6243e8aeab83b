"""Activity-regularised training (--synop-penalty, --rate-target; train/activity.py): the training-time estimate of
synaptic operations equals what the emulator (and Lava) count on the same payloads, its gradient reaches every
hidden layer, it is off bit for bit at 0, and a large penalty trains a network that the emulator counts fewer
synops for."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from support import call, export, make_net

from dsqn.deploy.closed_loop import make_policy, run_episodes
from dsqn.encoding import Encoder
from dsqn.envs import FINAL_EVAL_SEED, make_env
from dsqn.errors import UserError
from dsqn.export.cli import main as export_main
from dsqn.files.checkpoint import load_checkpoint
from dsqn.files.format import ATTR_META
from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.counters import Counter, ann_macs, synapse_counts
from dsqn.hw_sim.emulator import Emulator
from dsqn.layers.qnet import SpikingQNet
from dsqn.train.activity import ActivityPenalty
from dsqn.train.cli import main as train_main
from dsqn.train.config import make_config

TINY = ["--env-id", "CartPole-v1", "--total-timesteps", "300", "--learning-starts", "100", "--eval-every", "300",
        "--eval-episodes", "2", "--final-eval-episodes", "3", "--hidden", "16", "16", "--batch-size", "16",
        "--no-progress", "--seed", "5"]
TD3_TINY = ["--env-id", "Pendulum-v1", "--total-timesteps", "300", "--learning-starts", "100", "--eval-every", "150",
            "--eval-episodes", "2", "--final-eval-episodes", "2", "--eval-max-steps", "40", "--hidden", "24", "16",
            "--critic-hidden", "32", "32", "--batch-size", "32", "--checkpoint-every", "150", "--no-progress", "--seed", "3"]
BIG_PENALTY = "10"

CONV_LAYERS = [{"type": "conv", "out": 4, "kernel": 3, "stride": 2}, {"type": "conv", "out": 5, "kernel": 2, "stride": 1},
               {"type": "dense", "out": 12}]


def nets() -> dict[str, tuple[SpikingQNet, np.ndarray]]:
    """A dense and a conv network (strides, borders) with sparse graded payloads (zeros are no input events)."""
    rng = np.random.default_rng(0)
    out = {}
    for name, model, shape in (("dense", make_net(seed=1, threshold=0.5), (8,)),
                               ("conv", make_net(seed=2, input_shape=(2, 9, 9), layers=CONV_LAYERS, threshold=0.5), (2, 9, 9))):
        payloads = rng.integers(0, 80, size=(12, *shape))
        payloads[payloads < 30] = 0
        out[name] = (model, payloads)
    return out


def emulator_counts(path: Path, payloads: np.ndarray) -> Counter:
    """What dsqn-deploy's emulator backend counts (deploy/closed_loop.py's EmuPolicy): one inference per payload."""
    net = read_netfile(path, require_meta=False)
    emu, counter = Emulator(net), Counter(net.layers, 8)
    for p in payloads:
        _, windows, _ = emu.infer(p, 8)
        counter.add(p, windows)
    return counter


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_training_estimate_equals_the_emulators_counts(tmp_path, kind):
    """Per layer, exact integers: input events, synops and spikes of the estimate (summed over the batch) equal
    the emulator's Counter on the exported file and the same payloads; synapses and ANN MACs equal hw_sim's."""
    model, payloads = nets()[kind]
    act = model.activity(torch.from_numpy(payloads.astype(np.float32)))
    path = export(model, tmp_path / "m.net", obs_dim=4)
    counter = emulator_counts(path, payloads)
    tot = counter.totals
    assert tot.inferences == len(payloads)
    assert [int(a.sum()) for a in act.in_events] == tot.in_events
    assert [int(a.sum()) for a in act.synops] == tot.synops
    assert [int(a.sum()) for a in act.spikes] == tot.spikes[:-1] and tot.spikes[-1] == 0  # the readout never spikes
    assert all(torch.equal(a, a.round()) for a in act.synops)
    assert min(tot.spikes[:-1]) > 0 and min(tot.synops) > 0  # every layer active: the comparison means something
    layers = read_netfile(path, require_meta=False).layers
    assert model.synapse_counts() == synapse_counts(layers)
    assert model.ann_macs() == ann_macs(layers)
    # per inference too, not only the batch sums
    one = emulator_counts(path, payloads[3:4]).totals
    assert [int(a[3]) for a in act.synops] == one.synops


def test_forward_activity_keeps_forwards_q_spikes_and_gradients():
    """forward_activity runs the hidden layers over T + L steps; its Q, spike trains (first T steps) and the
    Q-gradient of every weight are forward's, bit for bit."""
    model, payloads = nets()["dense"]
    x = torch.from_numpy(payloads.astype(np.float32))
    q, spikes, _ = model(x, return_spikes=True)
    q.sum().backward()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad.clone() for p in params]
    model.zero_grad()
    q2, spikes2, _ = model.forward_activity(x)
    q2.sum().backward()
    assert torch.equal(q, q2) and all(torch.equal(a, b) for a, b in zip(spikes, spikes2))
    assert len(grads) == len(model.neuron_blocks()) + 2  # every synapse and the readout bias
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, params))


@pytest.mark.parametrize("option", [("synop_penalty", 1.0), ("rate_target", 0.01)])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_penalty_gradient_reaches_every_hidden_layer(kind, option):
    """The penalty alone (no TD loss) gives every hidden layer's synapse weights a non-zero gradient, through the
    surrogate of the spikes. The readout's weights get none: its synops are the last hidden layer's spikes times
    the number of actions, whatever its weights (the readout does not spike)."""
    model, payloads = nets()[kind]
    penalty = ActivityPenalty(model, make_config(**dict([option])))
    assert penalty.active
    loss = penalty(model.activity(torch.from_numpy(payloads.astype(np.float32))))
    assert loss.item() > 0
    loss.backward()
    for i, block in enumerate(model.neuron_blocks()):
        g = block.synapse.weight.grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, f"hidden layer {i}"
    g = model.readout.synapse.weight.grad
    assert g is None or not g.any()


def test_penalty_is_the_documented_formula():
    """λ * mean synops / ANN MACs, plus Σ relu(rate - r)^2 over hidden layers (rate: spikes per neuron and step)."""
    model, payloads = nets()["dense"]
    act = model.activity(torch.from_numpy(payloads.astype(np.float32)))
    macs = sum(model.ann_macs())
    lam = ActivityPenalty(model, make_config(synop_penalty=0.5))(act).item()
    assert lam == pytest.approx(0.5 * act.total_synops().mean().item() / macs, rel=1e-6)
    rates = [s.mean().item() / (n * model.spec.timesteps) for s, n in zip(act.spikes, model.spec.layer_sizes())]
    r = min(rates) / 2
    got = ActivityPenalty(model, make_config(rate_target=r))(act).item()
    assert got == pytest.approx(sum((x - r) ** 2 for x in rates), rel=1e-6)
    assert ActivityPenalty(model, make_config(rate_target=0.99))(act).item() == 0.0
    assert not ActivityPenalty(model, make_config()).active


def test_rate_targets_per_layer():
    """--rate-target r1 r2: each hidden layer its own target (0 leaves a layer free); one value = every layer's;
    a number in an old config is one global target; a count that fits neither is a one-line refusal."""
    model, payloads = nets()["dense"]
    act = model.activity(torch.from_numpy(payloads.astype(np.float32)))
    rates = [s.mean().item() / (n * model.spec.timesteps) for s, n in zip(act.spikes, model.spec.layer_sizes())]
    assert len(rates) == 2
    r0 = rates[0] / 2
    got = ActivityPenalty(model, make_config(rate_target=[r0, 0.0]))(act).item()
    assert got == pytest.approx((rates[0] - r0) ** 2, rel=1e-6)
    both = ActivityPenalty(model, make_config(rate_target=[r0, r0]))(act).item()
    assert both == pytest.approx(ActivityPenalty(model, make_config(rate_target=[r0]))(act).item(), rel=1e-12)
    assert make_config(rate_target=0.05).rate_target == [0.05] and make_config(rate_target=0).rate_target == []
    with pytest.raises(UserError, match=r"^--rate-target 0.1 0.1 0.1: 3 values for 2 hidden spiking layers"):
        ActivityPenalty(model, make_config(rate_target=[0.1, 0.1, 0.1]))


def test_rate_target_count_is_checked_before_the_run_folder(tmp_path, capsys):
    code = call(train_main, [*TINY, "--rate-target", "0.1", "0.1", "0.1", "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "3 values for 2 hidden spiking layers" in err and "\n" not in err, err
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------------------------------------ training runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same tiny CartPole run with no flag, with --synop-penalty 0 --rate-target 0 (where the activity pass must
    never run) and with a large penalty; each evaluated once, at its end, so model.pt holds its last weights."""
    root = tmp_path_factory.mktemp("runs")
    out = {name: root / name for name in ("plain", "zero", "big")}
    threads = torch.get_num_threads()

    def forbidden(*args, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("the activity pass ran with --synop-penalty 0 --rate-target 0")

    try:
        assert call(train_main, [*TINY, "--out", str(out["plain"])]) == 0
        torch.set_num_threads(threads)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(SpikingQNet, "forward_activity", forbidden)  # the update's pass (the meter's is activity())
            assert call(train_main, [*TINY, "--synop-penalty", "0", "--rate-target", "0", "--out", str(out["zero"])]) == 0
        torch.set_num_threads(threads)
        assert call(train_main, [*TINY, "--synop-penalty", BIG_PENALTY, "--out", str(out["big"])]) == 0
    finally:
        torch.set_num_threads(threads)
    for d in out.values():
        assert call(export_main, [str(d / "model.pt")]) == 0
    return out


def test_zero_penalty_reproduces_the_weights_bit_for_bit(runs):
    a, b = (load_checkpoint(runs[k] / "model.pt") for k in ("plain", "zero"))
    for key in ("model", "last_model", "target_model"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    assert json.loads(a["evals_json"]) == json.loads(b["evals_json"])
    assert json.loads(a["final_eval_json"])["returns"] == json.loads(b["final_eval_json"])["returns"]
    assert json.loads(b["config_json"])["synop_penalty"] == 0.0


def test_a_large_penalty_lowers_the_emulators_synops(runs):
    """Counted by the emulator on the exported files, on the same observations: strictly fewer synops with λ large."""
    enc = Encoder.from_dict(read_netfile(runs["plain"] / "model.net").meta["encoder"])
    payloads = np.stack([enc.encode(o) for o in _observations()])
    counts = {}
    for name in ("plain", "big"):
        net = read_netfile(runs[name] / "model.net")
        emu, counter = Emulator(net), Counter(net.layers, net.timesteps)
        for p in payloads:
            _, windows, _ = emu.infer(p, net.timesteps)
            counter.add(p, windows)
        counts[name] = counter.totals.synops
    plain, big = counts["plain"], counts["big"]
    assert sum(big) < sum(plain), counts
    assert big[0] == plain[0]  # the first layer's input events: a constant of the observations
    assert sum(big[1:]) < 0.8 * sum(plain[1:]), counts  # the spikes' synops: not a rounding accident


def _observations(n: int = 64) -> list[np.ndarray]:
    """Observations of a seeded random CartPole rollout: one fixed input set for every network."""
    env = make_env("CartPole-v1")
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=1)
    out = []
    for _ in range(n):
        out.append(obs)
        obs, _, term, trunc, _ = env.step(int(rng.integers(2)))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return out


def test_final_evaluation_synops_equal_the_deployed_networks(runs):
    """Issue 28 item 5: the synops per inference that training logged for its final evaluation (stored in model.pt
    and in model.net's train_final_eval) are what dsqn-deploy's emulator backend counts on those episodes."""
    for name in ("plain", "big"):
        final = json.loads(load_checkpoint(runs[name] / "model.pt")["final_eval_json"])
        act = final["activity"]
        net = read_netfile(runs[name] / "model.net")
        assert net.meta["train_final_eval"]["activity"] == act  # a JSON attribute stock netx ignores
        with h5py.File(runs[name] / "model.net") as f:
            assert json.loads(f.attrs[ATTR_META])["train_final_eval"]["activity"]["synop_penalty"] == act["synop_penalty"]
        assert act["synop_penalty"] == (float(BIG_PENALTY) if name == "big" else 0.0)
        policy = make_policy(net, "emu")
        run_episodes(policy, "CartPole-v1", final["episodes"], FINAL_EVAL_SEED)
        per = policy.counter.totals.per_inference()
        assert policy.counter.totals.inferences == act["inferences"] == sum(final["lengths"])
        assert per["synops"] == act["synops"] and per["in_events"] == act["in_events"]
        assert per["spikes"][:-1] == act["spikes"]
        assert act["synops_per_inference"] == sum(act["synops"])


def test_evaluations_log_activity_per_layer(runs):
    rows = list(csv.reader(open(runs["plain"] / "metrics.csv")))
    kinds = {r[1] for r in rows[1:]}
    for tag in ("synops/L0", "synops/L1", "synops/L2", "synops/total", "spikes_per_synapse/L0", "spikes_per_synapse/total",
                "spikes/window_rate_L0", "spikes/window_rate_L1"):
        assert tag in kinds, tag
    evals = json.loads(load_checkpoint(runs["plain"] / "model.pt")["evals_json"])
    assert evals[-1]["synops_per_inference"] > 0


def test_td3_with_a_synop_penalty_trains_and_logs(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = tmp_path / "td3"
    assert call(train_main, [*TD3_TINY, "--synop-penalty", "0.5", "--rate-target", "0.05", "--out", str(d)]) == 0
    kinds = {r[1] for r in list(csv.reader(open(d / "metrics.csv")))[1:]}
    assert {"synops/total", "synops/L2", "spikes_per_synapse/total", "spikes/window_rate_L1"} <= kinds
    tb = EventAccumulator(str(d / "tb"))
    tb.Reload()
    tags = set(tb.Tags()["scalars"])
    assert {"losses/activity_penalty", "synops/total", "synops/L0", "spikes_per_synapse/L1"} <= tags
    final = json.loads(load_checkpoint(d / "model.pt")["final_eval_json"])
    assert final["activity"]["synop_penalty"] == 0.5 and final["activity"]["rate_target"] == [0.05]
    assert final["activity"]["synops_per_inference"] > 0


@pytest.mark.parametrize(("argv", "flag"), [
    (["--synop-penalty", "-1"], "--synop-penalty -1.0: must not be negative"),
    (["--synop-penalty", "nan"], "--synop-penalty nan: not a finite number"),
    (["--rate-target", "1.5"], "--rate-target 1.5: a spike rate"),
    (["--rate-target", "-0.1"], "--rate-target -0.1: a spike rate"),
    (["--synop-penalty", "0.1", "--qnet", "ann"], "the ANN baseline has none"),
    (["--env-id", "Pendulum-v1", "--rate-target", "0.1", "--actor", "ann"], "the ANN baseline has none"),
])
def test_bad_values_are_one_line_errors(tmp_path, capsys, argv, flag):
    code = call(train_main, [*argv, "--out", str(tmp_path / "never"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and flag in err and "\n" not in err, err
    assert not (tmp_path / "never").exists()


@pytest.mark.lava
def test_lava_counts_what_training_estimates(tmp_path):
    """The sim backend (Lava fixed_pt, windows stitched) counts the training estimate's synops on the same payloads."""
    model = make_net(seed=3, n_actions=2, bias=[0.25, -0.5], threshold=0.5)
    net = read_netfile(export(model, tmp_path / "m.net"))
    policy = make_policy(net, "sim")
    payloads: list[np.ndarray] = []
    try:
        run_episodes(policy, "CartPole-v1", 1, 3, max_steps=6, on_step=lambda obs, p, a, q: payloads.append(p))
    finally:
        policy.close()
    act = model.activity(torch.from_numpy(np.stack(payloads).astype(np.float32)))
    tot = policy.counter.totals
    assert tot.inferences == len(payloads) == 6
    assert [int(a.sum()) for a in act.synops] == tot.synops and min(tot.synops) > 0
    assert [int(a.sum()) for a in act.in_events] == tot.in_events
