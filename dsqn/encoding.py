"""Observation encoders shared by training and deployment (so both see identical integers).

Every encoder maps an observation to integer *payloads* of graded spikes, presented to the first
layer at every timestep of an inference. The training model feeds the same integers to its blocks, and
the first layer's threshold is scaled by ``2**frac_bits`` so that one payload unit is 1/2**frac_bits
of an observation unit. This keeps the integer path exact: Lava computes ``W @ payload`` with no
rounding, and neither does the training model (dsqn.layers.exact.exact_product).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ENCODINGS = ("two_neuron", "direct", "pixels")


@dataclass(frozen=True)
class Encoder:
    """Maps observations (..., D) to graded-spike payloads (..., C)."""

    kind: str = "two_neuron"
    """'two_neuron' (Akl et al.: x -> (max(x,0), max(-x,0))), 'direct' (signed x) or 'pixels' (uint8 frames:
    pixel/255 presented as the 8-bit graded payload = pixel, so one input unit is 255 payload)."""
    obs_scale: tuple[float, ...] = field(default_factory=tuple)
    """Per-component divisor applied before encoding (normalises observations to about [-1, 1])."""
    frac_bits: int = 5
    """Payload units per normalised unit = 2**frac_bits."""
    payload_bits: int = 8
    """Graded spike width (netx ``input_message_bits``)."""
    obs_shape: tuple[int, ...] = ()
    """Observation shape for 'pixels' (e.g. (4, 84, 84)); vector encoders use len(obs_scale)."""

    def __post_init__(self) -> None:
        if self.kind not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.kind!r}; expected one of {ENCODINGS}")
        if self.kind == "pixels":
            if len(self.obs_shape) != 3 or self.payload_bits != 8:
                raise ValueError("'pixels' needs obs_shape (C, H, W) and 8-bit payloads")
            return
        if not self.obs_scale or any(s <= 0 for s in self.obs_scale):
            raise ValueError(f"obs_scale must be a non-empty list of positive numbers, got {self.obs_scale}")
        if not 0 <= self.frac_bits < self.payload_bits <= 24:
            raise ValueError("need 0 <= frac_bits < payload_bits <= 24")

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape)) if self.kind == "pixels" else len(self.obs_scale)

    @property
    def channels(self) -> int:
        if self.kind == "pixels":
            return self.obs_shape[0]
        return 2 * self.obs_dim if self.kind == "two_neuron" else self.obs_dim

    @property
    def env_obs_shape(self) -> tuple[int, ...]:
        """Shape of the environment's observation this encoder takes."""
        return tuple(self.obs_shape) if self.kind == "pixels" else (self.obs_dim,)

    @property
    def input_shape(self) -> list[int]:
        """Shape of the network input: (C,) for vectors, (C, H, W) for frames."""
        return list(self.obs_shape) if self.kind == "pixels" else [self.channels]

    @property
    def unit(self) -> int:
        """Payload value of one normalised observation unit."""
        return 255 if self.kind == "pixels" else 1 << self.frac_bits

    def payload_range(self) -> tuple[int, int]:
        if self.kind in ("two_neuron", "pixels"):
            return 0, (1 << self.payload_bits) - 1
        return -(1 << (self.payload_bits - 1)), (1 << (self.payload_bits - 1)) - 1

    def encode(self, obs: np.ndarray) -> np.ndarray:
        """Observations (..., D) -> int32 payloads (..., C), rounded and clipped to the payload range."""
        if self.kind == "pixels":
            arr = np.asarray(obs)
            if tuple(arr.shape[-3:]) != tuple(self.obs_shape):
                raise ValueError(f"frame stack has shape {arr.shape}, encoder expects {self.obs_shape}")
            return arr.astype(np.int32)
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observation has {obs.shape[-1]} components, encoder expects {self.obs_dim}")
        x = obs / np.asarray(self.obs_scale, dtype=np.float64)
        if self.kind == "two_neuron":
            x = np.concatenate([np.maximum(x, 0.0), np.maximum(-x, 0.0)], axis=-1)
        lo, hi = self.payload_range()
        return np.clip(np.round(x * self.unit), lo, hi).astype(np.int32)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["obs_scale"] = [float(s) for s in self.obs_scale]
        d["obs_shape"] = [int(s) for s in self.obs_shape]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Encoder:
        return cls(
            kind=str(d["kind"]),
            obs_scale=tuple(float(s) for s in d["obs_scale"]),
            frac_bits=int(d["frac_bits"]),
            payload_bits=int(d["payload_bits"]),
            obs_shape=tuple(int(s) for s in d.get("obs_shape", ())),
        )
