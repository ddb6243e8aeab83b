"""One documented config for dsqn-train; the CLI is generated from it, so ``--help`` is the docs."""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field, fields

from dsqn.errors import ArgumentParser, UserError


@dataclass
class TrainConfig:
    env_id: str = "CartPole-v1"
    """gymnasium environment id: classic control, Atari (ALE/<Game>-v5) or MuJoCo (Box actions, TD3)."""
    algo: str = ""
    """'dqn' (DSQN, discrete actions) or 'td3' (a spiking actor with ANN critics, Box actions); '' = by the
    environment's action space."""
    preset: str = ""
    """Atari: a named set of defaults (ATARI_PRESETS): 'paper' (Liu et al. 2022, T = 64, 10M steps; the default) or
    'data-efficient' (T = 8, 100k agent steps, one update per step) or 'cpu' (the same at one update per 4 steps: a
    few CPU hours) or 'cpu-session' ('cpu' stopped at 40k steps: one session of a 2-core CPU); see ATARI_PRESETS for each value and why; explicit options win."""
    seed: int = 1
    """seed for python, numpy, torch, env.reset and action_space."""
    out: str = ""
    """run folder; default runs/<env>__dsqn__<seed>__<time>."""
    total_steps: int = 0
    """environment steps to train (0 = the environment's default)."""
    hidden: list[int] = field(default_factory=list)
    """hidden layer widths (empty = the environment's default)."""
    timesteps: int = 8
    """T: simulation steps per inference (must exceed the number of layers; power of 2 for Loihi reset)."""
    threshold: float = 0.125
    """LIF threshold (rounded to a multiple of 1/64); the first layer's is scaled by 2**frac_bits."""
    current_decay: float = 0.5
    voltage_decay: float = 0.5
    membrane_jitter: float = 0.0
    """Akl et al. 2023's heterogeneous neurons: every hidden neuron's current decay, voltage decay and threshold
    drawn once (seeded) from N(mu, membrane_jitter * mu) around the values above (0 = one value per layer)."""
    param_groups: int = 0
    """with --membrane-jitter: quantize each layer's drawn values into at most this many (iDecay, vDecay, vThMant)
    groups, one Loihi neuron process each; training uses exactly the grouped integers (0 = every neuron its own:
    the emulator runs it, Lava and Loihi need groups)."""
    tau_grad: float = 0.01
    """width of slayer's exponential surrogate gradient in units of 100 x threshold (slayer's TAU_RHO_MULT):
    0.01 makes it one threshold wide (slayer's default 1.0 is a hundred thresholds wide, nearly flat)."""
    scale_grad: float = 10.0
    """height of the surrogate gradient (times slayer's SCALE_RHO_MULT 0.1): peak 0.5 / threshold with tau_grad 0.01."""
    init_rate: float = 0.0
    """data-driven initialisation (dsqn.qnet.SpikingQNet.calibrate_): scale each hidden layer's initial weights so
    that it fires at this rate (spikes per neuron and step) on observations of a short seeded random rollout
    (0 = the plain init). The Atari presets use 0.1: with 8-bit weights the plain init leaves the Nature network's
    deeper layers silent."""
    encoding: str = "two_neuron"
    """observation encoding: two_neuron (Akl et al.) or direct."""
    obs_scale: list[float] = field(default_factory=list)
    """per-component divisors that normalise the observation before encoding (empty = the environment's
    default in dsqn.envs.OBS_SCALES); smaller divisors give small values more payload levels."""
    frac_bits: int = 6
    """graded input resolution: one normalised observation unit = 2**frac_bits payload (8-bit payloads, so
    two-neuron inputs saturate at 255 / 2**frac_bits normalised units)."""
    q_scale: float = 0.0
    """Q = q_scale * readout (0 = the environment's default). The readout weights are 8-bit (steps of 1/32):
    a small q_scale makes them carry Q in many steps, so small action gaps stay representable. For a TD3 actor
    the action is tanh(q_scale * readout), scaled to the action bounds."""
    q_init: str = "zero"
    """'reward': before the first update, shift Q (through the readout bias) to mean(reward) / (1 - gamma), the
    fixed point of the targets where no episode ends; with -1 per step (Acrobot) Q otherwise drifts down by
    about one per target update for the whole run and drives hidden neurons to constant rates. 'zero': leave
    the initial Q as it is."""
    double_dqn: bool = True
    """Double DQN targets (False: vanilla DQN)."""
    lr: float = 5e-4
    adam_eps: float = 1e-8
    """Adam's epsilon (Dopamine's DQN uses 0.01 / 32: tiny gradients then make small steps, not lr-sized ones)."""
    lr_final: float = 0.0
    """learning rate at total_steps, annealed linearly from lr (0 = constant lr)."""
    gamma: float = 0.99
    n_step: int = 1
    """n-step returns: targets sum n discounted rewards before bootstrapping (1 = plain DQN)."""
    buffer_size: int = 50_000
    batch_size: int = 64
    learning_starts: int = 1_000
    train_freq: int = 1
    """env steps between training rounds."""
    gradient_steps: int = 1
    """gradient updates per training round."""
    target_update: int = 500
    """env steps between target-network updates."""
    target_tau: float = 1.0
    """target update weight (CleanRL semantics): target <- tau * online + (1 - tau) * target every target_update
    steps; 1 = hard copy."""
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.3
    """fraction of total_steps over which epsilon decays linearly."""
    max_grad_norm: float = 10.0
    eval_every: int = 1_000
    """env steps between greedy evaluations (the best evaluated weights become model.pt)."""
    eval_episodes: int = 10
    final_eval_episodes: int = 20
    checkpoint_every: int = 5_000
    resume: str = ""
    """path of a checkpoint (model.pt of an unfinished run) to continue from: its saved config and budget
    (--total-steps sets a new one), written to the checkpoint's folder unless --out is given; only --total-steps,
    --out, --device and --[no-]progress may differ from the saved run."""
    progress: bool = True
    """show a progress bar."""
    eval_max_steps: int = 0
    """cap on agent steps per evaluation episode (0 = none). The Atari presets: 4500 (18,000 frames), the five
    minutes of play per episode of Mnih et al. 2015's protocol, which the DSQN paper and the reference scores follow."""
    eval_epsilon: float = 0.0
    """epsilon of the evaluation policy (the DSQN paper evaluates Atari at 0.05)."""
    arch: str = ""
    """'mlp' (hidden dense layers) or 'nature' (Nature-DQN convs + the last hidden width); '' = by env."""
    qnet: str = "snn"
    """dqn: 'snn' (the spiking Q-network, exported to Loihi) or 'ann' (the same-shape ReLU Q-network -- the
    Nature-DQN for Atari --: the baseline trained by the same loop with the same settings, not exportable)."""
    actor: str = "snn"
    """td3: 'snn' (the spiking actor, exported to Loihi) or 'ann' (the same-shape ReLU MLP actor: the baseline
    trained by the same loop, not exportable)."""
    critic_hidden: list[int] = field(default_factory=list)
    """td3: hidden widths of each of the twin ANN critics (empty = the algorithm's default, 400 300)."""
    exploration_noise: float = 0.1
    """td3: std of the Gaussian noise added to the actor's action in [-1, 1] while collecting experience."""
    policy_noise: float = 0.2
    """td3: std of the target policy smoothing noise (in [-1, 1] action units)."""
    noise_clip: float = 0.5
    """td3: the smoothing noise is clipped to +-noise_clip."""
    policy_delay: int = 2
    """td3: critic updates per actor (and target) update."""
    device: str = "auto"
    """where the network trains and acts: auto (CUDA when torch sees a GPU), cpu or cuda. The result is the same
    integers on every device (exact kernels; TF32 is switched off)."""


