"""What the last layer's voltage means, and the one function that turns it into the policy's output.

The readout is a non-spiking CUBA layer (``dsqn.fixed_point.readout_neuron``) whose voltage ``v`` (Loihi state
units, 24-bit) is read after the last step of an inference. Today it carries Q-values:
``Q = scale * v / (T * 4096)``, i.e. ``scale * (W @ mean_t(spikes) + b)`` in float units -- the DSQN readout.
``decode`` is the only place that formula lives: training, export, deployment and the report all call it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .fixed_point import STATE_SCALE

READOUT_KINDS = ("q",)


@dataclass(frozen=True)
class Readout:
    kind: str
    """'q': the voltages are Q-values, the greedy action is their argmax."""
    scale: float
    """positive constant; for Q-values it never changes the greedy action of a network."""
    timesteps: int
    """T of the inference (the voltage sums T - L steps of input; dividing by T gives the mean)."""

    def __post_init__(self) -> None:
        if self.kind not in READOUT_KINDS:
            raise ValueError(f"readout kind {self.kind!r}: expected one of {READOUT_KINDS}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"readout scale {self.scale} must be a positive number")
        if int(self.timesteps) < 1:
            raise ValueError(f"readout timesteps {self.timesteps} must be positive")

    @property
    def divisor(self) -> int:
        return int(self.timesteps) * STATE_SCALE

    def decode(self, v):  # type: ignore[no-untyped-def]
        """Readout voltage in state units (numpy integers, or a torch tensor of integer values) -> Q."""
        if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
            v = v.astype(np.float64)
        return self.scale * v / self.divisor

    def act(self, v: np.ndarray) -> int:
        """Greedy action of one inference's readout voltage."""
        return int(np.argmax(np.asarray(v)))

    def to_dict(self) -> dict:
        return {**asdict(self), "state": "v", "formula": f"Q = scale * v / (timesteps * {STATE_SCALE})"}

    @classmethod
    def from_dict(cls, d: dict, timesteps: int) -> Readout:
        return cls(kind=str(d.get("kind", "q")), scale=float(d.get("scale", d.get("q_scale"))), timesteps=int(timesteps))
