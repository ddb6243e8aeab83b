"""What the DQN and TD3 algorithms share (as SB3's common/torch_layers.py): the ANN MLP of baselines and critics, the
observation encoder of vector environments, the spiking network's spec from a config, the target update and the
spike statistics logged to TensorBoard."""

from __future__ import annotations

import numpy as np
import torch

from dsqn.encoding import Encoder
from dsqn.envs import obs_scale_for
from dsqn.layers.spec import NetSpec

from .config import TrainConfig


def mlp(sizes: list[int]) -> torch.nn.Sequential:
    """Linear layers with ReLU between them (none after the last): the ANN baselines' dense stack."""
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def update_target(target: torch.nn.Module, model: torch.nn.Module, tau: float) -> None:
    """target <- tau * model + (1 - tau) * target on the float (pre-quantization) weights; tau 1 copies."""
    if tau >= 1.0:
        target.load_state_dict(model.state_dict())
        return
    with torch.no_grad():
        for p_t, p_o in zip(target.parameters(), model.parameters()):
            p_t.lerp_(p_o, tau)


def vector_encoder(cfg: TrainConfig, env) -> Encoder:  # type: ignore[no-untyped-def]
    """The encoder of a vector observation: --encoding with --obs-scale or the environment's divisors."""
    scale = tuple(float(v) for v in cfg.obs_scale) or obs_scale_for(cfg.env_id, env)
    n_obs = int(np.prod(env.observation_space.shape or (0,)))
    if cfg.obs_scale and len(scale) != n_obs:
        raise ValueError(f"--obs-scale has {len(scale)} values but {cfg.env_id} observations have {n_obs} components")
    return Encoder(kind=cfg.encoding, obs_scale=scale, frac_bits=cfg.frac_bits)


def network_spec(cfg: TrainConfig, encoder: Encoder, layers: list[dict], n_outputs: int, **readout) -> NetSpec:  # type: ignore[no-untyped-def]
    """The spiking network's spec from the config (neuron parameters, T, readout scale, heterogeneous neurons --
    drawn once per run from the seed and stored in the checkpoint's spec); ``readout`` adds an actor's kind and bounds."""
    return NetSpec(
        input_shape=encoder.input_shape, layers=layers, n_actions=n_outputs, timesteps=cfg.snn_steps,
        threshold=cfg.threshold, current_decay=cfg.current_decay, voltage_decay=cfg.voltage_decay,
        input_unit=encoder.unit, q_scale=cfg.q_scale, tau_grad=cfg.tau_grad, scale_grad=cfg.scale_grad,
        membrane_jitter=cfg.membrane_jitter, param_groups=cfg.param_groups, **readout,
    ).with_drawn_neurons(cfg.seed)


def spike_scalars(spikes: list[torch.Tensor], n: int) -> dict[str, float]:
    """Per hidden layer: the mean spike rate over the batch, and the fraction of neurons with one rate for every
    state in the batch (they carry no information)."""
    out = {}
    for i, s in enumerate(spikes):
        rates = s[:n].mean(-1).flatten(1)  # (batch, neurons)
        out[f"spikes/rate_L{i}"] = rates.mean().item()
        out[f"spikes/constant_frac_L{i}"] = (rates.std(0) == 0).float().mean().item()
    return out
