"""TD3 with a spiking actor (Akl et al. 2023's hybrid): the actor is the toolchain's exact CUBA-LIF network, the
twin critics are ANNs (Fujimoto et al. 2018: clipped double Q, target policy smoothing, delayed actor updates).

The environment loop, replay, evaluation and checkpoints are the runner's (``runner.py``); this file is the
algorithm, readable on its own (after CleanRL's ``td3_continuous_action.py``).

The actor is a :class:`dsqn.layers.qnet.SpikingQNet` whose readout kind is ``action``: its readout voltage ``v`` (Loihi
integers) decodes to ``y = q_scale * v / (T * 4096)`` and the action is ``tanh(y)`` in [-1, 1], scaled to the
environment's bounds (``dsqn.layers.readout.Readout``). Acting -- exploration, evaluation, deployment -- computes the action
from the integer voltage with ``Readout.act`` (float64 on the host), so the exported actor acts exactly as the
trained one; the actor's gradient flows through ``tanh`` of the same readout in float32 and the surrogate
gradient of the spiking layers. Replay stores normalised actions in [-1, 1]; the critics see the encoded
observation (the actor's integer payload divided by one input unit) and the normalised action.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from dsqn.encoding import Encoder
from dsqn.envs import check_box_actions, check_box_observations, check_spaces, make_env
from dsqn.errors import UserError
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec

from .activity import ActivityPenalty
from .config import TrainConfig
from .networks import mlp, network_spec, spike_scalars, vector_encoder
from .replay import Batch


def build_actor(cfg: TrainConfig) -> tuple[SpikingQNet, NetSpec, Encoder]:
    """The spiking actor for ``cfg.env_id`` (a Box action space with finite bounds), or a one-line UserError."""
    env = make_env(cfg.env_id)
    try:
        check_box_observations(env, cfg.env_id)
        low, high = check_box_actions(env, cfg.env_id)
        if cfg.arch not in ("", "mlp"):
            raise UserError(f"--arch {cfg.arch}: a TD3 actor is an MLP (vector observations)")
        encoder = vector_encoder(cfg, env)
        check_spaces(env, encoder.env_obs_shape, len(low), cfg.env_id, "action")
        spec = network_spec(cfg, encoder, [{"type": "dense", "out": h} for h in cfg.hidden], len(low),
                            readout_kind="action", action_low=low, action_high=high)
        model = SpikingQNet(spec)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        env.close()
    return model, spec, encoder


class AnnActor(torch.nn.Module):
    """The same-shape ANN actor (--actor ann), the baseline TD3 is compared with: ReLU MLP of the encoded
    observation (the same integer payload divided by one input unit), y = last layer, a = tanh(y). Trained by the
    same loop; not exportable (there are no spikes to put on a chip)."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.unit = float(spec.input_unit)
        self.net = mlp([int(np.prod(spec.input_shape)), *[int(layer["out"]) for layer in spec.layers], spec.n_actions])

    def forward(self, payload: torch.Tensor) -> torch.Tensor:
        return self.net(payload.flatten(1) / self.unit)

    def policy_actions(self, payload: torch.Tensor) -> list:
        with torch.no_grad():
            y = self(payload).double().cpu().numpy()
        return [self.spec.readout.to_env(np.tanh(row)) for row in y]


class TwinCritic(torch.nn.Module):
    """Two independent ANN Q-functions Q(s, a) of the encoded observation and the normalised action."""

    def __init__(self, n_obs: int, n_act: int, hidden: list[int]) -> None:
        super().__init__()
        self.q1 = mlp([n_obs + n_act, *hidden, 1])
        self.q2 = mlp([n_obs + n_act, *hidden, 1])

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa = torch.cat([x, a], dim=1)
        return self.q1(xa).squeeze(1), self.q2(xa).squeeze(1)


def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    with torch.no_grad():
        for p_t, p in zip(target.parameters(), source.parameters()):
            p_t.lerp_(p, tau)


