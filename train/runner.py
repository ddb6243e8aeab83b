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
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from dsqn.envs import FINAL_EVAL_SEED, atari_game, is_continuous, make_env
from dsqn.errors import UserError
from dsqn.files.checkpoint import file_sha256
from dsqn.files.fileio import atomic_write_text, make_dir, remove_stale_temp_files
from dsqn.layers.exact import exact_matmul_settings
from dsqn.stats import score_summary, truncated_episodes

from .activity import ActivityMeter
from .config import TrainConfig, config_json, config_warnings
from .evaluation import evaluate, run_evaluation
from .replay import FrameReplay, ReplayBuffer
from .run_files import (
    check_extras,
    load_frame_replay,
    prepare_run_dir,
    resume_config,
    start_tracking,
    truncate_metrics,
    write_checkpoint,
)

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


def anneal_lr(optimizers: list[torch.optim.Optimizer], cfg: TrainConfig, step: int) -> None:
    """lr -> lr_final linearly over the run (lr_final 0: constant)."""
    if cfg.lr_final > 0:
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = cfg.lr + (cfg.lr_final - cfg.lr) * step / cfg.total_timesteps


def make_algorithm(cfg: TrainConfig, device: torch.device):  # type: ignore[no-untyped-def]
    if cfg.algo == "td3":
        from .td3 import TD3

        return TD3(cfg, device)
    from .dqn import DQN

    return DQN(cfg, device)


