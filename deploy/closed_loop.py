"""Closed-loop deployment: env -> encoder -> network (Lava or emulator) -> readout -> action (the argmax of Q, or an
actor's continuous action: ``dsqn.layers.readout.Readout.act``)."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dsqn.encoding import Encoder
from dsqn.envs import EpsilonGreedy, check_spaces, make_env
from dsqn.errors import UserError
from dsqn.extras import require_lava
from dsqn.files.netfile import NetFile
from dsqn.hw_sim.counters import Counter, WindowStitcher


class Policy:
    """The policy computed by a deployed network (greedy for Q-values); counts activity of every inference.
    ``act`` returns the action (an int, or a float64 array for an actor) and the decoded readout."""

    def __init__(self, net: NetFile) -> None:
        self.net = net
        self.meta = net.meta
        self.T = net.timesteps
        self.readout = net.readout
        self.counter = Counter(net.layers, self.T)
        self.overflow: int | None = 0  # wrap/saturation events; None where the backend cannot see them

    def act(self, payload: np.ndarray) -> tuple[int | np.ndarray, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class EmuPolicy(Policy):
    def __init__(self, net: NetFile) -> None:
        super().__init__(net)
        from dsqn.hw_sim.emulator import Emulator

        self.emu = Emulator(net)

    def act(self, payload: np.ndarray) -> tuple[int | np.ndarray, np.ndarray]:
        v, windows, overflow = self.emu.infer(payload[None], self.T)
        self.counter.add(payload, [w[0] for w in windows])
        self.overflow += sum(overflow)
        return self.readout.act(v[0]), self.readout.decode(v[0])


class LavaPolicy(Policy):
    def __init__(self, net: NetFile, backend: str) -> None:
        super().__init__(net)
        from .lava_backend import LavaNetwork

        self.lava = LavaNetwork.from_netfile(net, backend=backend)
        self.overflow = None  # Lava does not report u wraps or v saturations
        self.stitch = WindowStitcher(len(net.layers))
        self.in_shape = tuple(int(s) for s in self.meta["input_shape"])

    def act(self, payload: np.ndarray) -> tuple[int | np.ndarray, np.ndarray]:
        inf = self.lava.infer(payload)
        done = self.stitch.push(payload, inf.spikes)
        if done is not None:
            self.counter.add(*done)
        return self.readout.act(inf.readout_v), self.readout.decode(inf.readout_v)

    def flush(self) -> None:
        """Run one more window with zero input so the last inference's pipelined tail is counted."""
        if self.stitch.prev is not None:
            inf = self.lava.infer(np.zeros(self.in_shape, dtype=np.int64))
            done = self.stitch.push(np.zeros(self.in_shape), inf.spikes)
            if done is not None:
                self.counter.add(*done)
            self.stitch.prev = None

    def close(self) -> None:
        self.lava.close()


class ActionComparison:
    """``on_step`` of :func:`run_episodes`: the trained model's action on the deployed network's input, compared for
    exact equality with the network's own action (a DSQN's argmax, an actor's continuous action). Used by
    ``dsqn-deploy --compare`` and benchmarks/fidelity.py."""

    def __init__(self, model, checkpoint: str | Path, sha256: str = "") -> None:  # type: ignore[no-untyped-def]
        import torch  # the trained model's side only: the emulator and Lava backends run without it

        self.torch, self.model, self.checkpoint, self.sha256 = torch, model, checkpoint, sha256
        self.steps = self.same = 0
        self.first_difference: int | None = None

    def __call__(self, obs, payload, action, q) -> None:  # type: ignore[no-untyped-def]
        trained = self.model.policy_actions(self.torch.from_numpy(np.asarray(payload, dtype=np.float32))[None])[0]
        if np.array_equal(np.asarray(trained), np.asarray(action)):
            self.same += 1
        elif self.first_difference is None:
            self.first_difference = self.steps
        self.steps += 1

    def summary(self) -> dict:
        return {"checkpoint": {"path": str(self.checkpoint), "sha256": self.sha256}, "steps": self.steps,
                "same_action": self.same, "first_different_step": self.first_difference}


