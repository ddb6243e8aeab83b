"""dsqn-train's option checks: every option in its range and every combination possible, before anything is built or
written, each failure a one-line UserError naming the option (``config.make_config`` calls :func:`validate`)."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from dsqn.errors import UserError

if TYPE_CHECKING:
    from .config import TrainConfig

ENCODINGS = ("two_neuron", "direct")
SNN_STEPS = tuple(1 << k for k in range(1, 9))  # T: 2 .. 256, powers of 2 (Loihi's reset_interval must be one)


def rate_list(value: Any) -> list[float]:
    """--rate-target as a list: a number (config files and runs written before per-layer targets) is one global
    target, 0 none."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [float(value)] if value else []
        return [float(v) for v in (value.split() if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise UserError(f"--rate-target {value!r}: expected one spike rate, or one per hidden layer") from None


def rate_text(rates: list[float]) -> str:
    return " ".join(f"{r:g}" for r in rates) or "0"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# Options that count something and must be at least 1 / at least 0 (a loop step, an interval, an episode count).
POSITIVE_INTS = ("snn_steps", "eval_every", "checkpoint_every", "target_update", "train_freq", "gradient_steps",
                 "eval_episodes", "final_eval_episodes", "policy_delay")
NON_NEGATIVE_INTS = ("seed", "learning_starts", "eval_max_steps", "frac_bits", "eps_decay_steps")
FRACTIONS = ("current_decay", "voltage_decay", "eps_start", "eps_end", "eval_epsilon", "init_rate")  # in [0, 1]
NON_NEGATIVE_FLOATS = ("exploration_noise", "policy_noise", "noise_clip")
POSITIVE_FLOATS = ("lr", "threshold", "tau_grad", "scale_grad", "max_grad_norm", "q_scale")


def validate(cfg: TrainConfig) -> None:
    """Every option in its range, before anything is built or written: one-line UserError naming the option."""
    _check_types(cfg)
    _check_ranges(cfg)
    _check_combinations(cfg)


def _check_types(cfg: TrainConfig) -> None:
    for f in fields(cfg):
        val = getattr(cfg, f.name)
        typ = str(f.type)
        if typ == "int" and (isinstance(val, bool) or not isinstance(val, int)):
            raise UserError(f"{_flag(f.name)} {val!r}: expected an integer")
        if typ == "float" and (isinstance(val, bool) or not isinstance(val, (int, float))):
            raise UserError(f"{_flag(f.name)} {val!r}: expected a number")
        if typ == "float" and not math.isfinite(val):
            raise UserError(f"{_flag(f.name)} {val}: not a finite number")
        if typ == "bool" and not isinstance(val, bool):
            raise UserError(f"{_flag(f.name)} {val!r}: expected true or false")
        if typ == "str" and not isinstance(val, str):
            raise UserError(f"{_flag(f.name)} {val!r}: expected a string")


def _check_ranges(cfg: TrainConfig) -> None:
    if not isinstance(cfg.hidden, list) or not cfg.hidden:
        raise UserError(f"--hidden {cfg.hidden!r}: give at least one layer width")
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in cfg.hidden):
        raise UserError(f"--hidden {' '.join(map(str, cfg.hidden))}: layer widths must be positive integers")
    if not isinstance(cfg.obs_scale, list) or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in cfg.obs_scale):
        shown = " ".join(map(str, cfg.obs_scale)) if isinstance(cfg.obs_scale, list) else repr(cfg.obs_scale)
        raise UserError(f"--obs-scale {shown}: every obs_scale divisor must be a positive finite number")
    for name in POSITIVE_INTS:
        if getattr(cfg, name) < 1:
            raise UserError(f"{_flag(name)} {getattr(cfg, name)}: must be at least 1")
    for name in NON_NEGATIVE_INTS:
        if getattr(cfg, name) < 0:
            raise UserError(f"{_flag(name)} {getattr(cfg, name)}: must not be negative")
    for name in FRACTIONS:
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise UserError(f"{_flag(name)} {getattr(cfg, name)}: must lie in [0, 1]")
    if cfg.init_rate >= 1.0:
        raise UserError(f"--init-rate {cfg.init_rate}: a spike rate below 1 (0 = the plain init)")
    for name in POSITIVE_FLOATS:
        if getattr(cfg, name) <= 0:
            raise UserError(f"{_flag(name)} {getattr(cfg, name)}: must be positive")
    for name in NON_NEGATIVE_FLOATS:
        if getattr(cfg, name) < 0:
            raise UserError(f"{_flag(name)} {getattr(cfg, name)}: must not be negative")
    if cfg.snn_steps not in SNN_STEPS:
        raise UserError(f"--snn-steps {cfg.snn_steps}: T must be a power of 2 from 2 to {SNN_STEPS[-1]} (Loihi resets "
                        "the network every T steps); the training budget is --total-timesteps")


