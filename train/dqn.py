"""DQN / Double DQN training loop for the spiking Q-network (CleanRL-style: the whole loop in one place)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import random
import shutil
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dsqn.checkpoint import check_resumable, file_sha256, load_checkpoint, save_checkpoint
from dsqn.cuba import exact_matmul_settings
from dsqn.encoding import Encoder
from dsqn.envs import (
    atari_game,
    check_box_observations,
    check_discrete_actions,
    check_spaces,
    human_normalized,
    make_env,
    obs_scale_for,
)
from dsqn.errors import UserError
from dsqn.fileio import atomic_write_text, check_output_dir, remove_stale_temp_files
from dsqn.qnet import NetSpec, SpikingQNet

from .config import FIELD_DEFAULTS, TrainConfig, validate
from .replay import FrameReplay

NATURE_CONVS = [{"type": "conv", "out": 32, "kernel": 8, "stride": 4}, {"type": "conv", "out": 64, "kernel": 4, "stride": 2},
                {"type": "conv", "out": 64, "kernel": 3, "stride": 1}]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class ReplayBuffer:
    """Uniform replay of encoded observations (integer payloads, exactly what the network sees)."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], seed: int) -> None:
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.int16)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=np.int16)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.full = capacity, 0, False
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, done: bool, discount: float) -> None:
        """``reward`` is the (n-step) discounted return up to ``next_obs``; ``discount`` = gamma**n multiplies its value."""
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i], self.rewards[i], self.dones[i] = obs, next_obs, action, reward, done
        self.discounts[i] = discount
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, n: int) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, len(self), n)
        return (
            torch.from_numpy(self.obs[idx].astype(np.float32)),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.rewards[idx]),
            torch.from_numpy(self.next_obs[idx].astype(np.float32)),
            torch.from_numpy(self.dones[idx]),
            torch.from_numpy(self.discounts[idx]),
        )

    def state(self) -> dict:
        n = len(self)
        return {
            "obs": torch.from_numpy(self.obs[:n].copy()), "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
            "actions": torch.from_numpy(self.actions[:n].copy()), "rewards": torch.from_numpy(self.rewards[:n].copy()),
            "dones": torch.from_numpy(self.dones[:n].copy()), "discounts": torch.from_numpy(self.discounts[:n].copy()),
            "pos": self.pos, "full": self.full,
        }

    def load(self, st: dict, gamma: float) -> None:
        n = st["obs"].shape[0]
        self.obs[:n], self.next_obs[:n] = st["obs"].numpy(), st["next_obs"].numpy()
        self.actions[:n], self.rewards[:n], self.dones[:n] = st["actions"].numpy(), st["rewards"].numpy(), st["dones"].numpy()
        self.discounts[:n] = st["discounts"].numpy() if "discounts" in st else gamma  # format-1 checkpoints were 1-step
        self.pos, self.full = int(st["pos"]), bool(st["full"])


class NStepReturns:
    """Turns the stream of 1-step transitions into n-step ones (o_t, a_t, sum_k gamma^k r_{t+k}, o_{t+m}, done, gamma^m),
    m = n, or fewer at the end of an episode; a truncated episode bootstraps from its last observation."""

    def __init__(self, n: int, gamma: float) -> None:
        self.n, self.gamma = n, gamma
        self.pending: deque[tuple[np.ndarray, int, float]] = deque()

    def push(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, term: bool, trunc: bool) -> list[tuple]:
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


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def greedy_action(model: SpikingQNet, payload: np.ndarray) -> int:
    with torch.no_grad():
        q = model(torch.from_numpy(payload.astype(np.float32))[None].to(_device_of(model)))
    return int(q.argmax(dim=1).item())


def evaluate(model: SpikingQNet, encoder: Encoder, env_id: str, episodes: int, seed: int, epsilon: float = 0.0,
             max_steps: int = 0) -> list[float]:
    """Returns of ``episodes`` evaluation episodes (seeds seed, seed+1, ...), epsilon-greedy.

    The episodes run side by side, one batched forward pass per step for all unfinished ones (the network
    is stateless between inferences, so this equals running them one after the other).
    """
    envs = [make_env(env_id) for _ in range(episodes)]
    rng = np.random.default_rng(seed)
    try:
        obs = [env.reset(seed=seed + ep)[0] for ep, env in enumerate(envs)]
        returns = [0.0] * episodes
        steps = [0] * episodes
        alive = list(range(episodes))
        while alive:
            batch = torch.from_numpy(np.stack([encoder.encode(obs[i]) for i in alive]).astype(np.float32)).to(_device_of(model))
            with torch.no_grad():
                greedy = model(batch).argmax(dim=1).tolist()
            still = []
            for i, a in zip(alive, greedy):
                if epsilon > 0 and rng.random() < epsilon:
                    a = int(rng.integers(0, envs[i].action_space.n))
                obs[i], r, term, trunc, _ = envs[i].step(a)
                returns[i] += float(r)
                steps[i] += 1
                if not (term or trunc or (max_steps > 0 and steps[i] >= max_steps)):
                    still.append(i)
            alive = still
        return returns
    finally:
        for env in envs:
            env.close()


