"""The training runner: one environment loop for every algorithm (``dqn.py``, ``td3.py``).

The runner owns what every algorithm shares -- seeding, the environment, n-step returns, the replay memory,
greedy evaluation (the best evaluated weights become ``model.pt``'s ``model``), checkpoint / resume,
metrics.csv and TensorBoard, the progress line. An algorithm owns its networks and optimizers and answers:

* ``explore(env, payload, step) -> (env_action, stored_action)``: the behaviour policy's action;
* ``update(batch, step, log) -> (csv_kind, csv_value, scalars)``: one gradient update from a replay batch
  (``scalars``, for TensorBoard, only when ``log``);
* ``after_step(step)``: per-step bookkeeping (the DQN target copy);
* ``on_reward(reward)``, ``before_updates(replay, step)``: hooks for DQN's Q initialisation;
* ``state() / load(state)``: its part of the checkpoint (``target_model`` and ``optimizer`` at least).

``model`` is the spiking network the algorithm trains as the policy (the Q-network, or TD3's actor): the one
that is evaluated, checkpointed as ``model`` and exported.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import random
import secrets
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dsqn.checkpoint import check_resumable, file_sha256, load_checkpoint, save_checkpoint
from dsqn.cuba import exact_matmul_settings
from dsqn.encoding import Encoder
from dsqn.envs import (
    FINAL_EVAL_SEED,
    EpsilonGreedy,
    atari_game,
    is_continuous,
    make_env,
    score_summary,
    truncated_episodes,
)
from dsqn.errors import UserError
from dsqn.fileio import atomic_write_text, check_output_dir, remove_stale_temp_files
from dsqn.qnet import SpikingQNet

from .activity import ActivityMeter
from .config import FIELD_DEFAULTS, TrainConfig, config_json, config_warnings, migrate, validate
from .replay import FrameReplay, ReplayBuffer

LOG_EVERY = 250  # env steps between logged losses and spike statistics


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when torch sees a GPU, else the CPU; 'cuda' without a GPU is a one-line error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA device (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: expected auto, cpu or cuda")
    if name == "cuda":
        exact_matmul_settings()
    return torch.device(name)


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def algo_of(cfg: TrainConfig) -> str:
    """The algorithm a config trains: ``--algo``, or by the action space (td3 for Box, dqn otherwise)."""
    if cfg.algo:
        return cfg.algo
    return "td3" if is_continuous(cfg.env_id) else "dqn"


class NStepReturns:
    """Turns the stream of 1-step transitions into n-step ones (o_t, a_t, sum_k gamma^k r_{t+k}, o_{t+m}, done, gamma^m),
    m = n, or fewer at the end of an episode; a truncated episode bootstraps from its last observation."""

    def __init__(self, n: int, gamma: float) -> None:
        self.n, self.gamma = n, gamma
        self.pending: deque[tuple] = deque()

    def push(self, obs: np.ndarray, action, reward: float, next_obs: np.ndarray, term: bool, trunc: bool) -> list[tuple]:  # type: ignore[no-untyped-def]
        self.pending.append((obs, action, reward))
        out = []
        if term or trunc:
            while self.pending:
                out.append(self._pop(next_obs, term))
        elif len(self.pending) == self.n:
            out.append(self._pop(next_obs, False))
        return out

    def _pop(self, next_obs: np.ndarray, term: bool) -> tuple:
        ret = sum(self.gamma**k * r for k, (_, _, r) in enumerate(self.pending))
        m = len(self.pending)
        obs, action, _ = self.pending.popleft()
        return obs, action, float(ret), next_obs, term, self.gamma**m


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


def anneal_lr(optimizers: list[torch.optim.Optimizer], cfg: TrainConfig, step: int) -> None:
    """lr -> lr_final linearly over the run (lr_final 0: constant)."""
    if cfg.lr_final > 0:
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = cfg.lr + (cfg.lr_final - cfg.lr) * step / cfg.total_timesteps


# What a resumed run may change; everything else is the saved run's config.
RESUME_OVERRIDES = ("resume", "total_timesteps", "out", "device", "progress")


def resume_config(cfg: TrainConfig, explicit: set[str] | None = None) -> tuple[TrainConfig, dict]:
    """The config and the checkpoint of a run to continue. The saved config is kept; ``--total-timesteps`` (default: the
    saved budget), ``--out`` (default: the checkpoint's folder), ``--device`` and ``--[no-]progress`` may change.
    ``explicit`` holds the options given on the command line (None: those of RESUME_OVERRIDES that differ from
    their defaults). Other options given with a value other than the saved one are refused in one line."""
    path = Path(cfg.resume)
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path)
    try:
        saved_kw = json.loads(ckpt["config_json"])
    except ValueError:
        raise UserError(f"{path}: its config is not valid JSON; cannot resume") from None
    if not isinstance(saved_kw, dict):
        raise UserError(f"{path}: its config is not a JSON object; cannot resume")
    saved = TrainConfig(**{**FIELD_DEFAULTS, **migrate(saved_kw, f"{path}: cannot resume")})
    if not saved.algo:  # written before --algo existed: every such run was DQN
        saved = dataclasses.replace(saved, algo="dqn")
    if explicit is None:
        explicit = {k for k in RESUME_OVERRIDES if getattr(cfg, k) != FIELD_DEFAULTS[k]}
    else:
        changed = sorted(k for k in set(explicit) - set(RESUME_OVERRIDES) if k in FIELD_DEFAULTS and getattr(cfg, k) != getattr(saved, k))
        if changed:
            raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in changed)}: a resumed run keeps its saved config; "
                            "only --total-timesteps, --out, --device and --[no-]progress can change")
    merged = dataclasses.replace(
        saved, resume=str(path),
        total_timesteps=cfg.total_timesteps if "total_timesteps" in explicit else saved.total_timesteps,
        out=cfg.out if "out" in explicit and cfg.out else str(path.parent),  # never the saved out: relative to another cwd
        device=cfg.device if "device" in explicit else saved.device,
        progress=cfg.progress if "progress" in explicit else saved.progress,
    )
    try:
        validate(merged)
    except UserError as exc:
        if str(exc).startswith(tuple("--" + k.replace("_", "-") + " " for k in explicit)):
            raise  # an option given now
        raise UserError(f"{path}: cannot resume: its config: {exc}") from None
    if merged.total_timesteps < ckpt["step"]:
        raise UserError(f"--total-timesteps {merged.total_timesteps}: {path} is already at step {ckpt['step']}")
    return merged, ckpt


def make_algorithm(cfg: TrainConfig, device: torch.device):  # type: ignore[no-untyped-def]
    if cfg.algo == "td3":
        from .td3 import TD3

        return TD3(cfg, device)
    from .dqn import DQN

    return DQN(cfg, device)


def save_frame_replay(rb: FrameReplay, run_dir: Path, step: int, cfg: TrainConfig) -> dict:
    """Write the Atari frame store beside model.pt; returns what model.pt records of it (file, token, env, preset)."""
    token = secrets.token_hex(8)  # a new file each time: the one model.pt names is never overwritten
    rec = {"file": f"replay-{step}-{token}.npz", "token": token, "env_id": cfg.env_id, "preset": cfg.preset,
           "transitions": len(rb)}
    rb.save(run_dir / rec["file"], {k: rec[k] for k in ("token", "env_id", "preset")} | {"step": step})
    return rec


def load_frame_replay(rb: FrameReplay, ckpt: Path, rec: dict, cfg: TrainConfig) -> None:
    """Refill the frame store from the file model.pt names; one-line UserError if it is missing or not that file."""
    name = rec.get("file") if isinstance(rec, dict) else None
    if not isinstance(name, str) or "/" in name or not name.startswith("replay-"):
        raise UserError(f"{ckpt}: cannot resume: the checkpoint names no replay file (written before the frame store "
                        "was checkpointed?)")
    if rec.get("env_id") != cfg.env_id or rec.get("preset") != cfg.preset:
        raise UserError(f"{ckpt}: cannot resume: its replay was recorded for {rec.get('env_id')} / preset "
                        f"{rec.get('preset')!r}, the checkpoint's run is {cfg.env_id} / {cfg.preset!r}")
    path = ckpt.parent / name
    if not path.is_file():
        raise UserError(f"{ckpt}: cannot resume: its replay memory {path} is missing")
    try:
        rb.load(path, {"token": rec.get("token"), "env_id": cfg.env_id, "preset": cfg.preset})
    except (ValueError, OSError, KeyError, EOFError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"{ckpt}: cannot resume: its replay memory does not match: {msg}") from None


def check_extras(cfg: TrainConfig) -> None:
    """The optional packages an option needs, checked before anything is written (one line naming the install)."""
    import importlib.util

    from dsqn.extras import require

    if cfg.track and importlib.util.find_spec("wandb") is None:
        raise UserError("--track needs Weights & Biases: pip install wandb")
    if cfg.capture_video:
        require("--capture-video", "video", "moviepy")
        try:  # a frame now, not after hours of training (pygame for classic control, a GL context for MuJoCo)
            env = make_env(cfg.env_id, render_mode="rgb_array")
            try:
                env.reset(seed=cfg.seed)
                env.render()
            finally:
                env.close()
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - rendering back ends fail in many ways
            raise UserError(f"--capture-video: {cfg.env_id} cannot render frames here: {' '.join(str(exc).split())[:200]}") from None


def start_tracking(cfg: TrainConfig, run_dir: Path):  # type: ignore[no-untyped-def]
    """--track: a Weights & Biases run that mirrors the TensorBoard files (as CleanRL's ``--track``); None otherwise."""
    if not cfg.track:
        return None
    import wandb

    return wandb.init(project=cfg.wandb_project_name, entity=cfg.wandb_entity or None, sync_tensorboard=True,
                      config=dataclasses.asdict(cfg), name=run_dir.name, dir=str(run_dir), save_code=False)


def truncate_metrics(path: Path, step: int) -> None:
    """Keep metrics.csv's rows up to ``step`` (the checkpoint a run resumes from): the steps after it run again."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [r for i, r in enumerate(rows) if i == 0 or (r and r[0].isdigit() and int(r[0]) <= step)]
    if len(keep) != len(rows):
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        atomic_write_text(path, buf.getvalue())


def prepare_run_dir(cfg: TrainConfig, overwrite: bool) -> Path:
    """The run folder, checked before anything is written: a non-empty folder is another run's (or a resumed run's
    own), never silently reused. ``overwrite`` moves it aside to ``<out>.old-<time>`` (one rename, nothing deleted)."""
    run_dir = Path(cfg.out)
    check_output_dir(run_dir)
    own = cfg.resume and Path(cfg.resume).parent.absolute() == run_dir.absolute()
    if run_dir.is_dir() and any(run_dir.iterdir()) and not own:
        if not overwrite:
            raise UserError(f"{run_dir}: the run folder exists and is not empty; continue that run with --resume "
                            f"{run_dir / 'model.pt'}, move it aside with --overwrite, or choose another --out")
        aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            aside, n = aside.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
        try:
            run_dir.rename(aside)
        except OSError as exc:
            raise UserError(f"{run_dir}: cannot move it aside to {aside} ({exc.strerror or exc.__class__.__name__})") from None
        print(f"dsqn-train: moved the existing {run_dir} to {aside} (--overwrite)", flush=True)
    return run_dir


def train(cfg: TrainConfig, explicit: set[str] | None = None, overwrite: bool = False) -> Path:
    """Train and return the path of model.pt. With ``cfg.resume``, continue that run (see :func:`resume_config`).

    Everything is checked (options, environment, network, the checkpoint's state, the run folder) before the run
    folder is created or anything is written."""
    start_state: dict | None = None
    if cfg.resume:
        cfg, start_state = resume_config(cfg, explicit)
    else:
        cfg = dataclasses.replace(cfg, algo=algo_of(cfg))
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    algo = make_algorithm(cfg, device)  # bad parameters and environments fail here, before anything is written
    model, spec, encoder = algo.model, algo.spec, algo.encoder
    if not cfg.out:  # a TrainConfig built by hand rather than by make_config
        cfg = dataclasses.replace(cfg, out=f"runs/{cfg.env_id.replace('/', '_')}__{cfg.exp_name or 'dsqn'}__{cfg.seed}__{int(time.time())}")
    check_extras(cfg)
    run_dir = prepare_run_dir(cfg, overwrite)
    cfg = dataclasses.replace(cfg, out=str(run_dir))
    print(f"dsqn-train: {cfg.env_id}, {cfg.algo}, {cfg.total_timesteps} steps{' (resumed at ' + str(start_state['step']) + ')' if start_state else ''} "
          f"-> run folder {run_dir}", flush=True)
    for warning in config_warnings(cfg):
        print(f"dsqn-train: warning: {warning}", file=sys.stderr, flush=True)
    algo.cfg = cfg
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    atari = atari_game(cfg.env_id) is not None
    rb: ReplayBuffer | FrameReplay
    if atari:
        rb = FrameReplay(cfg.buffer_size, tuple(spec.input_shape[1:]), spec.input_shape[0], cfg.seed, cfg.gamma, cfg.n_step)
    else:
        rb = ReplayBuffer(cfg.buffer_size, tuple(spec.input_shape), cfg.seed, algo.action_shape)
    step, episode, best_eval, evals = 0, 0, -float("inf"), []
    if start_state is not None:
        try:
            algo.load(start_state)
            model.load_state_dict(start_state["model"])  # the best weights (what export writes), checked like the others
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(start_state["last_model"])
            if isinstance(rb, ReplayBuffer):
                rb.load(start_state["replay"], cfg.gamma)
            else:
                load_frame_replay(rb, Path(cfg.resume), start_state["replay"], cfg)
            step, episode = int(start_state["step"]), int(start_state["episode"])
            best_eval = float(start_state["best_eval"])
            evals = json.loads(start_state["evals_json"])
            if not isinstance(evals, list):
                raise ValueError("evals_json is not a list")
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged training state fails in many ways
            msg = " ".join(str(exc).split())[:160]
            raise UserError(f"{cfg.resume}: cannot resume: the saved training state does not fit its network "
                            f"({exc.__class__.__name__}: {msg})") from None
        algo.resumed(step)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot create the run folder ({exc.strerror or exc.__class__.__name__})") from None
    remove_stale_temp_files(run_dir)  # a killed run's half-written .model.pt.tmp<pid>
    atomic_write_text(run_dir / "config.json", config_json(cfg))
    if start_state is not None:  # rows logged after the checkpoint by the run that died: replayed now, so dropped
        truncate_metrics(run_dir / "metrics.csv", step)
    tracker = start_tracking(cfg, run_dir)

    from torch.utils.tensorboard import SummaryWriter

    # purge_step: TensorBoard hides the events the dead run logged after its checkpoint
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if start_state is not None else None)
    csv_file = open(run_dir / "metrics.csv", "a", newline="")
    log = csv.writer(csv_file)
    if csv_file.tell() == 0:
        log.writerow(["step", "kind", "value", "extra"])
    ckpt_path = run_dir / "model.pt"

    def save(final_eval: dict | None = None) -> None:
        # save_checkpoint removes its temporary file on failure: a full disk leaves the previous checkpoint as it was.
        # The Atari frame store goes to its own file first (replay-<step>-<token>.npz); model.pt names it; the older
        # one goes last, and a new one that model.pt never came to name is removed again.
        frames = not isinstance(rb, ReplayBuffer)
        before = ckpt_path.stat().st_ino if ckpt_path.exists() else None
        try:
            replay = save_frame_replay(rb, run_dir, step, cfg) if frames else rb.state()
            try:
                save_checkpoint(ckpt_path, {
                    "config_json": json.dumps(dataclasses.asdict(cfg)), "spec_json": json.dumps(spec.to_dict()),
                    "encoder_json": json.dumps(encoder.to_dict()), "model": best_state, "last_model": model.state_dict(),
                    **algo.state(),
                    "replay": replay, "step": step, "episode": episode, "best_eval": best_eval,
                    "evals_json": json.dumps(evals), "final_eval_json": json.dumps(final_eval or {}),
                })
            except BaseException:
                # only if model.pt was not replaced: a signal just after the rename must not take its replay away
                if frames and (ckpt_path.stat().st_ino if ckpt_path.exists() else None) == before:
                    (run_dir / replay["file"]).unlink(missing_ok=True)
                raise
            if frames:
                for old in run_dir.glob("replay-*.npz"):
                    if old.name != replay["file"]:
                        old.unlink(missing_ok=True)
        except OSError as exc:
            raise UserError(f"{ckpt_path}: cannot write the checkpoint ({exc.strerror or exc.__class__.__name__})") from None
        except RuntimeError as exc:  # torch's zip writer reports a failed write as a RuntimeError
            if not any(w in str(exc) for w in ("write", "unexpected pos", "iostream")):
                raise
            why = "No space left on device" if shutil.disk_usage(run_dir).free < (1 << 20) else " ".join(str(exc).split())[:120]
            raise UserError(f"{ckpt_path}: cannot write the checkpoint ({why})") from None

    env = make_env(cfg.env_id, train=True)
    obs, _ = env.reset(seed=cfg.seed + episode)
    if atari:
        rb.reset(obs)
    env.action_space.seed(cfg.seed + step)
    payload = encoder.encode(obs)
    ep_return, t_start, steps_at_start, last_log = 0.0, time.time(), step, step
    nstep = NStepReturns(cfg.n_step, cfg.gamma)  # a resumed run starts its first episode afresh, so none is pending
    try:
        from dsqn.progress import progress

        bar = progress(cfg.total_timesteps, initial=step, desc=cfg.env_id, unit="step", enabled=cfg.progress)
        while step < cfg.total_timesteps:
            anneal_lr(algo.optimizers, cfg, step)
            action, stored = algo.explore(env, payload, step)
            next_obs, reward, term, trunc, _ = env.step(action)
            next_payload = encoder.encode(next_obs)
            if atari:  # reward clipping in training only
                rb.add(stored, float(np.sign(reward)), next_obs, bool(term))
            else:
                for tr in nstep.push(payload, stored, float(reward), next_payload, bool(term), bool(trunc)):
                    rb.add(*tr)
            payload, ep_return, step = next_payload, ep_return + float(reward), step + 1
            algo.on_reward(float(np.sign(reward)) if atari else float(reward))
            bar.update(1)
            if term or trunc:
                writer.add_scalar("charts/episodic_return", ep_return, step)
                log.writerow([step, "episodic_return", ep_return, ""])
                episode += 1
                bar.set_postfix(ret=f"{ep_return:.0f}", best=f"{best_eval:.0f}", **algo.postfix(step))
                obs, _ = env.reset(seed=cfg.seed + 10_000 + episode)
                payload, ep_return = encoder.encode(obs), 0.0
                if atari:
                    rb.reset(obs)
            algo.before_updates(rb, step)
            if step >= cfg.learning_starts and step % cfg.train_freq == 0:
                for _grad_step in range(cfg.gradient_steps):
                    want_log = step - last_log >= LOG_EVERY
                    kind, value, scalars = algo.update(rb.sample(cfg.batch_size).to(device), step, want_log)
                    if want_log:
                        last_log = step
                        sps = (step - steps_at_start) / max(1e-9, time.time() - t_start)
                        for name, val in {**scalars, "charts/SPS": sps}.items():
                            writer.add_scalar(name, val, step)
                        log.writerow([step, kind, value, f"sps={sps:.1f}"])
            algo.after_step(step)
            if step % cfg.eval_every == 0 or step == cfg.total_timesteps:
                meter = ActivityMeter.of(model)  # synops per inference on the evaluation's observations
                rets = evaluate(model, encoder, cfg.env_id, cfg.eval_episodes, seed=10_000_000 + step, epsilon=cfg.eval_epsilon,
                                max_steps=cfg.eval_max_steps, on_batch=meter.add if meter else None)
                mean = float(np.mean(rets))
                evals.append({"step": step, "mean": mean, "std": float(np.std(rets))})
                writer.add_scalar("charts/eval_return", mean, step)
                log.writerow([step, "eval_return", mean, f"std={np.std(rets):.1f}"])
                if meter is not None:
                    activity = meter.summary()
                    evals[-1]["synops_per_inference"] = activity["synops_per_inference"]
                    for tag, val in ActivityMeter.scalars(activity).items():
                        writer.add_scalar(tag, val, step)
                        log.writerow([step, tag, val, ""])
                csv_file.flush()  # evaluations are visible at once to whoever follows the run (dsqn-sweep's pruner)
                if mean >= best_eval:
                    best_eval = mean
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
            if step % cfg.checkpoint_every == 0:
                save()
                csv_file.flush()
        bar.close()
        model.load_state_dict(best_state)
        meter = ActivityMeter.of(model)
        ev = run_evaluation(model, encoder, cfg.env_id, cfg.final_eval_episodes, seed=FINAL_EVAL_SEED, epsilon=cfg.eval_epsilon,
                            max_steps=cfg.eval_max_steps, video_dir=run_dir / "videos" if cfg.capture_video else None,
                            on_batch=meter.add if meter else None)
        rets, cut = ev.returns, truncated_episodes(cfg.env_id, ev.capped, cfg.eval_max_steps)
        final = {"episodes": len(rets), **score_summary(cfg.env_id, rets, cut), "returns": rets, "lengths": ev.lengths,
                 "epsilon": cfg.eval_epsilon, "seconds": time.time() - t_start, "env_steps": step}
        if meter is not None:  # exported with model.net's train_final_eval
            final["activity"] = {**meter.summary(), "synop_penalty": cfg.synop_penalty, "rate_target": cfg.rate_target}
        log.writerow([step, "final_eval_return", final["mean"], f"std={final['std']:.1f}"])
        save(final)
        shown = f" (truncated: {cut} of {len(rets)} episodes cut at --eval-max-steps {cfg.eval_max_steps}; not a score)" if cut else ""
        print(f"final {'greedy' if not cfg.eval_epsilon else f'epsilon {cfg.eval_epsilon}'} evaluation over {len(rets)} "
              f"episodes (seeds {FINAL_EVAL_SEED}..): mean {final['mean']:.1f} +- {final['std']:.1f}{shown}")
        if final["human_normalized"] is not None:
            lo, hi = final["human_normalized_ci95"]
            print(f"human-normalised {final['human_normalized']:.3f} (95 % interval {lo:.3f} .. {hi:.3f}; random "
                  f"{final['random_score']}, human {final['human_score']}: {final['reference_source']})")
        print(f"wrote {ckpt_path} (sha256 {file_sha256(ckpt_path)[:12]})")
        return ckpt_path
    finally:
        env.close()
        # on a full disk the last flush fails; the error that ends the run has been raised already
        with contextlib.suppress(OSError):
            writer.close()
        if tracker is not None:
            tracker.finish()
        with contextlib.suppress(OSError):
            csv_file.close()
