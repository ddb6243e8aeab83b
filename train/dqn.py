"""DQN / Double DQN (Liu et al. 2022's DSQN): the spiking Q-network, its target network and the TD update.

The environment loop, replay, evaluation and checkpoints are the runner's (``runner.py``); this file is the
algorithm, readable on its own: epsilon-greedy exploration, the (Double-)DQN target with n-step returns, the
Huber loss, the target copy, and the optional Q initialisation from the warm-up rewards.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F

from dsqn.encoding import Encoder
from dsqn.envs import atari_game, check_box_observations, check_discrete_actions, check_spaces, make_env
from dsqn.errors import UserError
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec

from .activity import ActivityPenalty
from .config import TrainConfig
from .networks import mlp, network_spec, spike_scalars, update_target, vector_encoder
from .replay import Batch

NATURE_CONVS = [{"type": "conv", "out": 32, "kernel": 8, "stride": 4}, {"type": "conv", "out": 64, "kernel": 4, "stride": 2},
                {"type": "conv", "out": 64, "kernel": 3, "stride": 1}]




class AnnQNet(torch.nn.Module):
    """The same-shape ANN Q-network (--qnet ann), the baseline the DSQN is compared with: Mnih et al. 2015's
    Nature-DQN (ReLU convs 32-8/4, 64-4/2, 64-3/1, dense 512) for Atari, a ReLU MLP for vector observations, of the
    same encoded observation (the integer payload divided by one input unit, pixels / 255). Trained by the same loop
    with the same hyperparameters; not exportable (there are no spikes to put on a chip)."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.unit = float(spec.input_unit)
        convs: list[torch.nn.Module] = []
        shape = tuple(spec.input_shape)
        for layer in spec.layers:
            if layer["type"] == "conv":
                convs += [torch.nn.Conv2d(shape[0], layer["out"], layer["kernel"], layer["stride"]), torch.nn.ReLU()]
                side = (shape[1] - layer["kernel"]) // layer["stride"] + 1
                shape = (layer["out"], side, side)
        self.convs = torch.nn.Sequential(*convs)
        dense = [int(layer["out"]) for layer in spec.layers if layer["type"] == "dense"]
        self.head = mlp([int(np.prod(shape)), *dense, spec.n_actions])

    def forward(self, payload: torch.Tensor, return_spikes: bool = False):  # type: ignore[no-untyped-def]
        x = payload / self.unit
        q = self.head(self.convs(x).flatten(1) if len(self.convs) else x.flatten(1))
        return (q, [], None) if return_spikes else q

    def policy_actions(self, payload: torch.Tensor) -> list:
        with torch.no_grad():
            return self(payload).argmax(dim=1).tolist()

    def shift_q(self, delta: float) -> None:
        with torch.no_grad():
            self.head[-1].bias += delta


def build_qnet(cfg: TrainConfig, calibrated: bool = True) -> tuple[SpikingQNet | AnnQNet, NetSpec, Encoder]:
    """The Q-network of --qnet: the spiking one (exported to Loihi) or its same-shape ANN baseline (``calibrated``
    False: skip --init-rate, for a network whose weights are loaded next)."""
    model, spec, encoder = build(cfg, calibrated=calibrated and cfg.qnet == "snn")
    return (model if cfg.qnet == "snn" else AnnQNet(spec)), spec, encoder


def greedy_action(model: SpikingQNet | AnnQNet, payload: np.ndarray) -> int:
    with torch.no_grad():
        q = model(torch.from_numpy(payload.astype(np.float32))[None].to(next(model.parameters()).device))
    return int(q.argmax(dim=1).item())








CALIBRATION_STEPS, CALIBRATION_EVERY = 256, 8  # a random rollout of 256 steps, every 8th observation: 32 of them


def calibrate(model: SpikingQNet, cfg: TrainConfig, env, encoder: Encoder) -> list[float]:  # type: ignore[no-untyped-def]
    """--init-rate: the data-driven initialisation of ``model`` (SpikingQNet.calibrate_) on the observations of a
    random rollout seeded by --seed (so a run's initial weights depend on its seed only). Returns the gains."""
    if cfg.init_rate <= 0:
        return []
    rng = np.random.default_rng([cfg.seed, 7])
    obs, _ = env.reset(seed=cfg.seed)
    batch = []
    for t in range(CALIBRATION_STEPS):
        if t % CALIBRATION_EVERY == 0:
            batch.append(encoder.encode(np.asarray(obs)))
        obs, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        if term or trunc:
            obs, _ = env.reset()
    gains = model.calibrate_(torch.from_numpy(np.stack(batch).astype(np.float32)), cfg.init_rate)
    print(f"initial weights calibrated to a spike rate of {cfg.init_rate} per layer: gains "
          + ", ".join(f"{g:.2f}" for g in gains), flush=True)
    return gains


