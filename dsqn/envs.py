"""Environment construction and per-environment observation scales (shared by train and deploy)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dsqn.errors import UserError

# Divisors that bring each observation component to about [-1, 1] (two-neuron encoding input).
OBS_SCALES: dict[str, tuple[float, ...]] = {
    "CartPole-v1": (2.4, 3.0, 0.21, 3.0),
    "Acrobot-v1": (1.0, 1.0, 1.0, 1.0, 4.0 * np.pi, 9.0 * np.pi),
    "MountainCar-v0": (1.2, 0.07),
    "LunarLander-v3": (1.0, 1.0, 2.0, 2.0, 1.0, 2.0, 1.0, 1.0),
}


def make_env(env_id: str, seed: int | None = None) -> gym.Env:
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise UserError(f"cannot create environment {env_id!r}: {exc}") from None
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def check_spaces(env: gym.Env, obs_dim: int, n_actions: int, env_id: str) -> None:
    """The environment must match what the network was built for."""
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise UserError(f"{env_id}: action space {env.action_space} is not discrete")
    if int(env.action_space.n) != n_actions:
        raise UserError(f"{env_id}: environment has {env.action_space.n} actions, the network has {n_actions}")
    shape = env.observation_space.shape
    if shape is None or len(shape) != 1 or shape[0] != obs_dim:
        raise UserError(f"{env_id}: observation shape {shape} does not match the network's input ({obs_dim},)")


def obs_scale_for(env_id: str, env: gym.Env) -> tuple[float, ...]:
    if env_id in OBS_SCALES:
        return OBS_SCALES[env_id]
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and np.all(np.isfinite(space.high)):
        return tuple(float(max(abs(lo), abs(hi), 1e-6)) for lo, hi in zip(space.low, space.high))
    return tuple(1.0 for _ in range(int(np.prod(space.shape))))