def update_target(target: torch.nn.Module, model: torch.nn.Module, tau: float) -> None:
    """target <- tau * model + (1 - tau) * target on the float (pre-quantization) weights; tau 1 copies."""
    if tau >= 1.0:
        target.load_state_dict(model.state_dict())
        return
    with torch.no_grad():
        for p_t, p_o in zip(target.parameters(), model.parameters()):
            p_t.lerp_(p_o, tau)


def build(cfg: TrainConfig) -> tuple[SpikingQNet, NetSpec, Encoder]:
    env = make_env(cfg.env_id)
    try:
        check_discrete_actions(env, cfg.env_id)
        check_box_observations(env, cfg.env_id)
        if atari_game(cfg.env_id) is not None:
            encoder = Encoder(kind="pixels", obs_scale=(255.0,), obs_shape=tuple(env.observation_space.shape))
        else:
            scale = tuple(float(v) for v in cfg.obs_scale) or obs_scale_for(cfg.env_id, env)
            n_obs = int(np.prod(env.observation_space.shape or (0,)))
            if cfg.obs_scale and len(scale) != n_obs:
                raise ValueError(f"--obs-scale has {len(scale)} values but {cfg.env_id} observations have {n_obs} components")
            encoder = Encoder(kind=cfg.encoding, obs_scale=scale, frac_bits=cfg.frac_bits)
        check_spaces(env, encoder.env_obs_shape, int(env.action_space.n), cfg.env_id)
        if cfg.arch not in ("mlp", "nature"):
            raise ValueError(f"unknown arch {cfg.arch!r} (mlp, nature)")
        convs = NATURE_CONVS if cfg.arch == "nature" else []
        spec = NetSpec(
            input_shape=encoder.input_shape, layers=convs + [{"type": "dense", "out": h} for h in cfg.hidden],
            n_actions=int(env.action_space.n), timesteps=cfg.timesteps, threshold=cfg.threshold,
            current_decay=cfg.current_decay, voltage_decay=cfg.voltage_decay, input_unit=encoder.unit, q_scale=cfg.q_scale,
            tau_grad=cfg.tau_grad, scale_grad=cfg.scale_grad,
        )
        model = SpikingQNet(spec)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        env.close()
    return model, spec, encoder


# What a resumed run may change; everything else is the saved run's config.
RESUME_OVERRIDES = ("resume", "total_steps", "out", "device", "progress")