def build(cfg: TrainConfig, calibrated: bool = True) -> tuple[SpikingQNet, NetSpec, Encoder]:
    env = make_env(cfg.env_id)
    try:
        check_discrete_actions(env, cfg.env_id)
        check_box_observations(env, cfg.env_id)
        if atari_game(cfg.env_id) is not None:
            encoder = Encoder(kind="pixels", obs_scale=(255.0,), obs_shape=tuple(env.observation_space.shape))
        else:
            encoder = vector_encoder(cfg, env)
        check_spaces(env, encoder.env_obs_shape, int(env.action_space.n), cfg.env_id)
        if cfg.arch not in ("mlp", "nature"):
            raise ValueError(f"unknown arch {cfg.arch!r} (mlp, nature)")
        convs = NATURE_CONVS if cfg.arch == "nature" else []
        spec = network_spec(cfg, encoder, convs + [{"type": "dense", "out": h} for h in cfg.hidden], int(env.action_space.n))
        model = SpikingQNet(spec)
        if calibrated:
            calibrate(model, cfg, env, encoder)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        env.close()
    return model, spec, encoder


class DQN:
    """Double DQN (default) or DQN on the spiking Q-network."""

    action_shape: tuple[int, ...] = ()  # discrete: the replay stores action indices

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.model, self.spec, self.encoder = build_qnet(cfg)
        self.target, _, _ = build_qnet(cfg, calibrated=False)  # takes the model's weights below
        self.model.to(device)
        self.target.to(device)
        self.target.load_state_dict(self.model.state_dict())
        # foreach: one fused update over the parameter list (the same arithmetic, far fewer small CPU ops)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, foreach=True)
        self.optimizers = [self.optimizer]
        self.atari = atari_game(cfg.env_id) is not None
        self.q_initialised = cfg.q_init != "reward" or cfg.gamma >= 1
        self.reward_sum = 0.0
        self.eps = cfg.eps_start
        self.penalty = ActivityPenalty(self.model, cfg)

    def resumed(self, step: int) -> None:
        self.q_initialised = True  # a resumed run's Q was initialised before it was saved

    def epsilon(self, step: int) -> float:
        cfg = self.cfg
        # a fixed decay length (the Atari presets) or a fraction of the budget; never beyond the budget
        eps_steps = max(1, min(cfg.eps_decay_steps, cfg.total_timesteps) if cfg.eps_decay_steps else int(cfg.eps_fraction * cfg.total_timesteps))
        return max(cfg.eps_end, cfg.eps_start - (cfg.eps_start - cfg.eps_end) * step / eps_steps)

    def explore(self, env, payload: np.ndarray, step: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        """Epsilon-greedy: a uniformly random action with probability epsilon (linear decay), else the greedy one."""
        self.eps = self.epsilon(step)
        action = env.action_space.sample() if random.random() < self.eps else greedy_action(self.model, payload)
        return action, action

    def on_reward(self, reward: float) -> None:
        if not self.q_initialised:  # the mean reward of the warm-up steps sets the initial Q
            self.reward_sum += reward

    def before_updates(self, rb, step: int) -> None:  # type: ignore[no-untyped-def]
        """--q-init reward: once learning starts, shift Q to mean(reward) / (1 - gamma) through the readout bias."""
        if not self.q_initialised and step >= self.cfg.learning_starts and len(rb) > 0:
            self.q_initialised = True
            o = rb.sample(self.cfg.batch_size).obs.to(next(self.model.parameters()).device)
            with torch.no_grad():
                self.model.shift_q(self.reward_sum / max(1, step) / (1 - self.cfg.gamma) - self.model(o).mean().item())
            self.target.load_state_dict(self.model.state_dict())

    def update(self, batch: Batch, step: int, log: bool) -> tuple[str, float, dict]:
        cfg, model = self.cfg, self.model
        o, a, r, o2, d, discount = batch
        n = o.shape[0]
        # One pass of the online network over (o, o2) (Double DQN needs its argmax on o2); with an activity penalty
        # the pass covers every layer's whole window and also gives the activity on o (train/activity.py).
        x = torch.cat([o, o2]) if cfg.double_dqn else o
        if self.penalty.active:
            q_both, spikes, activity = model.forward_activity(x, rows=n)
        else:
            q_both, spikes, _ = model(x, return_spikes=True)
        q = q_both[:n]
        with torch.no_grad():
            q_next_target = self.target(o2)
            if cfg.double_dqn:
                a2 = q_both[n:].detach().argmax(dim=1, keepdim=True)
                q_next = q_next_target.gather(1, a2).squeeze(1)
            else:
                q_next = q_next_target.max(dim=1).values
            y = r + discount * (1.0 - d) * q_next
        q_a = q.gather(1, a[:, None]).squeeze(1)
        td_loss = loss = F.smooth_l1_loss(q_a, y)
        if self.penalty.active:
            penalty = self.penalty(activity)
            loss = td_loss + penalty
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        if not log:
            return "td_loss", 0.0, {}
        scalars = {"losses/td_loss": td_loss.item(), "losses/q_values": q_a.mean().item()}
        if self.penalty.active:
            scalars["losses/activity_penalty"] = penalty.item()
        scalars.update(spike_scalars(spikes, n))
        if isinstance(model, SpikingQNet):
            scalars["readout/bias_mean"] = model.quantized_bias().mean().item()
        scalars["charts/epsilon"] = self.eps
        return "td_loss", td_loss.item(), scalars

    def after_step(self, step: int) -> None:
        if step % self.cfg.target_update == 0:
            update_target(self.target, self.model, self.cfg.target_tau)

    def postfix(self, step: int) -> dict:
        return {"eps": f"{self.eps:.2f}"}

    def state(self) -> dict:
        return {"target_model": self.target.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load(self, st: dict) -> None:
        self.target.load_state_dict(st["target_model"])
        self.optimizer.load_state_dict(st["optimizer"])


