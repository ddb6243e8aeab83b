"""TD3 with a spiking actor: the action readout, a tiny run end to end, the exported actor acting exactly as the
trained one (emulator, and Lava in the lava lane), resume, and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from support import call

from dsqn.deploy.cli import main as deploy_main
from dsqn.deploy.closed_loop import make_policy, run_episodes
from dsqn.encoding import Encoder
from dsqn.export.cli import main as export_main
from dsqn.files.checkpoint import load_checkpoint, model_from_checkpoint
from dsqn.files.netfile_read import read_netfile
from dsqn.layers.readout import Readout
from dsqn.train.cli import main as train_main
from dsqn.train.runner import evaluate

TINY = ["--env-id", "Pendulum-v1", "--total-steps", "300", "--learning-starts", "100", "--eval-every", "150",
        "--eval-episodes", "2", "--final-eval-episodes", "2", "--eval-max-steps", "40", "--hidden", "24", "16",
        "--critic-hidden", "32", "32", "--batch-size", "32", "--checkpoint-every", "150", "--no-progress", "--seed", "3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("td3")
    assert call(train_main, [*TINY, "--out", str(d)]) == 0
    assert call(export_main, [str(d / "model.pt")]) == 0
    return d


def test_action_readout_decodes_tanh_to_the_bounds():
    r = Readout(kind="action", scale=2.0, timesteps=4, low=(-2.0, 0.0), high=(2.0, 1.0))
    div = 4 * 4096
    v = np.array([0, div // 2])  # y = 0 and y = 2 * 0.5 = 1
    a = r.act(v)
    assert a.dtype == np.float64
    assert a[0] == 0.0  # -2 + (tanh 0 + 1) * 2
    assert a[1] == 0.0 + (np.tanh(1.0) + 1.0) * 0.5
    assert np.array_equal(r.normalize(r.to_env(np.array([-1.0, 1.0]))), np.array([-1.0, 1.0]))
    assert r.to_dict()["low"] == [-2.0, 0.0] and "tanh" in r.to_dict()["formula"]
    assert Readout.from_dict(r.to_dict(), 4) == r
    with pytest.raises(ValueError, match="finite low < high"):
        Readout(kind="action", scale=1.0, timesteps=4, low=(-np.inf,), high=(1.0,))
    with pytest.raises(ValueError, match="one length"):
        Readout(kind="action", scale=1.0, timesteps=4, low=(-1.0,), high=(1.0, 1.0))
    with pytest.raises(ValueError, match="no action bounds"):
        Readout(kind="q", scale=1.0, timesteps=4, low=(-1.0,), high=(1.0,))


def test_tiny_run_writes_an_actor_with_its_training_state(run: Path):
    ckpt = load_checkpoint(run / "model.pt")
    cfg = json.loads(ckpt["config_json"])
    assert cfg["algo"] == "td3" and cfg["snn_steps"] == 4 and cfg["gamma"] == 0.98  # Pendulum's TD3 defaults
    spec = json.loads(ckpt["spec_json"])
    assert spec["readout_kind"] == "action" and spec["action_low"] == [-2.0] and spec["action_high"] == [2.0]
    assert ckpt["step"] == 300
    assert ckpt["n_updates"] == 300 - 100 + 1  # one critic update per step from learning_starts on
    for key in ("critic", "critic_target", "critic_optimizer"):
        assert isinstance(ckpt[key], dict) and ckpt[key]
    net = read_netfile(run / "model.net")
    assert net.readout.kind == "action" and net.readout.low == (-2.0,) and net.readout.high == (2.0,)
    assert net.meta["n_actions"] == 1


def test_deployed_actor_acts_as_the_trained_one_on_every_step(run: Path):
    """Closed loop on the emulator: the action of every step equals the trained actor's (bit for bit), and the
    episode returns equal the training-side evaluation's."""
    ckpt = load_checkpoint(run / "model.pt")
    model, spec, encoder, _ = model_from_checkpoint(ckpt, run / "model.pt")
    policy = make_policy(read_netfile(run / "model.net"), "emu")
    trained: list[np.ndarray] = []
    deployed: list[np.ndarray] = []

    def on_step(obs, payload, action, decoded):  # type: ignore[no-untyped-def]
        deployed.append(action)
        trained.append(model.policy_actions(torch.from_numpy(payload.astype(np.float32))[None])[0])

    log = run_episodes(policy, "Pendulum-v1", 2, 77, max_steps=60, on_step=on_step)
    assert len(deployed) == 120
    assert all(np.array_equal(a, b) for a, b in zip(trained, deployed))
    assert len({float(a[0]) for a in deployed}) > 10  # a policy that moves, not a constant
    assert evaluate(model, encoder, "Pendulum-v1", 2, seed=77, max_steps=60) == log.returns