FIELD_DEFAULTS = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory()) for f in fields(TrainConfig)}  # type: ignore[misc]
ENV_DEFAULTS: dict[str, dict] = {
    # CartPole: the greedy policy swings between ~50 and 500 from one thousand steps to the next; evaluating every
    # 500 steps over 20 episodes keeps a weight set that holds 500 (README, training results).
    "CartPole-v1": {"total_steps": 30_000, "hidden": [64, 64], "q_scale": 2.0, "eval_every": 500, "eval_episodes": 20},
    # Acrobot: SB3-zoo DQN schedule (lr 6.3e-4, target every 250, epsilon 1 -> 0.1 over 12 %), 3-step returns,
    # Q started at its no-goal fixed point -100 (q_scale 4 keeps that within the readout bias range).
    "Acrobot-v1": {"total_steps": 30_000, "hidden": [128, 128], "q_scale": 4.0, "target_update": 250, "lr": 6.3e-4,
                   "eps_fraction": 0.12, "eps_end": 0.1, "n_step": 3, "q_init": "reward"},
}
FALLBACK_DEFAULTS = {"total_steps": 50_000, "hidden": [64, 64], "q_scale": 2.0}
# TD3 with a spiking actor (Akl et al. 2023: actor 400-300, T = 5, two-neuron encoding; ANN twin critics 400-300);
# the rest as CleanRL's td3_continuous_action (Fujimoto et al. 2018): Adam 3e-4, batch 256, tau 0.005, policy delay 2,
# 25k random steps first. Targets follow the actor with tau at every actor update (target_update is not used).
TD3_DEFAULTS = {"algo": "td3", "total_steps": 200_000, "hidden": [400, 300], "timesteps": 5, "q_scale": 1.0, "lr": 3e-4,
                "batch_size": 256, "buffer_size": 1_000_000, "learning_starts": 25_000, "target_tau": 0.005,
                "eval_every": 10_000, "eval_episodes": 10, "final_eval_episodes": 20, "checkpoint_every": 10_000,
                "critic_hidden": [400, 300]}