class Run:
    """One training run: what :func:`train` sets up, loops over and finishes. The state a checkpoint holds lives here
    (step, episode, best evaluation and weights, the evaluations so far), so each phase is a short method."""

    def __init__(self, cfg: TrainConfig, explicit: set[str] | None, overwrite: bool) -> None:
        """Everything is checked (options, environment, network, the checkpoint's state, the run folder) before the
        run folder is created or anything is written."""
        start_state: dict | None = None
        if cfg.resume:
            cfg, start_state = resume_config(cfg, explicit)
        else:
            cfg = dataclasses.replace(cfg, algo=algo_of(cfg))
        seed_everything(cfg.seed)
        self.device = pick_device(cfg.device)
        self.algo = make_algorithm(cfg, self.device)  # bad parameters and environments fail here, before any write
        self.model, self.spec, self.encoder = self.algo.model, self.algo.spec, self.algo.encoder
        if not cfg.out:  # a TrainConfig built by hand rather than by make_config
            cfg = dataclasses.replace(cfg, out=f"runs/{cfg.env_id.replace('/', '_')}__{cfg.exp_name or 'dsqn'}__{cfg.seed}__{int(time.time())}")
        check_extras(cfg)
        self.run_dir = prepare_run_dir(cfg, overwrite)
        self.cfg = self.algo.cfg = dataclasses.replace(cfg, out=str(self.run_dir))
        resumed = f" (resumed at {start_state['step']})" if start_state else ""
        print(f"dsqn-train: {cfg.env_id}, {cfg.algo}, {cfg.total_timesteps} steps{resumed} -> run folder {self.run_dir}", flush=True)
        for warning in config_warnings(self.cfg):
            print(f"dsqn-train: warning: {warning}", file=sys.stderr, flush=True)
        self.atari = atari_game(cfg.env_id) is not None
        self.rb: ReplayBuffer | FrameReplay
        if self.atari:
            self.rb = FrameReplay(cfg.buffer_size, tuple(self.spec.input_shape[1:]), self.spec.input_shape[0], cfg.seed,
                                  cfg.gamma, cfg.n_step)
        else:
            self.rb = ReplayBuffer(cfg.buffer_size, tuple(self.spec.input_shape), cfg.seed, self.algo.action_shape)
        self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.step, self.episode, self.best_eval, self.evals = 0, 0, -float("inf"), []
        self.resumed = start_state is not None
        if start_state is not None:
            self.resume(start_state)
        self.open_outputs()

    def resume(self, state: dict) -> None:
        """The checkpoint's training state, checked like the weights: a damaged one is a one-line error."""
        cfg = self.cfg
        try:
            self.algo.load(state)
            self.model.load_state_dict(state["model"])  # the best weights (what export writes)
            self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(state["last_model"])
            if isinstance(self.rb, ReplayBuffer):
                self.rb.load(state["replay"], cfg.gamma)
            else:
                load_frame_replay(self.rb, Path(cfg.resume), state["replay"], cfg)
            self.step, self.episode = int(state["step"]), int(state["episode"])
            self.best_eval = float(state["best_eval"])
            self.evals = json.loads(state["evals_json"])
            if not isinstance(self.evals, list):
                raise ValueError("evals_json is not a list")
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged training state fails in many ways
            msg = " ".join(str(exc).split())[:160]
            raise UserError(f"{cfg.resume}: cannot resume: the saved training state does not fit its network "
                            f"({exc.__class__.__name__}: {msg})") from None
        self.algo.resumed(self.step)

    def open_outputs(self) -> None:
        """The run folder, config.json, metrics.csv (cut back to a resumed checkpoint's step) and TensorBoard."""
        run_dir = self.run_dir
        make_dir(run_dir, "run folder")
        remove_stale_temp_files(run_dir)  # a killed run's half-written .model.pt.tmp<pid>
        atomic_write_text(run_dir / "config.json", config_json(self.cfg))
        if self.resumed:  # rows logged after the checkpoint by the run that died: replayed now, so dropped
            truncate_metrics(run_dir / "metrics.csv", self.step)
        self.tracker = start_tracking(self.cfg, run_dir)
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides the events the dead run logged after its checkpoint
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=self.step if self.resumed else None)
        self.csv_file = open(run_dir / "metrics.csv", "a", newline="")
        self.log = csv.writer(self.csv_file)
        if self.csv_file.tell() == 0:
            self.log.writerow(["step", "kind", "value", "extra"])
        self.ckpt_path = run_dir / "model.pt"

    def save(self, final_eval: dict | None = None) -> None:
        state = {"config_json": json.dumps(dataclasses.asdict(self.cfg)), "spec_json": json.dumps(self.spec.to_dict()),
                 "encoder_json": json.dumps(self.encoder.to_dict()), "model": self.best_state,
                 "last_model": self.model.state_dict(), **self.algo.state(), "replay": None, "step": self.step,
                 "episode": self.episode,
                 "best_eval": self.best_eval, "evals_json": json.dumps(self.evals),
                 "final_eval_json": json.dumps(final_eval or {})}
        write_checkpoint(self.ckpt_path, state, self.rb, self.step, self.cfg)

    def loop(self) -> None:
        """The environment loop to the budget: act, store, update, evaluate, checkpoint."""
        cfg, algo, encoder = self.cfg, self.algo, self.encoder
        self.env = env = make_env(cfg.env_id, train=True)
        obs, _ = env.reset(seed=cfg.seed + self.episode)
        if self.atari:
            self.rb.reset(obs)
        env.action_space.seed(cfg.seed + self.step)
        payload = encoder.encode(obs)
        self.ep_return, self.t_start, self.steps_at_start, self.last_log = 0.0, time.time(), self.step, self.step
        nstep = NStepReturns(cfg.n_step, cfg.gamma)  # a resumed run starts its first episode afresh: none pending
        from dsqn.progress import progress

        self.bar = progress(cfg.total_timesteps, initial=self.step, desc=cfg.env_id, unit="step", enabled=cfg.progress)
        while self.step < cfg.total_timesteps:
            anneal_lr(algo.optimizers, cfg, self.step)
            action, stored = algo.explore(env, payload, self.step)
            next_obs, reward, term, trunc, _ = env.step(action)
            next_payload = encoder.encode(next_obs)
            if self.atari:  # reward clipping in training only
                self.rb.add(stored, float(np.sign(reward)), next_obs, bool(term))
            else:
                for tr in nstep.push(payload, stored, float(reward), next_payload, bool(term), bool(trunc)):
                    self.rb.add(*tr)
            payload, self.ep_return, self.step = next_payload, self.ep_return + float(reward), self.step + 1
            algo.on_reward(float(np.sign(reward)) if self.atari else float(reward))
            self.bar.update(1)
            if term or trunc:
                payload = self.end_episode()
            algo.before_updates(self.rb, self.step)
            if self.step >= cfg.learning_starts and self.step % cfg.train_freq == 0:
                self.update()
            algo.after_step(self.step)
            if self.step % cfg.eval_every == 0 or self.step == cfg.total_timesteps:
                self.evaluate_now()
            if self.step % cfg.checkpoint_every == 0:
                self.save()
                self.csv_file.flush()
        self.bar.close()

    def end_episode(self) -> np.ndarray:
        """Log the finished episode and start the next: the new episode's first payload."""
        step = self.step
        self.writer.add_scalar("charts/episodic_return", self.ep_return, step)
        self.log.writerow([step, "episodic_return", self.ep_return, ""])
        self.episode += 1
        self.bar.set_postfix(ret=f"{self.ep_return:.0f}", best=f"{self.best_eval:.0f}", **self.algo.postfix(step))
        obs, _ = self.env.reset(seed=self.cfg.seed + 10_000 + self.episode)
        if self.atari:
            self.rb.reset(obs)
        self.ep_return = 0.0
        return self.encoder.encode(obs)

    def update(self) -> None:
        step = self.step
        for _grad_step in range(self.cfg.gradient_steps):
            want_log = step - self.last_log >= LOG_EVERY
            kind, value, scalars = self.algo.update(self.rb.sample(self.cfg.batch_size).to(self.device), step, want_log)
            if want_log:
                self.last_log = step
                sps = (step - self.steps_at_start) / max(1e-9, time.time() - self.t_start)
                for name, val in {**scalars, "charts/SPS": sps}.items():
                    self.writer.add_scalar(name, val, step)
                self.log.writerow([step, kind, value, f"sps={sps:.1f}"])

    def evaluate_now(self) -> None:
        """A periodic evaluation (seeds 10M + step): logged with the network's activity; the best weights kept."""
        cfg, step = self.cfg, self.step
        meter = ActivityMeter.of(self.model)  # synops per inference on the evaluation's observations
        rets = evaluate(self.model, self.encoder, cfg.env_id, cfg.eval_episodes, seed=10_000_000 + step,
                        epsilon=cfg.eval_epsilon, max_steps=cfg.eval_max_steps, on_batch=meter.add if meter else None)
        mean = float(np.mean(rets))
        self.evals.append({"step": step, "mean": mean, "std": float(np.std(rets))})
        self.writer.add_scalar("charts/eval_return", mean, step)
        self.log.writerow([step, "eval_return", mean, f"std={np.std(rets):.1f}"])
        if meter is not None:
            activity = meter.summary()
            self.evals[-1]["synops_per_inference"] = activity["synops_per_inference"]
            for tag, val in ActivityMeter.scalars(activity).items():
                self.writer.add_scalar(tag, val, step)
                self.log.writerow([step, tag, val, ""])
        self.csv_file.flush()  # evaluations are visible at once to whoever follows the run (dsqn-sweep's pruner)
        if mean >= self.best_eval:
            self.best_eval = mean
            self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}

    def finish(self) -> Path:
        """The final evaluation of the best weights (seeds FINAL_EVAL_SEED..), stored in model.pt and printed."""
        cfg = self.cfg
        self.model.load_state_dict(self.best_state)
        meter = ActivityMeter.of(self.model)
        ev = run_evaluation(self.model, self.encoder, cfg.env_id, cfg.final_eval_episodes, seed=FINAL_EVAL_SEED,
                            epsilon=cfg.eval_epsilon, max_steps=cfg.eval_max_steps,
                            video_dir=self.run_dir / "videos" if cfg.capture_video else None,
                            on_batch=meter.add if meter else None)
        rets, cut = ev.returns, truncated_episodes(cfg.env_id, ev.capped, cfg.eval_max_steps)
        final = {"episodes": len(rets), **score_summary(cfg.env_id, rets, cut), "returns": rets, "lengths": ev.lengths,
                 "epsilon": cfg.eval_epsilon, "seconds": time.time() - self.t_start, "env_steps": self.step}
        if meter is not None:  # exported with model.net's train_final_eval
            final["activity"] = {**meter.summary(), "synop_penalty": cfg.synop_penalty, "rate_target": cfg.rate_target}
        self.log.writerow([self.step, "final_eval_return", final["mean"], f"std={final['std']:.1f}"])
        self.save(final)
        shown = f" (truncated: {cut} of {len(rets)} episodes cut at --eval-max-steps {cfg.eval_max_steps}; not a score)" if cut else ""
        print(f"final {'greedy' if not cfg.eval_epsilon else f'epsilon {cfg.eval_epsilon}'} evaluation over {len(rets)} "
              f"episodes (seeds {FINAL_EVAL_SEED}..): mean {final['mean']:.1f} +- {final['std']:.1f}{shown}")
        if final["human_normalized"] is not None:
            lo, hi = final["human_normalized_ci95"]
            print(f"human-normalised {final['human_normalized']:.3f} (95 % interval {lo:.3f} .. {hi:.3f}; random "
                  f"{final['random_score']}, human {final['human_score']}: {final['reference_source']})")
        print(f"wrote {self.ckpt_path} (sha256 {file_sha256(self.ckpt_path)[:12]})")
        return self.ckpt_path

    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
        # on a full disk the last flush fails; the error that ends the run has been raised already
        with contextlib.suppress(OSError):
            self.writer.close()
        if self.tracker is not None:
            self.tracker.finish()
        with contextlib.suppress(OSError):
            self.csv_file.close()


def train(cfg: TrainConfig, explicit: set[str] | None = None, overwrite: bool = False) -> Path:
    """Train and return the path of model.pt. With ``cfg.resume``, continue that run (see
    :func:`dsqn.train.run_files.resume_config`)."""
    run = Run(cfg, explicit, overwrite)
    try:
        run.loop()
        return run.finish()
    finally:
        run.close()