def resume_config(cfg: TrainConfig, explicit: set[str] | None = None) -> tuple[TrainConfig, dict]:
    """The config and the checkpoint of a run to continue. The saved config is kept; ``--total-steps`` (default: the
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
    unknown = sorted(set(saved_kw) - set(FIELD_DEFAULTS))
    if unknown:
        raise UserError(f"{path}: its config has fields this dsqn-train does not know ({', '.join(unknown)}); cannot resume")
    saved = TrainConfig(**saved_kw)
    if explicit is None:
        explicit = {k for k in RESUME_OVERRIDES if getattr(cfg, k) != FIELD_DEFAULTS[k]}
    else:
        changed = sorted(k for k in set(explicit) - set(RESUME_OVERRIDES) if k in FIELD_DEFAULTS and getattr(cfg, k) != getattr(saved, k))
        if changed:
            raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in changed)}: a resumed run keeps its saved config; "
                            "only --total-steps, --out, --device and --[no-]progress can change")
    merged = dataclasses.replace(
        saved, resume=str(path),
        total_steps=cfg.total_steps if "total_steps" in explicit else saved.total_steps,
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
    if merged.total_steps < ckpt["step"]:
        raise UserError(f"--total-steps {merged.total_steps}: {path} is already at step {ckpt['step']}")
    return merged, ckpt


def train(cfg: TrainConfig, explicit: set[str] | None = None) -> Path:
    """Train and return the path of model.pt. With ``cfg.resume``, continue that run (see :func:`resume_config`).

    Everything is checked (options, environment, network, the checkpoint's state, the run folder) before the run
    folder is created or anything is written."""
    start_state: dict | None = None
    if cfg.resume:
        cfg, start_state = resume_config(cfg, explicit)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model, spec, encoder = build(cfg)  # bad parameters fail here, before anything is written
    target, _, _ = build(cfg)
    run_dir = Path(cfg.out or f"runs/{cfg.env_id}__dsqn__{cfg.seed}__{int(time.time())}")
    check_output_dir(run_dir)
    cfg = dataclasses.replace(cfg, out=str(run_dir))
    model.to(device)
    target.to(device)
    target.load_state_dict(model.state_dict())
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    # foreach: one fused update over the parameter list (the same arithmetic, far fewer small CPU ops)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, foreach=True)
    atari = atari_game(cfg.env_id) is not None
    rb: ReplayBuffer | FrameReplay
    if atari:
        rb = FrameReplay(cfg.buffer_size, tuple(spec.input_shape[1:]), spec.input_shape[0], cfg.seed, cfg.gamma)
    else:
        rb = ReplayBuffer(cfg.buffer_size, tuple(spec.input_shape), cfg.seed)
    step, episode, best_eval, evals = 0, 0, -float("inf"), []
    if start_state is not None:
        try:
            target.load_state_dict(start_state["target_model"])
            model.load_state_dict(start_state["model"])  # the best weights (what export writes), checked like the others
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(start_state["last_model"])
            optimizer.load_state_dict(start_state["optimizer"])
            if isinstance(rb, ReplayBuffer):
                rb.load(start_state["replay"], cfg.gamma)  # the Atari frame store is not checkpointed (7 GB); it refills
            step, episode = int(start_state["step"]), int(start_state["episode"])
            best_eval = float(start_state["best_eval"])
            evals = json.loads(start_state["evals_json"])
            if not isinstance(evals, list):
                raise ValueError("evals_json is not a list")
        except Exception as exc:  # noqa: BLE001 - a damaged training state fails in many ways
            msg = " ".join(str(exc).split())[:160]
            raise UserError(f"{cfg.resume}: cannot resume: the saved training state does not fit its network "
                            f"({exc.__class__.__name__}: {msg})") from None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot create the run folder ({exc.strerror or exc.__class__.__name__})") from None
    remove_stale_temp_files(run_dir)  # a killed run's half-written .model.pt.tmp<pid>
    atomic_write_text(run_dir / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tb"))
    csv_file = open(run_dir / "metrics.csv", "a", newline="")
    log = csv.writer(csv_file)
    if csv_file.tell() == 0:
        log.writerow(["step", "kind", "value", "extra"])
    ckpt_path = run_dir / "model.pt"

    def save(final_eval: dict | None = None) -> None:
        # save_checkpoint removes its temporary file on failure: a full disk leaves the previous checkpoint as it was
        try:
            save_checkpoint(ckpt_path, {
                "config_json": json.dumps(dataclasses.asdict(cfg)), "spec_json": json.dumps(spec.to_dict()),
                "encoder_json": json.dumps(encoder.to_dict()), "model": best_state,
                "last_model": model.state_dict(), "target_model": target.state_dict(), "optimizer": optimizer.state_dict(),
                "replay": rb.state() if isinstance(rb, ReplayBuffer) else {}, "step": step, "episode": episode, "best_eval": best_eval,
                "evals_json": json.dumps(evals), "final_eval_json": json.dumps(final_eval or {}),
            })
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
    ep_return, t_start, steps_at_start, last_log, reward_sum = 0.0, time.time(), step, step, 0.0
    q_initialised = cfg.q_init != "reward" or start_state is not None or cfg.gamma >= 1
    eps_steps = max(1, int(cfg.eps_fraction * cfg.total_steps))
    nstep = NStepReturns(cfg.n_step, cfg.gamma)  # a resumed run starts its first episode afresh, so none is pending
    try:
        from dsqn.progress import progress

        bar = progress(cfg.total_steps, initial=step, desc=cfg.env_id, unit="step", enabled=cfg.progress)
        while step < cfg.total_steps:
            eps = max(cfg.eps_end, cfg.eps_start - (cfg.eps_start - cfg.eps_end) * step / eps_steps)
            if cfg.lr_final > 0:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr + (cfg.lr_final - cfg.lr) * step / cfg.total_steps
            action = env.action_space.sample() if random.random() < eps else greedy_action(model, payload)
            next_obs, reward, term, trunc, _ = env.step(action)
            next_payload = encoder.encode(next_obs)
            if atari:  # reward clipping in training only
                rb.add(action, float(np.sign(reward)), next_obs, bool(term))
            else:
                for tr in nstep.push(payload, action, float(reward), next_payload, bool(term), bool(trunc)):
                    rb.add(*tr)
            payload, ep_return, step = next_payload, ep_return + float(reward), step + 1
            if not q_initialised:  # the mean reward of the warm-up steps sets the initial Q
                reward_sum += float(np.sign(reward)) if atari else float(reward)
            bar.update(1)
            if term or trunc:
                writer.add_scalar("charts/episodic_return", ep_return, step)
                log.writerow([step, "episodic_return", ep_return, ""])
                episode += 1
                bar.set_postfix(ret=f"{ep_return:.0f}", eps=f"{eps:.2f}", best=f"{best_eval:.0f}")
                obs, _ = env.reset(seed=cfg.seed + 10_000 + episode)
                payload, ep_return = encoder.encode(obs), 0.0
                if atari:
                    rb.reset(obs)
            if not q_initialised and step >= cfg.learning_starts and len(rb) > 0:
                q_initialised = True
                o = rb.sample(cfg.batch_size)[0].to(device)
                with torch.no_grad():
                    model.shift_q(reward_sum / max(1, step) / (1 - cfg.gamma) - model(o).mean().item())
                target.load_state_dict(model.state_dict())
            if step >= cfg.learning_starts and step % cfg.train_freq == 0:
                for _grad_step in range(cfg.gradient_steps):
                    o, a, r, o2, d, discount = (t.to(device) for t in rb.sample(cfg.batch_size))
                    n = o.shape[0]
                    # One pass of the online network over (o, o2) (Double DQN needs its argmax on o2).
                    q_both, spikes, _ = model(torch.cat([o, o2]) if cfg.double_dqn else o, return_spikes=True)
                    q = q_both[:n]
                    with torch.no_grad():
                        q_next_target = target(o2)
                        if cfg.double_dqn:
                            a2 = q_both[n:].detach().argmax(dim=1, keepdim=True)
                            q_next = q_next_target.gather(1, a2).squeeze(1)
                        else:
                            q_next = q_next_target.max(dim=1).values
                        y = r + discount * (1.0 - d) * q_next
                    q_a = q.gather(1, a[:, None]).squeeze(1)
                    loss = F.smooth_l1_loss(q_a, y)
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    if step - last_log >= 250:
                        last_log = step
                        writer.add_scalar("losses/td_loss", loss.item(), step)
                        writer.add_scalar("losses/q_values", q_a.mean().item(), step)
                        for i, s in enumerate(spikes):
                            rates = s[:n].mean(-1).flatten(1)  # (batch, neurons)
                            writer.add_scalar(f"spikes/rate_L{i}", rates.mean().item(), step)
                            # neurons with one rate for every state in the batch carry no information
                            writer.add_scalar(f"spikes/constant_frac_L{i}", (rates.std(0) == 0).float().mean().item(), step)
                        writer.add_scalar("readout/bias_mean", model.quantized_bias().mean().item(), step)
                        sps = (step - steps_at_start) / max(1e-9, time.time() - t_start)
                        writer.add_scalar("charts/SPS", sps, step)
                        writer.add_scalar("charts/epsilon", eps, step)
                        log.writerow([step, "td_loss", loss.item(), f"sps={sps:.1f}"])
            if step % cfg.target_update == 0:
                update_target(target, model, cfg.target_tau)
            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                rets = evaluate(model, encoder, cfg.env_id, cfg.eval_episodes, seed=10_000_000 + step, epsilon=cfg.eval_epsilon,
                                max_steps=cfg.eval_max_steps)
                mean = float(np.mean(rets))
                evals.append({"step": step, "mean": mean, "std": float(np.std(rets))})
                writer.add_scalar("charts/eval_return", mean, step)
                log.writerow([step, "eval_return", mean, f"std={np.std(rets):.1f}"])
                if mean >= best_eval:
                    best_eval = mean
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
            if step % cfg.checkpoint_every == 0:
                save()
                csv_file.flush()
        bar.close()
        model.load_state_dict(best_state)
        rets = evaluate(model, encoder, cfg.env_id, cfg.final_eval_episodes, seed=20_000_000, epsilon=cfg.eval_epsilon,
                           max_steps=cfg.eval_max_steps)
        final = {"episodes": len(rets), "mean": float(np.mean(rets)), "std": float(np.std(rets)), "returns": rets,
                 "epsilon": cfg.eval_epsilon, "seconds": time.time() - t_start, "env_steps": step,
                 "human_normalized": human_normalized(cfg.env_id, float(np.mean(rets)))}
        log.writerow([step, "final_eval_return", final["mean"], f"std={final['std']:.1f}"])
        save(final)
        print(f"final greedy evaluation over {len(rets)} episodes: mean {final['mean']:.1f} +- {final['std']:.1f}")
        print(f"wrote {ckpt_path} (sha256 {file_sha256(ckpt_path)[:12]})")
        return ckpt_path
    finally:
        env.close()
        # on a full disk the last flush fails; the error that ends the run has been raised already
        with contextlib.suppress(OSError):
            writer.close()
        with contextlib.suppress(OSError):
            csv_file.close()