# Pendulum: rl-baselines3-zoo's TD3 schedule (20k steps, 10k random, gamma 0.98, lr 1e-3, 400-300) with the batch of
# Fujimoto et al.'s TD3 (100; a spiking 400-300 actor at batch 256 costs ~2.5x more per update on 2 cores).
ENV_DEFAULTS["Pendulum-v1"] = {**TD3_DEFAULTS, "total_steps": 20_000, "learning_starts": 10_000, "gamma": 0.98, "lr": 1e-3, "batch_size": 100,
                               "buffer_size": 200_000, "eval_every": 1_000, "eval_episodes": 10, "checkpoint_every": 5_000}
# Liu et al. 2022 (DSQN) on Atari: Nature-DQN layout, T = 64, Adam 1e-4, batch 32, replay 1M, learning
# starts 50k, target copy every 10k, train every 4 steps, epsilon 1 -> 0.1 over 1M steps, eval at 0.05.
ATARI_DEFAULTS = {"total_steps": 10_000_000, "hidden": [512], "q_scale": 1.0, "arch": "nature", "timesteps": 64,
                  "lr": 1e-4, "batch_size": 32, "buffer_size": 1_000_000, "learning_starts": 50_000,
                  "target_update": 10_000, "train_freq": 4, "eps_end": 0.1, "eval_epsilon": 0.05,
                  "eval_every": 250_000, "eval_episodes": 10, "final_eval_episodes": 30, "checkpoint_every": 100_000,
                  "threshold": 1.0, "current_decay": 0.5, "voltage_decay": 0.5, "init_rate": 0.1, "eval_max_steps": 4_500}
# A schedule for a few hours of compute instead of the paper's 10M steps at T = 64. Each value and its source:
#   total_steps 100k agent steps (400k frames): the Atari 100k benchmark (Kaiser et al. 2020), where published
#     data-efficient DQN variants report scores to compare with;
#   timesteps T = 8: SpikingJelly's Atari DSQN example runs T = 8; the cost of an update and of an inference is
#     linear in T, so 8x cheaper than the paper's 64 (the paper's T is the 'paper' preset);
#   learning_starts 1600, train_freq 1 (one update per agent step), target_update 2000: data-efficient Rainbow
#     (van Hasselt et al. 2019), the schedule most Atari-100k agents start from;
#   n_step 10, lr 1e-4 with Adam eps 1.5e-4, epsilon 1 -> 0.01 over the first 5k steps: DrQ(eps), the DQN-based
#     data-efficient agent of Agarwal et al. 2021 (without its image augmentation);
#   buffer 110k frames (the whole run, its 100k transitions and one reset frame per episode: nothing is forgotten),
#   evaluation as the paper's protocol (30 final episodes, eps 0.05).
DATA_EFFICIENT = {**ATARI_DEFAULTS, "total_steps": 100_000, "timesteps": 8, "buffer_size": 110_000, "learning_starts": 1_600,
                  "train_freq": 1, "target_update": 2_000, "n_step": 10, "lr": 1e-4, "adam_eps": 1.5e-4, "eps_end": 0.01,
                  "eval_every": 10_000, "eval_episodes": 10, "checkpoint_every": 10_000}
