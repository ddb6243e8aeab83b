"""The Python API: what the four console scripts do, callable from a notebook, returning what they print.

    import dsqn
    result = dsqn.train(env_id="CartPole-v1", total_timesteps=30_000, out="runs/cartpole")
    net_path = dsqn.export("runs/cartpole/model.pt").path
    policy = dsqn.load(net_path)              # or the model.pt; backend="sim" runs the Lava simulator
    action = policy.predict(obs)              # one observation -> one action; a batch -> an array of actions
    report = dsqn.deploy(net_path, episodes=5)

Everything a console script would refuse is refused here with the same one-line :class:`dsqn.errors.UserError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsqn.encoding import Encoder
from dsqn.errors import UserError


class SpikingPolicy:
    """A trained spiking policy, acting on raw environment observations (numpy in, action out, as SB3's
    ``predict`` -- without SB3's second return value, the recurrent state, which a feed-forward policy has none of).

    ``predict(obs)``: a single observation (the environment's observation shape) gives one action -- an int for a
    Q-network, a float64 array for an actor; a batch (leading axis) gives an array of them. ``q_values(obs)``: a
    Q-network's Q-values, shape (n_actions,) or (batch, n_actions). The encoding is the stored encoder's: exactly
    what training and deployment feed the network."""

    encoder: Encoder
    env_id: str
    kind: str  # "q" (a DSQN) or "action" (a TD3 actor)

    def _payloads(self, obs: Any) -> tuple[np.ndarray, bool]:
        x = np.asarray(obs)
        shape = tuple(self.encoder.env_obs_shape)
        if x.shape == shape:
            return self.encoder.encode(x)[None], True
        if x.ndim == len(shape) + 1 and x.shape[1:] == shape:
            return np.stack([self.encoder.encode(o) for o in x]), False
        raise UserError(f"observation of shape {x.shape}: expected {shape} (one observation) or (batch, *{shape})")

    def _readout(self, payloads: np.ndarray) -> tuple[list[Any], np.ndarray]:
        raise NotImplementedError

    def predict(self, obs: Any) -> Any:
        payloads, single = self._payloads(obs)
        actions, _ = self._readout(payloads)
        if single:
            return actions[0]
        return np.asarray(actions)

    def q_values(self, obs: Any) -> np.ndarray:
        if self.kind != "q":
            raise UserError(f"{self.env_id}: this policy is an actor (continuous actions); it has no Q-values")
        payloads, single = self._payloads(obs)
        _, q = self._readout(payloads)
        return q[0] if single else q

    def close(self) -> None:
        """Stop a simulator backend (a no-op for the others)."""

    def __enter__(self) -> SpikingPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CheckpointPolicy(SpikingPolicy):
    """A model.pt's trained network (the best evaluated weights, the ones dsqn-export writes)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        import torch

        from dsqn.files.checkpoint import load_checkpoint, model_from_checkpoint

        self.path = Path(path)
        model, self.spec, self.encoder, self.config = model_from_checkpoint(load_checkpoint(self.path), self.path)
        self.model = model.to(torch.device(device)).eval()
        self.env_id, self.kind = self.config["env_id"], self.spec.readout_kind
        self._torch = torch

    def _readout(self, payloads: np.ndarray) -> tuple[list[Any], np.ndarray]:
        x = self._torch.from_numpy(payloads.astype(np.float32)).to(next(self.model.parameters()).device)
        actions = self.model.policy_actions(x)
        with self._torch.no_grad():
            q = self.model(x).cpu().numpy().astype(np.float64) if self.kind == "q" else np.empty((len(payloads), 0))
        return actions, q


class NetPolicy(SpikingPolicy):
    """A model.net run on the emulator (``backend="emu"``) or the Lava simulator (``"sim"``); its activity is counted
    in ``counter`` as dsqn-deploy counts it."""

    def __init__(self, path: str | Path, backend: str = "emu") -> None:
        from dsqn.deploy.closed_loop import make_policy
        from dsqn.deploy.run import read_deployable

        if backend not in ("emu", "sim", "loihi2"):
            raise UserError(f"backend {backend!r}: expected emu, sim or loihi2")
        self.path = Path(path)
        self.net = read_deployable(self.path)
        self.encoder = Encoder.from_dict(self.net.meta["encoder"])
        self.env_id, self.kind = self.net.meta["env_id"], self.net.readout.kind
        self.policy = make_policy(self.net, backend)
        self.counter = self.policy.counter

    def _readout(self, payloads: np.ndarray) -> tuple[list[Any], np.ndarray]:
        actions, qs = [], []
        for p in payloads:  # the chip runs one inference at a time
            a, q = self.policy.act(p)
            actions.append(a)
            qs.append(q)
        return actions, np.asarray(qs, dtype=np.float64)

    def close(self) -> None:
        self.policy.close()


def load(path: str | Path, backend: str = "emu", device: str = "cpu") -> SpikingPolicy:
    """A policy from a model.pt (dsqn-train; runs in torch on ``device``) or a model.net (dsqn-export; runs on
    ``backend``: "emu", the bit-exact emulator, or "sim", the Lava simulator -- call ``close()`` or use ``with``)."""
    from dsqn.files.fileio import check_input_file

    p = check_input_file(path)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x89HDF"):
        return NetPolicy(p, backend)
    return CheckpointPolicy(p, device)


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    config: Any  # dsqn.train.config.TrainConfig
    final_eval: dict[str, Any] = field(default_factory=dict)


def train(config: Any = None, *, overwrite: bool = False, **options: Any) -> TrainResult:
    """Train as ``dsqn-train`` does: ``config`` a TrainConfig (from ``dsqn.train.config.make_config``), or options by
    field name (``env_id="CartPole-v1", total_timesteps=30_000, ...``) resolved with the environment's defaults."""
    import json

    from dsqn.files.checkpoint import load_checkpoint
    from dsqn.train.config import make_config
    from dsqn.train.runner import train as run_training

    if config is None:
        config = make_config(**options)
    elif options:
        raise UserError("give either a TrainConfig or options, not both")
    path = run_training(config, set(options), overwrite=overwrite)
    final = json.loads(load_checkpoint(path).get("final_eval_json", "{}") or "{}")
    return TrainResult(run_dir=path.parent, model_path=path, config=config, final_eval=final)


@dataclass
class ExportResult:
    path: Path
    lines: list[str]  # what dsqn-export prints: the layer table, the encoding and readout, the checks


def export(model_pt: str | Path, out: str | Path | None = None, format: str = "netx") -> ExportResult:
    """Export as ``dsqn-export`` does: model.pt -> model.net (NetX HDF5, re-read by stock netx where lava is
    installed) or a NIR graph (``format="nir"``)."""
    from dsqn.export.cli import export_checkpoint

    path, lines = export_checkpoint(model_pt, out, format)
    return ExportResult(path, lines)


def deploy(model_net: str | Path, *, backend: str = "emu", episodes: int = 3, seed: int | None = None,
           epsilon: float = 0.0, max_steps: int = 0, env_id: str = "", profile: str = "", report: str = "",
           html: str = "", compare: str = "", progress: bool = False) -> dict[str, Any]:
    """Deploy as ``dsqn-deploy`` does and return its report (returns, per-layer counts, energy): the dict written to
    the report JSON. ``seed`` None = the final evaluation's seed (the same episodes training scored)."""
    from dsqn.deploy.run import DEFAULT_PROFILE, DeployOptions
    from dsqn.deploy.run import deploy as run_deploy
    from dsqn.envs import FINAL_EVAL_SEED

    opt = DeployOptions(model=str(model_net), backend=backend, episodes=episodes,
                        seed=FINAL_EVAL_SEED if seed is None else seed, epsilon=epsilon, max_steps=max_steps,
                        env_id=env_id, profile=profile or DEFAULT_PROFILE, report=report, html=html, compare=compare,
                        progress=progress)
    return run_deploy(opt, log_line=lambda line: None)
