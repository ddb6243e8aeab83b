"""dsqn-train's one config: a documented dataclass, the per-environment values in ``hyperparams/*.yml``, and how
they combine. An option given by the user (command line, ``--config FILE`` or :func:`make_config`'s keywords) always
wins; otherwise the environment's hyperparameter file; otherwise the dataclass default. The CLI (``cli.py``) resolves
the environment's values *before* it parses, so ``--help`` and ``--print-config`` show what runs."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from dsqn.errors import UserError

from .validation import rate_list, validate

HYPERPARAMS = Path(__file__).with_name("hyperparams")  # dqn.yml, td3.yml: rl-baselines3-zoo's layout
ATARI_PRESETS = ("paper", "data-efficient", "cpu", "cpu-session")
# Keys of configs written before the names followed CleanRL's (total_steps, timesteps): read under their new names.
RENAMED = {"total_steps": "total_timesteps", "timesteps": "snn_steps"}


@dataclass
class TrainConfig:
    env_id: str = "CartPole-v1"
    """gymnasium environment id: classic control, Atari (ALE/<Game>-v5) or MuJoCo (Box actions, TD3)."""
    algo: str = ""
    """'dqn' (DSQN, discrete actions) or 'td3' (a spiking actor with ANN critics, Box actions); '' = by the
    environment's action space."""
    preset: str = ""
    """Atari: a schedule from train/hyperparams/dqn.yml: 'paper' (Liu et al. 2022, T = 64, 10M steps; the default),
    'data-efficient' (T = 8, 100k agent steps, one update per step), 'cpu' (the same at one update per 4 steps: a few
    CPU hours) or 'cpu-session' ('cpu' stopped at 40k steps: one session of a 2-core CPU)."""
    seed: int = 1
    """seed for python, numpy, torch, env.reset and action_space."""
    exp_name: str = ""
    """name of the experiment, part of the run folder's name ('' = dsqn for DQN, td3 for TD3)."""
    out: str = ""
    """run folder ('' = runs/<env>__<exp-name>__<seed>__<unix time>). An existing non-empty folder is refused unless
    --resume or --overwrite is given."""
    total_timesteps: int = 50_000
    """environment steps to train (the training budget; alias --total-steps)."""
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layer widths."""
    snn_steps: int = 8
    """T: the spiking network's simulation steps per inference (alias --T): a power of 2 (Loihi resets the network's
    state every T steps, reset_interval = T) from 2 to 256, above the number of layers (each synapse delays one step)."""
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
    """data-driven initialisation (dsqn.layers.qnet.SpikingQNet.calibrate_): scale each hidden layer's initial weights so
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
    q_scale: float = 2.0
    """Q = q_scale * readout. The readout weights are 8-bit (steps of 1/32):
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
    """learning rate at total_timesteps, annealed linearly from lr (0 = constant lr)."""
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
    """fraction of total_timesteps over which epsilon decays linearly (unless eps_decay_steps is set)."""
    eps_decay_steps: int = 0
    """env steps over which epsilon decays linearly, whatever the budget (capped at total_timesteps; 0 = use
    eps_fraction). The Atari presets fix it (the paper: 1M steps; the data-efficient schedules: 5k)."""
    max_grad_norm: float = 10.0
    synop_penalty: float = 0.0
    """activity regularisation of the spiking network (train/activity.py): adds synop_penalty x (synaptic operations
    per inference as the emulator counts them, through the surrogate gradient) / (the same-shape ANN's MACs) to its
    loss (0 = off)."""
    rate_target: list[float] = field(default_factory=list)
    """activity regularisation: adds the sum over hidden layers h of relu(spike rate_h - rate_target_h)**2 to the
    spiking network's loss (rate: spikes per neuron and step over the layer's window, batch mean). One value: every
    hidden layer; one per hidden layer: each its own; a 0 leaves its layer free; none (the default) = off."""
    eval_every: int = 1_000
    """env steps between greedy evaluations (the best evaluated weights become model.pt)."""
    eval_episodes: int = 10
    final_eval_episodes: int = 20
    checkpoint_every: int = 5_000
    resume: str = ""
    """path of a checkpoint (model.pt of an unfinished run) to continue from: its saved config and budget
    (--total-timesteps sets a new one), written to the checkpoint's folder unless --out is given; only
    --total-timesteps, --out, --device and --[no-]progress may differ from the saved run."""
    progress: bool = True
    """show a progress bar."""
    eval_max_steps: int = 0
    """cap on agent steps per evaluation episode (0 = none). The Atari presets: 4500 (18,000 frames), the five
    minutes of play per episode of Mnih et al. 2015's protocol, which the DSQN paper and the reference scores follow."""
    eval_epsilon: float = 0.0
    """epsilon of the evaluation policy (the DSQN paper evaluates Atari at 0.05)."""
    arch: str = "mlp"
    """'mlp' (hidden dense layers) or 'nature' (Nature-DQN convs + the last hidden width; the Atari presets)."""
    qnet: str = "snn"
    """dqn: 'snn' (the spiking Q-network, exported to Loihi) or 'ann' (the same-shape ReLU Q-network -- the
    Nature-DQN for Atari --: the baseline trained by the same loop with the same settings, not exportable)."""
    actor: str = "snn"
    """td3: 'snn' (the spiking actor, exported to Loihi) or 'ann' (the same-shape ReLU MLP actor: the baseline
    trained by the same loop, not exportable)."""
    critic_hidden: list[int] = field(default_factory=lambda: [400, 300])
    """td3: hidden widths of each of the twin ANN critics."""
    exploration_noise: float = 0.1
    """td3: std of the Gaussian noise added to the actor's action in [-1, 1] while collecting experience."""
    policy_noise: float = 0.2
    """td3: std of the target policy smoothing noise (in [-1, 1] action units)."""
    noise_clip: float = 0.5
    """td3: the smoothing noise is clipped to +-noise_clip."""
    policy_delay: int = 2
    """td3: critic updates per actor (and target) update."""
    track: bool = False
    """log the run to Weights & Biases (wandb, synced from the TensorBoard files; needs `pip install wandb`)."""
    wandb_project_name: str = "dsqn"
    """with --track: the W&B project."""
    wandb_entity: str = ""
    """with --track: the W&B entity (team or user; '' = your default)."""
    capture_video: bool = False
    """record the first final-evaluation episode as an MP4 in <run>/videos (gymnasium's RecordVideo; needs moviepy)."""
    device: str = "auto"
    """where the network trains and acts: auto (CUDA when torch sees a GPU), cpu or cuda. The result is the same
    integers on every device (exact kernels; TF32 is switched off)."""



