"""The spiking Q-network, built only from lava-dl ``slayer.block.cuba`` blocks.

What training computes is what Loihi computes (checked bit for bit against Lava in the tests):

* weights pass through slayer's ``quantize_8bit`` in every forward pass (even integers / 64);
* every synapse delays by one timestep, as Lava's Dense/Conv do: slayer models the delay of synapse
  k+1 with ``delay_shift`` on block k, and the first synapse's delay by presenting the input from
  t = 1 on (``x[..., 0] = 0``);
* the input is the integer graded-spike payload of :class:`dsqn.encoding.Encoder`; the first layer's
  threshold is scaled by ``encoder.unit`` instead of scaling the payload, so no rounding happens;
* the readout is a non-spiking ``cuba.Affine`` block (current decay 1, voltage decay 0): its voltage
  after T steps is the sum over time of W @ spikes (+ bias from the step its state is reset on), so
  ``Q = q_scale * (W @ mean_t spikes + b)`` is read from that one neuron state on the chip.

Lava resets layer i of a netx network at step ``reset_offset + 1 + i`` of each interval; with input
presented from the interval's first step (``deploy`` uses ``reset_offset = 1``) layer i starts afresh
exactly when its first input of the new inference arrives. The readout (layer index L-1, L layers)
starts integrating its bias at t = L, which is where the training model adds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from lava.lib.dl import slayer

from dsqn.fixed_point import BIAS_MANT_MAX, BIAS_MANT_MIN, WEIGHT_SCALE, quantize_threshold

ARCH_VERSION = 1


@dataclass
class NetSpec:
    """Architecture and neuron parameters; everything needed to rebuild the network."""

    input_shape: list[int]
    """(C,) for vector observations (C = encoder channels) or (C, H, W) for images."""
    layers: list[dict]
    """Hidden layers, e.g. {"type": "dense", "out": 64} or {"type": "conv", "out": 32, "kernel": 8, "stride": 4}."""
    n_actions: int
    timesteps: int = 8
    """Timesteps per inference (T); the network state is reset between inferences."""
    threshold: float = 1.0
    current_decay: float = 0.5
    voltage_decay: float = 0.5
    input_unit: int = 32
    """Payload value of one input unit (Encoder.unit): the first layer's threshold is multiplied by it."""
    q_scale: float = 1.0
    """Q = q_scale * (readout voltage / T); a positive constant, so it never changes the greedy action."""
    tau_grad: float = 1.0
    scale_grad: float = 1.0
    arch_version: int = ARCH_VERSION

    @property
    def n_layers(self) -> int:
        """Number of netx layers that hold neurons (hidden + readout)."""
        return len(self.layers) + 1

    def validate(self) -> None:
        if self.timesteps <= self.n_layers:
            raise ValueError(
                f"timesteps={self.timesteps} must exceed the number of layers ({self.n_layers}): each "
                "synapse delays by one step, so the readout sees nothing before step L"
            )
        for layer in self.layers:
            if layer.get("type") not in ("dense", "conv"):
                raise ValueError(f"unknown layer type in {layer}")
        quantize_threshold(self.threshold)
        quantize_threshold(self.threshold * self.input_unit)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetSpec:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def _neuron_params(spec: NetSpec, threshold: float) -> dict:
    return {
        "threshold": quantize_threshold(threshold),
        "current_decay": spec.current_decay,
        "voltage_decay": spec.voltage_decay,
        "tau_grad": spec.tau_grad,
        "scale_grad": spec.scale_grad,
        "requires_grad": False,
        "shared_param": True,
    }


READOUT_NEURON = {"threshold": 1.0, "current_decay": 1.0, "voltage_decay": 0.0, "requires_grad": False}


def conv_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class SpikingQNet(torch.nn.Module):
    """Deep spiking Q-network: CUBA-LIF dense/conv blocks and a non-spiking accumulating readout."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        blocks: list[torch.nn.Module] = []
        shape = list(spec.input_shape)
        for i, layer in enumerate(spec.layers):
            threshold = spec.threshold * (spec.input_unit if i == 0 else 1)
            params = _neuron_params(spec, threshold)
            if layer["type"] == "conv":
                if len(shape) != 3:
                    raise ValueError("a conv layer needs a (C, H, W) input")
                k, s = int(layer["kernel"]), int(layer.get("stride", 1))
                blocks.append(
                    slayer.block.cuba.Conv(params, shape[0], int(layer["out"]), k, stride=s, weight_scale=2, delay_shift=True)
                )
                shape = [int(layer["out"]), conv_out(shape[1], k, s), conv_out(shape[2], k, s)]
            else:
                if len(shape) == 3:
                    blocks.append(slayer.block.cuba.Flatten())
                    shape = [int(np.prod(shape))]
                blocks.append(
                    slayer.block.cuba.Dense(params, shape[0], int(layer["out"]), weight_scale=2, delay_shift=True)
                )
                shape = [int(layer["out"])]
        if len(shape) == 3:
            blocks.append(slayer.block.cuba.Flatten())
            shape = [int(np.prod(shape))]
        self.blocks = torch.nn.ModuleList(blocks)
        self.readout = slayer.block.cuba.Affine(READOUT_NEURON, shape[0], spec.n_actions, weight_scale=1, dynamics=True)
        # Readout bias in units of the readout voltage per step; quantized to bias_mant / 64 on export.
        self.readout_bias = torch.nn.Parameter(torch.zeros(spec.n_actions))

    def quantized_bias(self) -> torch.Tensor:
        """Readout bias on Loihi's grid (bias_mant / 64), with a straight-through gradient."""
        b = self.readout_bias * WEIGHT_SCALE
        bq = torch.clamp(torch.round(b), BIAS_MANT_MIN, BIAS_MANT_MAX)
        return (b + (bq - b).detach()) / WEIGHT_SCALE

    def shift_q(self, delta: float) -> None:
        """Add ``delta`` to every Q value through the readout bias (clamped to the bias mantissa range)."""
        per_unit = self.spec.q_scale * (self.spec.timesteps - self.spec.n_layers) / self.spec.timesteps
        with torch.no_grad():
            self.readout_bias.add_(delta / per_unit).clamp_(BIAS_MANT_MIN / WEIGHT_SCALE, BIAS_MANT_MAX / WEIGHT_SCALE)

    def forward(self, payload: torch.Tensor, return_spikes: bool = False):
        """payload: (B, *input_shape) integer payloads (as float). Returns Q (B, A) [and spike trains]."""
        T = self.spec.timesteps
        x = payload.unsqueeze(-1).repeat(*([1] * payload.dim()), T)
        x[..., 0] = 0  # the first synapse delays by one step
        spikes = []
        for block in self.blocks:
            x = block(x)
            if not isinstance(block, slayer.block.cuba.Flatten):
                spikes.append(x)
        z = self.readout.synapse(x)
        # The readout's state is reset at t = L (see module docstring); its bias enters from then on.
        active = torch.zeros(T, device=z.device, dtype=z.dtype)
        active[self.spec.n_layers :] = 1.0
        z = z + self.quantized_bias()[None, :, None] * active
        _, voltage = self.readout.neuron.dynamics(z)
        q = self.spec.q_scale * voltage[..., -1] / T
        if return_spikes:
            return q, spikes, voltage
        return q