# 'cpu': the data-efficient schedule at a quarter of its replay ratio -- one update every 4 agent steps (the Nature
#   DQN's train_freq), everything else as above -- so that the spiking network's 25k updates (T = 8, ~1 s each on
#   one core of this 2-core CPU) fit a few hours, where the data-efficient preset's 100k updates take ~28 h of a
#   core. The target copy stays every 2000 agent steps (500 updates). Weaker learning per step is the price.
CPU_BUDGET = {**DATA_EFFICIENT, "train_freq": 4}
# 'cpu-session': the 'cpu' schedule stopped at 40k agent steps (160k frames, 10k updates): the spiking network's run
#   then takes ~1.5-2 h of one core and fits one 3-hour session of this machine, where nothing but the git
#   repository survives from one session to the next (a checkpoint with its replay cannot be carried over).
#   Periodic evaluations of 5 episodes (the learning curve's points; the final evaluation keeps the protocol's 30).
#   Everything else -- T = 8, epsilon over 5k steps, learning starts, n-step, target period -- as 'cpu'.
CPU_SESSION = {**CPU_BUDGET, "total_steps": 40_000, "eval_episodes": 5}
ATARI_PRESETS = {"paper": ATARI_DEFAULTS, "data-efficient": DATA_EFFICIENT, "cpu": CPU_BUDGET, "cpu-session": CPU_SESSION}
EPS_DECAY_STEPS = {"paper": 1_000_000, "data-efficient": 5_000, "cpu": 5_000, "cpu-session": 5_000}  # epsilon 1 -> eps_end over these many env steps


def resolve(cfg: TrainConfig, explicit: set[str] | None = None) -> TrainConfig:
    """Fill 'use the environment's default' fields; explicit CLI values always win."""
    from dsqn.envs import atari_game, is_continuous

    explicit = explicit or set()
    atari = atari_game(cfg.env_id) is not None
    algo = cfg.algo or ("td3" if not atari and is_continuous(cfg.env_id) else "dqn")
    if algo == "td3":
        defaults = ENV_DEFAULTS.get(cfg.env_id, TD3_DEFAULTS)
        if defaults.get("algo") != "td3":
            defaults = TD3_DEFAULTS
    elif atari:
        if cfg.preset and cfg.preset not in ATARI_PRESETS:
            raise UserError(f"--preset {cfg.preset}: unknown (Atari presets: {', '.join(ATARI_PRESETS)})")
        defaults = ATARI_PRESETS[cfg.preset or "paper"]
    else:
        defaults = ENV_DEFAULTS.get(cfg.env_id, FALLBACK_DEFAULTS)
        defaults = defaults if defaults.get("algo", "dqn") == "dqn" else FALLBACK_DEFAULTS
    defaults = {**defaults, "algo": algo}
    updates = {}
    for key, val in defaults.items():
        cur = getattr(cfg, key)
        if key in explicit:
            continue
        if atari or cur in (0, 0.0, [], "") or cur == FIELD_DEFAULTS[key] or key == "algo":  # an unchanged default yields to the env's
            updates[key] = val
    if algo == "td3" and not cfg.critic_hidden and "critic_hidden" not in updates:
        updates["critic_hidden"] = [400, 300]
    if not atari and "arch" not in explicit and not cfg.arch:
        updates["arch"] = "mlp"
    if cfg.preset and not atari:
        raise UserError(f"--preset {cfg.preset}: presets are Atari schedules; {cfg.env_id} takes its own defaults")
    if atari:
        updates["preset"] = cfg.preset or "paper"
    total = updates.get("total_steps", cfg.total_steps)
    if atari and total and "eps_fraction" not in explicit:  # epsilon decays over a fixed number of steps, any budget
        updates["eps_fraction"] = min(1.0, EPS_DECAY_STEPS[updates["preset"]] / total)
    cfg = dataclasses.replace(cfg, **updates)
    validate(cfg)
    return cfg


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# Options that count something and must be at least 1 / at least 0 (a loop step, an interval, an episode count).
POSITIVE_INTS = ("timesteps", "eval_every", "checkpoint_every", "target_update", "train_freq", "gradient_steps",
                 "eval_episodes", "final_eval_episodes", "policy_delay")
