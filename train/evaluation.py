"""Greedy (or epsilon-greedy) evaluation of a policy network: the episodes side by side, one batched forward pass per
step; what the deployed network does, since acting reads the same integer readout voltage."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dsqn.encoding import Encoder
from dsqn.envs import EpsilonGreedy, make_env
from dsqn.layers.qnet import SpikingQNet


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclasses.dataclass
class Evaluation:
    returns: list[float]
    lengths: list[int]
    capped: int  # episodes stopped by max_steps, not by the environment


def run_evaluation(model: SpikingQNet, encoder: Encoder, env_id: str, episodes: int, seed: int, epsilon: float = 0.0,
                   max_steps: int = 0, video_dir: Path | None = None,
                   on_batch: Callable[[torch.Tensor], None] | None = None) -> Evaluation:
    """``episodes`` evaluation episodes (seeds seed, seed+1, ...) of the network's policy: greedy (or epsilon-greedy
    for discrete actions) for a Q-network, the deterministic action for an actor (``SpikingQNet.policy_actions``:
    what the deployed network does). ``video_dir``: the first episode is recorded there (gymnasium's RecordVideo).
    ``on_batch(payloads)`` sees every step's payloads (the activity meter, train/activity.py).

    The episodes run side by side, one batched forward pass per step for all unfinished ones (the network
    is stateless between inferences, so this equals running them one after the other).
    """
    envs = [make_env(env_id, render_mode="rgb_array" if video_dir is not None and ep == 0 else None) for ep in range(episodes)]
    if video_dir is not None:
        from gymnasium.wrappers import RecordVideo

        envs[0] = RecordVideo(envs[0], str(video_dir), episode_trigger=lambda _: True, name_prefix=f"eval-seed{seed}",
                              disable_logger=True)
    discrete = model.spec.readout_kind == "q"
    pick = [EpsilonGreedy(epsilon if discrete else 0.0, seed + ep, envs[ep].action_space.n if discrete else 0)
            for ep in range(episodes)]
    try:
        obs = [env.reset(seed=seed + ep)[0] for ep, env in enumerate(envs)]
        returns = [0.0] * episodes
        steps = [0] * episodes
        capped = 0
        alive = list(range(episodes))
        while alive:
            batch = torch.from_numpy(np.stack([encoder.encode(obs[i]) for i in alive]).astype(np.float32)).to(device_of(model))
            actions = model.policy_actions(batch)
            if on_batch is not None:
                on_batch(batch)
            still = []
            for i, a in zip(alive, actions):
                a = pick[i](a) if discrete else a
                obs[i], r, term, trunc, _ = envs[i].step(a)
                returns[i] += float(r)
                steps[i] += 1
                if term or trunc:
                    continue
                if max_steps > 0 and steps[i] >= max_steps:
                    capped += 1
                    continue
                still.append(i)
            alive = still
        return Evaluation(returns, steps, capped)
    finally:
        for env in envs:
            env.close()


def evaluate(model: SpikingQNet, encoder: Encoder, env_id: str, episodes: int, seed: int, epsilon: float = 0.0,
             max_steps: int = 0, on_batch: Callable[[torch.Tensor], None] | None = None) -> list[float]:
    """The returns of :func:`run_evaluation`."""
    return run_evaluation(model, encoder, env_id, episodes, seed, epsilon, max_steps, on_batch=on_batch).returns