def check_environment(net: NetFile, env_id: str) -> None:
    """Before a backend starts: the environment exists, its spaces fit the network and the stored encoder turns its
    observations into the network's input (one-line UserErrors)."""
    encoder = Encoder.from_dict(net.meta["encoder"])
    if list(encoder.input_shape) != list(net.input_shape):
        raise UserError(f"{net.path}: the stored encoder gives inputs of shape {list(encoder.input_shape)}, "
                        f"the network takes {list(net.input_shape)}")
    env = make_env(env_id)
    try:
        check_spaces(env, encoder.env_obs_shape, int(net.meta["n_actions"]), env_id, net.readout.kind)
    finally:
        env.close()


STALE_DIR_MIN_AGE_S = 60.0  # a dead process's socket folder untouched this long is removed at deploy start


def make_policy(net: NetFile, backend: str) -> Policy:
    """The deployed network's policy on ``backend`` (emu, sim, loihi2). Every deploy first removes the Lava socket
    folders (``dsqn-lava-<pid>-*``) that SIGKILLed runs left behind, and says so on stderr when there were any;
    one of a process that died in the last STALE_DIR_MIN_AGE_S seconds waits for a later deploy (or Lava start), so
    that a run that just looked for its own killed child's folder still finds it."""
    from .lava_runtime import TEMPDIR_PREFIX, remove_stale_temp_dirs

    removed = remove_stale_temp_dirs(min_age_s=STALE_DIR_MIN_AGE_S)
    if removed:
        folders = "folder" if removed == 1 else "folders"
        print(f"removed {removed} stale Lava socket {folders} of dead processes "
              f"({Path(tempfile.gettempdir()) / TEMPDIR_PREFIX}<pid>-*)", file=sys.stderr)
    if backend == "emu":
        return EmuPolicy(net)
    if backend in ("sim", "loihi2"):
        require_lava(f"backend {backend}")
        return LavaPolicy(net, backend)
    raise UserError(f"unknown backend {backend!r} (sim, emu, loihi2)")


@dataclass
class EpisodeLog:
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    actions: list[list[int]] = field(default_factory=list)
    seconds: float = 0.0
    capped: int = 0  # episodes stopped at max_steps rather than by the environment


def run_episodes(policy: Policy, env_id: str, episodes: int, seed: int, max_steps: int = 0, record_actions: bool = False,
                 on_step=None, epsilon: float = 0.0, on_episode=None) -> EpisodeLog:  # type: ignore[no-untyped-def]
    """Episodes seeded seed, seed + 1, ...; ``epsilon`` > 0 (Q-networks): epsilon-greedy as dsqn-train evaluates
    (:class:`dsqn.envs.EpsilonGreedy`), so the same seeds give the same episodes as the training's evaluation.
    ``on_step(obs, payload, action, q)`` sees the network's own action, before epsilon-greedy replaces it;
    ``on_episode(episode, return, length)`` runs after each episode (progress)."""
    encoder = Encoder.from_dict(policy.meta["encoder"])
    env = make_env(env_id)
    log = EpisodeLog()
    t0 = time.time()
    try:
        check_spaces(env, encoder.env_obs_shape, int(policy.meta["n_actions"]), env_id, policy.readout.kind)
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            pick = EpsilonGreedy(epsilon, seed + ep, int(policy.meta["n_actions"])) if policy.readout.kind == "q" else None
            total, n, done, acts = 0.0, 0, False, []
            while not done:
                payload = encoder.encode(obs)
                action, q = policy.act(payload)
                if on_step is not None:  # the network's own action, before any epsilon-greedy replacement
                    on_step(obs, payload, action, q)
                if pick is not None:
                    action = pick(action)
                acts.append(action)
                obs, r, term, trunc, _ = env.step(action)
                total += float(r)
                n += 1
                done = term or trunc or (max_steps > 0 and n >= max_steps)
            log.capped += int(not (term or trunc))
            log.returns.append(total)
            log.lengths.append(n)
            if record_actions:
                log.actions.append(acts)
            if on_episode is not None:
                on_episode(ep, total, n)
        if isinstance(policy, LavaPolicy):
            policy.flush()
    finally:
        env.close()
    log.seconds = time.time() - t0
    return log
