"""Pieces of the DQN loop: batched evaluation, target updates, config validation."""

import numpy as np
import pytest
import torch

from dsqn.envs import make_env
from dsqn.errors import UserError
from dsqn.train.config import make_config
from dsqn.train.dqn import build, greedy_action
from dsqn.train.networks import update_target
from dsqn.train.runner import evaluate


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
    model, _, encoder = build(make_config(hidden=[16, 16], snn_steps=8))
    with torch.no_grad():  # make the untrained policy depend on the state, so episodes differ in length
        model.blocks[0].synapse.weight.mul_(4)
    batched = evaluate(model, encoder, "CartPole-v1", 4, seed=7, max_steps=60)
    assert batched == _sequential_returns(model, encoder, "CartPole-v1", 4, 7, 60)
    assert len(set(batched)) > 1


def test_soft_and_hard_target_updates():
    cfg = make_config(hidden=[8, 8])
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
    with pytest.raises(UserError, match="--target-tau"):
        make_config(target_tau=tau)


def test_eval_is_deterministic_for_a_seed():
    torch.manual_seed(0)
    model, _, encoder = build(make_config(hidden=[8, 8]))
    a = evaluate(model, encoder, "CartPole-v1", 2, seed=11, epsilon=0.5, max_steps=30)
    b = evaluate(model, encoder, "CartPole-v1", 2, seed=11, epsilon=0.5, max_steps=30)
    assert a == b and np.all(np.array(a) > 0)


def test_n_step_returns_match_hand_computed_targets():
    from dsqn.train.runner import NStepReturns

    g = 0.9
    acc = NStepReturns(3, g)
    o = [np.full(2, i) for i in range(6)]
    out = []
    for t in range(4):  # four steps, the 4th terminates
        out += acc.push(o[t], t, float(t + 1), o[t + 1], term=(t == 3), trunc=False)
    assert [tr[1] for tr in out] == [0, 1, 2, 3]
    assert out[0][2] == pytest.approx(1 + g * 2 + g * g * 3) and out[0][5] == pytest.approx(g**3)
    assert (out[0][3] == o[3]).all() and out[0][4] is False
    # at termination the pending transitions flush with shorter horizons, all ending in the terminal state
    assert out[1][2] == pytest.approx(2 + g * 3 + g * g * 4) and out[1][4] is True
    assert out[2][2] == pytest.approx(3 + g * 4) and out[2][5] == pytest.approx(g**2)
    assert out[3][2] == pytest.approx(4.0) and out[3][5] == pytest.approx(g)
    assert all((tr[3] == o[4]).all() for tr in out[1:])
    # truncation flushes too but keeps bootstrapping
    trunc = acc.push(o[0], 0, 1.0, o[1], term=False, trunc=True)
    assert len(trunc) == 1 and trunc[0][4] is False and trunc[0][5] == pytest.approx(g)
    one = NStepReturns(1, g).push(o[0], 1, 5.0, o[1], False, False)
    assert len(one) == 1 and one[0][2] == 5.0 and one[0][5] == pytest.approx(g)


def test_n_step_is_validated():
    with pytest.raises(UserError, match="--n-step 0"):
        make_config(n_step=0)
    assert make_config(env_id="Breakout", n_step=3).n_step == 3  # the frame store sums n rewards


def test_shift_q_moves_every_q_value_through_the_quantized_readout_bias():
    torch.manual_seed(0)
    model, spec, _ = build(make_config(hidden=[8, 8], q_scale=4.0))
    x = torch.randint(0, 64, (5, *spec.input_shape)).float()
    with torch.no_grad():
        q0 = model(x)
        model.shift_q(-37.3)
        q1 = model(x)
    step = 4.0 * (spec.timesteps - spec.n_layers) / spec.timesteps / 64  # Q per bias mantissa unit
    assert torch.allclose(q1 - q0, torch.full_like(q0, -37.3), atol=step / 2 + 1e-5)
    with torch.no_grad():
        model.shift_q(-1e6)  # clamped to the 13-bit bias mantissa, so the export stays representable
    assert model.readout_bias.min().item() == -4096 / 64


def test_env_defaults_yield_to_explicit_values():
    from dsqn.train.cli import parse_args
    from dsqn.train.config import env_defaults

    acro = env_defaults("Acrobot-v1")
    cfg = parse_args(["--env-id", "Acrobot-v1"])[0]
    assert all(getattr(cfg, k) == v for k, v in acro.items()) and cfg.q_init == "reward"
    cfg = parse_args(["--env-id", "Acrobot-v1", "--target-update", "500", "--q-init", "zero"])[0]
    assert cfg.target_update == 500 and cfg.q_init == "zero"
    with pytest.raises(UserError, match="--q-init"):
        make_config(q_init="mean")


@pytest.mark.parametrize("q_init,expected", [("reward", -100.0), ("zero", 0.0)])
def test_q_init_reward_starts_q_at_the_no_goal_fixed_point(tmp_path, q_init, expected):
    """Acrobot pays -1 per step: 'reward' starts Q at -1 / (1 - gamma) = -100 before the first update."""
    from dsqn.files.checkpoint import load_checkpoint
    from dsqn.train.runner import train

    cfg = make_config(env_id="Acrobot-v1", hidden=[8, 8], total_timesteps=130, learning_starts=100, q_init=q_init,
                      eval_every=10_000, eval_episodes=1, final_eval_episodes=1, eval_max_steps=3,
                      checkpoint_every=10_000, out=str(tmp_path), progress=False)
    assert cfg.q_scale == 4.0 and cfg.n_step == 3  # Acrobot's defaults still fill the rest
    ckpt = load_checkpoint(train(cfg))
    model, _, _ = build(cfg)
    model.load_state_dict(ckpt["last_model"])
    with torch.no_grad():
        q = model(ckpt["replay"]["obs"].float())
    assert abs(q.mean().item() - expected) < 3.0


def test_obs_scale_of_the_wrong_length_is_a_user_error():
    with pytest.raises(UserError, match="obs-scale has 2 values"):
        build(make_config(env_id="CartPole-v1", obs_scale=[1.0, 2.0]))
    with pytest.raises(UserError, match="obs_scale"):
        build(make_config(env_id="CartPole-v1", obs_scale=[1.0, 2.0, 0.0, 1.0]))
