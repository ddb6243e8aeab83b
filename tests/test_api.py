"""The notebook path: ``policy = dsqn.load(file); policy.predict(obs)`` acts exactly as ``dsqn-deploy`` does on the
emulator, for a model.net and for the model.pt it was exported from; train / export / deploy return what the CLIs
print."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from support import REPO

import dsqn
from dsqn.deploy.closed_loop import make_policy, run_episodes
from dsqn.errors import UserError
from dsqn.files.netfile_read import read_netfile

CARTPOLE_NET = REPO / "results" / "CartPole-v1__seed1" / "model.net"
STEPS = 200


def deploy_actions(net_path, seed: int, steps: int) -> list[list[int]]:
    """dsqn-deploy's own actions on the emulator (its policy and loop), episodes seed, seed+1, ... up to ``steps``."""
    net = read_netfile(net_path)
    policy = make_policy(net, "emu")
    episodes = []
    while sum(map(len, episodes)) < steps:
        log = run_episodes(policy, net.meta["env_id"], 1, seed + len(episodes), steps, record_actions=True)
        episodes.append(log.actions[0])
    return episodes


def predicted_actions(policy, env_id: str, seed: int, lengths: list[int]) -> list[list[int]]:  # type: ignore[no-untyped-def]
    env = gym.make(env_id)
    out = []
    for ep, n in enumerate(lengths):
        obs, _ = env.reset(seed=seed + ep)
        acts = []
        for _ in range(n):
            a = policy.predict(obs)
            acts.append(a)
            obs, *_ = env.step(a)
        out.append(acts)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("api") / "run"
    run = dsqn.train(env_id="CartPole-v1", total_timesteps=400, learning_starts=100, eval_every=200, eval_episodes=2,
                     final_eval_episodes=3, seed=5, progress=False, out=str(out))
    return run, dsqn.export(run.model_path)


def test_load_net_predicts_the_deployed_actions_for_200_steps():
    expected = deploy_actions(CARTPOLE_NET, 7, STEPS)
    with dsqn.load(CARTPOLE_NET) as policy:
        got = predicted_actions(policy, "CartPole-v1", 7, [len(e) for e in expected])
        assert policy.counter.totals.inferences == STEPS
    assert got == expected and sum(map(len, got)) == STEPS


def test_load_pt_predicts_what_its_export_deploys(trained):
    run, exported = trained
    expected = deploy_actions(exported.path, 11, STEPS)
    policy = dsqn.load(run.model_path)
    got = predicted_actions(policy, "CartPole-v1", 11, [len(e) for e in expected])
    assert got == expected and sum(map(len, got)) >= STEPS


def test_single_and_batched_observations_and_q_values(trained):
    run, exported = trained
    obs = np.stack([gym.make("CartPole-v1").observation_space.sample() for _ in range(6)]).astype(np.float32)
    pt, net = dsqn.load(run.model_path), dsqn.load(exported.path)
    batch = pt.predict(obs)
    assert batch.shape == (6,) and [pt.predict(o) for o in obs] == batch.tolist() == net.predict(obs).tolist()
    assert isinstance(pt.predict(obs[0]), int)
    np.testing.assert_array_equal(pt.q_values(obs), net.q_values(obs))  # the chip's voltage decodes to training's Q
    assert pt.q_values(obs[0]).shape == (2,) and pt.q_values(obs).shape == (6, 2)
    with pytest.raises(UserError, match=r"observation of shape \(3,\): expected \(4,\)"):
        pt.predict(np.zeros(3))


def test_train_export_deploy_return_what_the_clis_print(trained):
    run, exported = trained
    assert run.model_path == run.run_dir / "model.pt" and run.final_eval["episodes"] == 3
    assert exported.path == run.run_dir / "model.net" and exported.lines[-1].startswith(f"wrote {exported.path}")
    report = dsqn.deploy(exported.path, episodes=3)
    assert report["episodes"]["returns"] == run.final_eval["returns"]  # the final evaluation's seeds by default
    with dsqn.load(exported.path) as policy:  # the same episodes through the API: the same counts per layer
        predicted_actions(policy, "CartPole-v1", 20_000_000, report["episodes"]["lengths"])
        counted = policy.counter.totals.per_inference()["synops"]
    assert [layer["synops"] for layer in report["energy"]["layers"]] == pytest.approx(counted, rel=0, abs=0)
    assert report["report_path"] == str(run.run_dir / "model.emu.report.json")
    import importlib

    importlib.import_module("dsqn.deploy.run")  # the stage's package stays callable after its modules are imported
    assert dsqn.deploy(exported.path, episodes=1, seed=3)["episodes"]["seed"] == 3


def test_an_actor_has_no_q_values():
    with dsqn.load(REPO / "results" / "Pendulum-v1__td3__seed1" / "model.net") as actor:
        a = actor.predict(np.array([1.0, 0.0, 0.0]))
        assert a.dtype == np.float64 and a.shape == (1,) and -2.0 <= a[0] <= 2.0
        with pytest.raises(UserError, match="actor"):
            actor.q_values(np.array([1.0, 0.0, 0.0]))