FIELD_DEFAULTS: dict[str, Any] = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
                                  for f in fields(TrainConfig)}


@cache
def _hyperparams(algo: str) -> dict[str, dict]:
    import yaml

    with open(HYPERPARAMS / f"{algo}.yml") as fh:
        return yaml.safe_load(fh)


def env_defaults(env_id: str, algo: str = "", preset: str = "") -> dict[str, Any]:
    """The values of ``hyperparams/<algo>.yml`` for this environment (with env_id, the resolved algo and preset)."""
    from dsqn.envs import atari_game, is_continuous

    atari = atari_game(env_id) is not None
    if algo not in ("", "dqn", "td3"):
        raise UserError(f"--algo {algo!r}: expected dqn or td3")
    algo = algo or ("td3" if not atari and is_continuous(env_id) else "dqn")
    if preset and not atari:
        raise UserError(f"--preset {preset}: presets are Atari schedules; {env_id} takes its own defaults")
    if atari and algo == "td3":
        raise UserError(f"--algo td3: {env_id} has discrete actions; TD3 needs a continuous (Box) action space (use --algo dqn)")
    table = _hyperparams(algo)
    if atari:
        if preset and preset not in ATARI_PRESETS:
            raise UserError(f"--preset {preset}: unknown (Atari presets: {', '.join(ATARI_PRESETS)})")
        preset = preset or "paper"
        values = table[f"atari/{preset}"]
    else:
        values = table.get(env_id, table["default"])
    return {**values, "env_id": env_id, "algo": algo, "preset": preset}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file (a run's config.json, or YAML with any subset of the options): its options by field name.
    Old names (total_steps, timesteps) are read under their new ones; unknown names are refused in one line."""
    import yaml

    p = Path(path)
    try:
        with open(p) as fh:
            data = yaml.safe_load(fh)  # JSON is YAML
    except OSError as exc:
        raise UserError(f"--config {p}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"--config {p}: not JSON or YAML ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {p}: expected a mapping of option names to values")
    return migrate(data, f"--config {p}")


def migrate(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Options by field name: old names renamed, the written-out warnings dropped, unknown names refused."""
    out = {RENAMED.get(k, k): v for k, v in data.items() if k != "warnings"}
    unknown = sorted(set(out) - set(FIELD_DEFAULTS))
    if unknown:
        raise UserError(f"{where}: unknown option(s) {', '.join(unknown)} (dsqn-train --help lists them)")
    return out


def make_config(env_id: str | None = None, algo: str = "", preset: str = "", **options: Any) -> TrainConfig:
    """The config that runs: ``options`` (field names) over the environment's hyperparameters over the dataclass
    defaults; then the experiment name and run folder where not given; validated. For notebooks and the CLI alike."""
    env_id = env_id or FIELD_DEFAULTS["env_id"]
    unknown = sorted(set(options) - set(FIELD_DEFAULTS))
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} (dsqn-train --help lists them)")
    values = {**FIELD_DEFAULTS, **env_defaults(env_id, algo, preset), **options}
    if not values["exp_name"]:
        values["exp_name"] = "dsqn" if values["algo"] == "dqn" else values["algo"]
    if not values["out"] and not values["resume"]:
        values["out"] = f"runs/{env_id.replace('/', '_')}__{values['exp_name']}__{values['seed']}__{int(time.time())}"
    if values["out"]:
        values["out"] = str(Path(values["out"]))
    values["rate_target"] = rate_list(values["rate_target"])
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


def config_warnings(cfg: TrainConfig) -> list[str]:
    """What makes a run useless though every option is valid (printed first, and written into config.json)."""
    out = []
    if cfg.learning_starts >= cfg.total_timesteps:
        out.append(f"no gradient update will happen: learning starts at step {cfg.learning_starts}, the budget is "
                   f"{cfg.total_timesteps} steps (--learning-starts, --total-timesteps)")
    return out


def config_json(cfg: TrainConfig) -> str:
    """config.json's text, also what --print-config prints: every option, and the warnings if any."""
    d: dict[str, Any] = dataclasses.asdict(cfg)
    warnings = config_warnings(cfg)
    if warnings:
        d["warnings"] = warnings
    return json.dumps(d, indent=2) + "\n"