class TD3:
    """TD3 (Fujimoto et al. 2018) with the spiking actor ``model`` and twin ANN critics."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.model, self.spec, self.encoder = build_actor(cfg)
        self.spiking = cfg.actor == "snn"
        if not self.spiking:
            self.model = AnnActor(self.spec)
        self.readout = self.spec.readout
        self.action_shape = (self.spec.n_actions,)
        self.target = copy.deepcopy(self.model)
        n_obs = int(np.prod(self.spec.input_shape))
        self.critic = TwinCritic(n_obs, self.spec.n_actions, list(cfg.critic_hidden or [400, 300]))
        self.critic_target = copy.deepcopy(self.critic)
        for net in (self.model, self.target, self.critic, self.critic_target):
            net.to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, foreach=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, eps=cfg.adam_eps, foreach=True)
        self.optimizers = [self.optimizer, self.critic_optimizer]
        self.n_updates = 0
        self.last_actor_loss = 0.0
        self.rng = np.random.default_rng([cfg.seed, 0])
        self.penalty = ActivityPenalty(self.model, cfg)
        self.last_penalty = 0.0

    def resumed(self, step: int) -> None:
        self.rng = np.random.default_rng([self.cfg.seed, step])  # a resumed run draws fresh, seeded noise

    def critic_input(self, payload: torch.Tensor) -> torch.Tensor:
        return payload.flatten(1) / float(self.encoder.unit)

    def explore(self, env, payload: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
        """Uniform random actions for the first learning_starts steps, then the actor's action (from the integer
        readout voltage, as deployed) plus clipped Gaussian noise. Returns (env action, normalised action)."""
        if step < self.cfg.learning_starts:
            a_env = np.asarray(env.action_space.sample(), dtype=np.float64)
            a_norm = np.clip(self.readout.normalize(a_env), -1.0, 1.0)
        else:
            x = torch.from_numpy(payload.astype(np.float32))[None].to(self.device)
            if self.spiking:
                a_norm = self.readout.squash(np.asarray(self.readout.decode(self.model.readout_voltage(x)[0]), dtype=np.float64))
            else:
                with torch.no_grad():
                    a_norm = np.tanh(self.model(x)[0].double().cpu().numpy())
            a_norm = np.clip(a_norm + self.rng.normal(0.0, self.cfg.exploration_noise, a_norm.shape), -1.0, 1.0)
        return self.readout.to_env(a_norm).astype(env.action_space.dtype), a_norm.astype(np.float32)

    def on_reward(self, reward: float) -> None:
        pass

    def before_updates(self, rb, step: int) -> None:  # type: ignore[no-untyped-def]
        pass

    def update(self, batch: Batch, step: int, log: bool) -> tuple[str, float, dict]:
        cfg = self.cfg
        o, a, r, o2, d, discount = batch
        x, x2 = self.critic_input(o), self.critic_input(o2)
        with torch.no_grad():
            noise = (torch.randn_like(a) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            a2 = (self.readout.squash(self.target(o2)) + noise).clamp(-1.0, 1.0)
            q1_t, q2_t = self.critic_target(x2, a2)
            y = r + discount * (1.0 - d) * torch.min(q1_t, q2_t)
        q1, q2 = self.critic(x, a)
        critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        self.n_updates += 1
        spikes = None
        if self.n_updates % cfg.policy_delay == 0:
            if self.penalty.active:  # the pass covers every layer's whole window (train/activity.py)
                y_pi, spikes, activity = self.model.forward_activity(o)
            else:
                y_pi, spikes, _ = self.model(o, return_spikes=True) if self.spiking else (self.model(o), None, None)
            actor_loss = -self.critic.q1(torch.cat([x, self.readout.squash(y_pi)], dim=1)).mean()
            loss = actor_loss
            if self.penalty.active:
                penalty = self.penalty(activity)
                loss = actor_loss + penalty
                self.last_penalty = penalty.item()
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            soft_update(self.target, self.model, cfg.target_tau)
            soft_update(self.critic_target, self.critic, cfg.target_tau)
            self.last_actor_loss = actor_loss.item()
        if not log:
            return "critic_loss", 0.0, {}
        scalars = {"losses/critic_loss": critic_loss.item(), "losses/actor_loss": self.last_actor_loss,
                   "losses/q_values": q1.mean().item()}
        if self.penalty.active:
            scalars["losses/activity_penalty"] = self.last_penalty
        if spikes is not None:
            scalars.update(spike_scalars(spikes, o.shape[0]))
        return "critic_loss", critic_loss.item(), scalars

    def after_step(self, step: int) -> None:
        pass

    def postfix(self, step: int) -> dict:
        return {}

    def state(self) -> dict:
        return {"target_model": self.target.state_dict(), "optimizer": self.optimizer.state_dict(),
                "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(), "n_updates": self.n_updates}

    def load(self, st: dict) -> None:
        for key in ("critic", "critic_target", "critic_optimizer", "n_updates"):
            if key not in st:
                raise ValueError(f"a TD3 checkpoint needs '{key}'")
        self.target.load_state_dict(st["target_model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.critic.load_state_dict(st["critic"])
        self.critic_target.load_state_dict(st["critic_target"])
        self.critic_optimizer.load_state_dict(st["critic_optimizer"])
        self.n_updates = int(st["n_updates"])