NON_NEGATIVE_INTS = ("seed", "learning_starts", "eval_max_steps", "frac_bits")
FRACTIONS = ("current_decay", "voltage_decay", "eps_start", "eps_end", "eval_epsilon", "init_rate")  # in [0, 1]
NON_NEGATIVE_FLOATS = ("exploration_noise", "policy_noise", "noise_clip")
POSITIVE_FLOATS = ("lr", "threshold", "tau_grad", "scale_grad", "max_grad_norm", "q_scale")


def validate(cfg: TrainConfig) -> None:
    """Every option in its range, before anything is built or written: one-line UserError naming the option."""
    from dsqn.envs import atari_game

    atari = atari_game(cfg.env_id) is not None if isinstance(cfg.env_id, str) else False
    for f in fields(TrainConfig):
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
    if cfg.algo not in ("", "dqn", "td3"):
        raise UserError(f"--algo {cfg.algo!r}: expected dqn or td3")
    if not 0 <= cfg.membrane_jitter <= 1:
        raise UserError(f"--membrane-jitter {cfg.membrane_jitter}: must lie in [0, 1] (a fraction of each mean)")
    if cfg.param_groups < 0:
        raise UserError(f"--param-groups {cfg.param_groups}: must not be negative (0 = one group per neuron)")
    if cfg.param_groups and not cfg.membrane_jitter:
        raise UserError(f"--param-groups {cfg.param_groups}: groups quantize heterogeneous neurons; give --membrane-jitter > 0")
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
    if cfg.total_steps <= 0:
        raise UserError(f"--total-steps {cfg.total_steps}: must be positive")
    if cfg.batch_size <= 0 or cfg.buffer_size < cfg.batch_size:
        raise UserError(f"--batch-size {cfg.batch_size}, --buffer-size {cfg.buffer_size}: the batch size must be positive "
                        "and the buffer at least one batch")
    if not 0 < cfg.target_tau <= 1:
        raise UserError(f"target_tau={cfg.target_tau} must lie in (0, 1]")
    if cfg.q_init not in ("zero", "reward"):
        raise UserError(f"q_init={cfg.q_init!r}: expected 'zero' or 'reward'")
    if cfg.adam_eps <= 0:
        raise UserError(f"adam_eps={cfg.adam_eps} must be positive")
    if cfg.n_step < 1:
        raise UserError(f"--n-step {cfg.n_step}: must be >= 1")
    if not 0 < cfg.gamma <= 1:
        raise UserError(f"gamma={cfg.gamma} must lie in (0, 1]")


def _field_doc(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) for --help."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(getattr(b, "value", None), ast.Constant):
            docs[a.target.id] = str(b.value.value)  # type: ignore[union-attr]
    return docs


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, set[str]]:
    docs = _field_doc(TrainConfig)
    parser = ArgumentParser(prog="dsqn-train", description="Train a spiking policy (SLAYER-compatible CUBA-LIF, exact Loihi arithmetic): a deep spiking "
                                     "Q-network with DQN / Double DQN, or a spiking actor with TD3.",
                                     allow_abbrev=False)
    for f in fields(TrainConfig):
        name = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_ = f"{docs.get(f.name, '')} (default: {default})"
        if f.type in ("bool", bool):
            parser.add_argument(name, action=argparse.BooleanOptionalAction, default=default, help=help_)
        elif f.name in ("hidden", "critic_hidden"):
            parser.add_argument(name, type=int, nargs="+", default=default, help=help_)
        elif f.name == "obs_scale":
            parser.add_argument(name, type=float, nargs="+", default=default, help=help_)
        else:
            typ = {"int": int, "float": float, "str": str}[str(f.type)]
            parser.add_argument(name, type=typ, default=default, help=help_)
    ns = parser.parse_args(argv)
    explicit = {a.lstrip("-").split("=")[0].replace("-", "_") for a in (argv if argv is not None else __import__("sys").argv[1:]) if a.startswith("--")}
    explicit = {e[3:] if e.startswith("no_") else e for e in explicit}
    return TrainConfig(**vars(ns)), explicit
