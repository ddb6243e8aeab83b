"""Pieces of the DQN loop: batched evaluation, target updates, config validation."""

import numpy as np
import pytest
import torch

from dsqn.envs import make_env
from dsqn.errors import UserError
from dsqn.train.config import TrainConfig, resolve
from dsqn.train.dqn import build, evaluate, greedy_action, update_target


def _sequential_returns(model, encoder, env_id, episodes, seed, max_steps):
    out = []
    for ep in range(episodes):
        env = make_env(env_id)
        obs, _ = env.reset(seed=seed + ep)
        done, total, n = False, 0.0, 0
        while not done and n < max_steps:
            obs, r, term, trunc, _ = env.step(greedy_action(model, encoder.encode(obs)))
            total, n, done = total + float(r), n + 1, term or trunc
        out.append(total)
        env.close()
    return out


def test_batched_evaluation_equals_one_episode_at_a_time():
    torch.manual_seed(3)
    model, _, encoder = build(resolve(TrainConfig(hidden=[16, 16], timesteps=8)))
    with torch.no_grad():  # make the untrained policy depend on the state, so episodes differ in length
        model.blocks[0].synapse.weight.mul_(4)
    batched = evaluate(model, encoder, "CartPole-v1", 4, seed=7, max_steps=60)
    assert batched == _sequential_returns(model, encoder, "CartPole-v1", 4, 7, 60)
    assert len(set(batched)) > 1


def test_soft_and_hard_target_updates():
    cfg = resolve(TrainConfig(hidden=[8, 8]))
    torch.manual_seed(0)
    model, _, _ = build(cfg)
    torch.manual_seed(1)
    target, _, _ = build(cfg)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    update_target(target, model, 0.25)
    for (name, p_t), p_o in zip(target.named_parameters(), model.parameters()):
        expected = 0.75 * before[name] + 0.25 * p_o.detach()
        assert torch.allclose(p_t, expected), name
    update_target(target, model, 1.0)
    for p_t, p_o in zip(target.parameters(), model.parameters()):
        assert torch.equal(p_t, p_o)


@pytest.mark.parametrize("tau", [0.0, 1.5, -0.1])
def test_target_tau_outside_unit_interval_is_rejected(tau):
    with pytest.raises(UserError, match="target_tau"):
        resolve(TrainConfig(target_tau=tau), {"target_tau"})


def test_eval_is_deterministic_for_a_seed():
    torch.manual_seed(0)
    model, _, encoder = build(resolve(TrainConfig(hidden=[8, 8])))
    a = evaluate(model, encoder, "CartPole-v1", 2, seed=11, epsilon=0.5, max_steps=30)
    b = evaluate(model, encoder, "CartPole-v1", 2, seed=11, epsilon=0.5, max_steps=30)
    assert a == b and np.all(np.array(a) > 0)