def _check_combinations(cfg: TrainConfig) -> None:
    from dsqn.envs import atari_game

    atari = atari_game(cfg.env_id) is not None
    if cfg.algo not in ("", "dqn", "td3"):
        raise UserError(f"--algo {cfg.algo!r}: expected dqn or td3")
    if not 0 <= cfg.membrane_jitter <= 1:
        raise UserError(f"--membrane-jitter {cfg.membrane_jitter}: must lie in [0, 1] (a fraction of each mean)")
    if cfg.param_groups < 0:
        raise UserError(f"--param-groups {cfg.param_groups}: must not be negative (0 = one group per neuron)")
    if cfg.param_groups and not cfg.membrane_jitter:
        raise UserError(f"--param-groups {cfg.param_groups}: groups quantize heterogeneous neurons; give --membrane-jitter > 0")
    if cfg.encoding not in ENCODINGS:
        raise UserError(f"--encoding {cfg.encoding!r}: expected {' or '.join(ENCODINGS)}")
    if cfg.arch not in ("mlp", "nature"):
        raise UserError(f"--arch {cfg.arch!r}: expected mlp or nature")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {cfg.device!r}: expected auto, cpu or cuda")
    if cfg.actor not in ("snn", "ann"):
        raise UserError(f"--actor {cfg.actor!r}: expected snn or ann")
    if cfg.actor == "ann" and cfg.algo == "dqn":
        raise UserError("--actor ann: the ANN actor is a TD3 baseline (--algo td3); a DQN's is --qnet ann")
    if cfg.qnet not in ("snn", "ann"):
        raise UserError(f"--qnet {cfg.qnet!r}: expected snn or ann")
    if cfg.qnet == "ann" and cfg.algo == "td3":
        raise UserError("--qnet ann: the ANN Q-network is a DQN baseline; a TD3 actor's is --actor ann")
    if cfg.algo == "td3" and atari:
        raise UserError(f"--algo td3: {cfg.env_id} has discrete actions; TD3 needs a continuous (Box) action space (use --algo dqn)")
    if not isinstance(cfg.critic_hidden, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in cfg.critic_hidden):
        raise UserError(f"--critic-hidden {cfg.critic_hidden!r}: layer widths must be positive integers")
    if cfg.eps_fraction <= 0:
        raise UserError(f"--eps-fraction {cfg.eps_fraction}: must be positive")
    if cfg.lr_final < 0:
        raise UserError(f"--lr-final {cfg.lr_final}: must not be negative (0 = constant lr)")
    if cfg.total_timesteps <= 0:
        raise UserError(f"--total-timesteps {cfg.total_timesteps}: must be positive")
    if cfg.batch_size <= 0 or cfg.buffer_size < cfg.batch_size:
        raise UserError(f"--batch-size {cfg.batch_size}, --buffer-size {cfg.buffer_size}: the batch size must be positive "
                        "and the buffer at least one batch")
    if not 0 < cfg.target_tau <= 1:
        raise UserError(f"--target-tau {cfg.target_tau}: must lie in (0, 1]")
    if cfg.q_init not in ("zero", "reward"):
        raise UserError(f"--q-init {cfg.q_init!r}: expected zero or reward")
    if cfg.adam_eps <= 0:
        raise UserError(f"--adam-eps {cfg.adam_eps}: must be positive")
    if cfg.n_step < 1:
        raise UserError(f"--n-step {cfg.n_step}: must be >= 1")
    if not 0 < cfg.gamma <= 1:
        raise UserError(f"--gamma {cfg.gamma}: must lie in (0, 1]")
    if cfg.synop_penalty < 0:
        raise UserError(f"--synop-penalty {cfg.synop_penalty}: must not be negative (0 = off)")
    for r in cfg.rate_target:
        if not 0 <= r < 1:
            raise UserError(f"--rate-target {r:g}: a spike rate per neuron and step in [0, 1) (0 = off)")
    if (cfg.synop_penalty or any(cfg.rate_target)) and (cfg.actor if cfg.algo == "td3" else cfg.qnet) == "ann":
        raise UserError(f"--synop-penalty {cfg.synop_penalty}, --rate-target {rate_text(cfg.rate_target)}: regularise a spiking "
                        "network's activity; the ANN baseline has none")
