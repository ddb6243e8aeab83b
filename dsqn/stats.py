"""Scores and their statistics: the 95 % bootstrap interval of a mean return, the human-normalised score of the DSQN
paper's games (random and human reference scores, DQN Zoo's table) and when an evaluation is no score at all
(episodes cut short of the protocol)."""

from __future__ import annotations

import numpy as np

from dsqn.envs import ATARI_EVAL_STEPS, atari_game

# (random, human) scores of the paper's 17 games, as DQN Zoo tabulates them (deepmind/dqn_zoo, dqn_zoo/atari_data.py:
# the random-agent and human-tester scores of the DQN literature; Video Pinball's human score there is 17667.9).
HUMAN_RANDOM = {
    "Atlantis": (12850.0, 29028.1), "BeamRider": (363.9, 16926.5), "Boxing": (0.1, 12.1), "Breakout": (1.7, 30.5),
    "CrazyClimber": (10780.5, 35829.4), "Gopher": (257.6, 2412.5), "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0), "Krull": (1598.0, 2665.5), "NameThisGame": (2292.3, 8049.0), "Pong": (-20.7, 14.6),
    "RoadRunner": (11.5, 7845.0), "SpaceInvaders": (148.0, 1668.7), "StarGunner": (664.0, 10250.0),
    "Tennis": (-23.8, -8.3), "Tutankham": (11.4, 167.6), "VideoPinball": (16256.9, 17667.9),
}


HUMAN_RANDOM_SOURCE = "DQN Zoo (deepmind/dqn_zoo, dqn_zoo/atari_data.py)"


def human_normalized(env_id: str, score: float) -> float | None:
    game = atari_game(env_id)
    if game not in HUMAN_RANDOM:
        return None
    rnd, human = HUMAN_RANDOM[game]
    return (score - rnd) / (human - rnd)


def mean_ci95(returns: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean return (percentile method, seeded: the same returns give the same
    interval everywhere)."""
    x = np.asarray(returns, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    means = x[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def truncated_episodes(env_id: str, capped: int, max_steps: int) -> int:
    """How many of the ``capped`` episodes (stopped at ``max_steps`` by the evaluation, not by the environment) were cut
    short of a full episode: all of them, except for Atari at the protocol's cap (ATARI_EVAL_STEPS) or above."""
    if atari_game(env_id) is not None and max_steps >= ATARI_EVAL_STEPS:
        return 0
    return int(capped)


def score_summary(env_id: str, returns: list[float], truncated: int = 0) -> dict:
    """Mean, std, 95 % interval of the mean, and for the paper's games the human-normalised mean with the
    random and human reference scores and whether the interval excludes the random score. ``truncated``
    episodes (cut short by an evaluation cap, see :func:`truncated_episodes`) make the mean no score: it is marked
    and not human-normalised."""
    mean = float(np.mean(returns))
    lo, hi = mean_ci95(returns)
    out = {"mean": mean, "std": float(np.std(returns)), "ci95": [lo, hi], "human_normalized": human_normalized(env_id, mean)}
    game = atari_game(env_id)
    if truncated:
        return {**out, "human_normalized": None, "truncated": int(truncated)}
    if game in HUMAN_RANDOM:
        rnd, human = HUMAN_RANDOM[game]
        out.update({"random_score": rnd, "human_score": human, "reference_source": HUMAN_RANDOM_SOURCE,
                    "human_normalized_ci95": [human_normalized(env_id, lo), human_normalized(env_id, hi)],
                    "ci_excludes_random": bool(lo > rnd or hi < rnd)})
    return out