def test_deploy_cli_runs_the_actor_and_reports_energy(run: Path, tmp_path: Path):
    rep = tmp_path / "r.json"
    assert call(deploy_main, [str(run / "model.net"), "--backend", "emu", "--episodes", "1", "--max-steps", "30",
                              "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["episodes"]["lengths"] == [30]
    energy = report["energy"]
    assert energy["inferences"] == 30 and report["timesteps"] == 4
    assert [layer["name"] for layer in energy["layers"]] == ["L0-dense", "L1-dense", "L2-readout"]
    assert energy["latency"]["timesteps"] == 4
    assert energy["snn_energy_per_inference_pj"] == pytest.approx(sum(la["energy_pj"]["total"] for la in energy["layers"]))


def test_resume_continues_the_updates_and_the_budget(run: Path, tmp_path: Path):
    d = tmp_path / "r"
    assert call(train_main, [*TINY, "--total-steps", "200", "--out", str(d)]) == 0
    first = load_checkpoint(d / "model.pt")
    assert first["step"] == 200 and first["n_updates"] == 101
    assert call(train_main, ["--resume", str(d / "model.pt"), "--total-steps", "300"]) == 0
    ckpt = load_checkpoint(d / "model.pt")
    assert ckpt["step"] == 300 and ckpt["n_updates"] == 201
    assert [e["step"] for e in json.loads(ckpt["evals_json"])] == [150, 200, 300]


class InfiniteBox(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def reset(self, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        return np.zeros(2, np.float32), 0.0, True, False, {}


def test_refusals_are_one_line(run: Path, tmp_path: Path, capsys):
    gym.register("DsqnTestInfiniteBox-v0", entry_point=InfiniteBox)
    assert call(train_main, ["--env-id", "DsqnTestInfiniteBox-v0", "--algo", "td3", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "infinite bounds" in err
    assert not (tmp_path / "a").exists()
    # an environment whose action dimension differs from the file's
    assert call(deploy_main, [str(run / "model.net"), "--backend", "emu", "--env", "MountainCarContinuous-v0",
                              "--report", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("observation shape" in err or "dimensions" in err)
    assert call(deploy_main, [str(run / "model.net"), "--backend", "emu", "--env", "CartPole-v1",
                              "--report", str(tmp_path / "y.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TD3 needs a continuous" in err
    assert call(deploy_main, [str(run / "model.net"), "--backend", "emu", "--epsilon", "0.05",
                              "--report", str(tmp_path / "z.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--epsilon 0.05: epsilon-greedy evaluates Q-networks" in err
    assert not any((tmp_path / f).exists() for f in ("x.json", "y.json", "z.json"))


def test_action_dimension_mismatch_is_named():
    from dsqn.envs import check_spaces, make_env
    from dsqn.errors import UserError

    env = make_env("Pendulum-v1")
    try:
        with pytest.raises(UserError, match="1 dimensions, the network outputs 2"):
            check_spaces(env, Encoder(obs_scale=(1.0, 1.0, 8.0)).env_obs_shape, 2, "Pendulum-v1", "action")
    finally:
        env.close()


@pytest.mark.lava
def test_lava_sim_acts_as_the_emulator(run: Path):
    """A bounded number of closed-loop steps on the Lava simulator: the same action on every step as the emulator."""
    net = read_netfile(run / "model.net")
    actions = {}
    for backend in ("emu", "sim"):
        policy = make_policy(net, backend)
        try:
            actions[backend] = run_episodes(policy, "Pendulum-v1", 1, 5, max_steps=12, record_actions=True).actions[0]
        finally:
            policy.close()
    assert len(actions["sim"]) == 12
    assert all(np.array_equal(a, b) for a, b in zip(actions["emu"], actions["sim"]))


def test_ann_actor_baseline_trains_in_the_same_loop_and_is_not_exported(tmp_path: Path, capsys):
    d = tmp_path / "ann"
    assert call(train_main, [*TINY, "--total-steps", "200", "--actor", "ann", "--out", str(d)]) == 0
    ckpt = load_checkpoint(d / "model.pt")
    assert ckpt["n_updates"] == 101 and set(ckpt["model"]) == {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias",
                                                                "net.4.weight", "net.4.bias"}
    capsys.readouterr()
    assert call(export_main, [str(d / "model.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ANN baseline (dsqn-train --actor ann)" in err and not (d / "model.net").exists()


def test_mujoco_actor_end_to_end(tmp_path: Path):
    """HalfCheetah-v5 through gymnasium's mujoco extra: a tiny TD3 run, export, and the emulator's actions (6
    dimensions) equal the trained actor's on every step."""
    d = tmp_path / "hc"
    args = [*TINY, "--env-id", "HalfCheetah-v5", "--total-steps", "120", "--learning-starts", "60", "--eval-every", "120",
            "--out", str(d)]
    assert call(train_main, args) == 0
    assert call(export_main, [str(d / "model.pt")]) == 0
    model, _, encoder, cfg = model_from_checkpoint(load_checkpoint(d / "model.pt"), d / "model.pt")
    assert cfg["snn_steps"] == 4 and cfg["hidden"] == [24, 16] and model.spec.n_actions == 6
    assert encoder.obs_scale == (1.0,) * 8 + (10.0,) * 9
    policy = make_policy(read_netfile(d / "model.net"), "emu")
    pairs = []
    run_episodes(policy, "HalfCheetah-v5", 1, 3, max_steps=25,
                 on_step=lambda o, p, a, y: pairs.append((a, model.policy_actions(torch.from_numpy(p.astype(np.float32))[None])[0])))
    assert len(pairs) == 25 and all(a.shape == (6,) and np.array_equal(a, b) for a, b in pairs)
