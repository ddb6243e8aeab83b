"""What the last layer's voltage means, and the one function that turns it into the policy's output.

The readout is a non-spiking CUBA layer (``dsqn.kernels.fixed_point.readout_neuron``) whose voltage ``v`` (Loihi state
units, 24-bit) is read after the last step of an inference. ``decode`` gives ``y = scale * v / (T * 4096)``,
i.e. ``scale * (W @ mean_t(spikes) + b)`` in float units, and is the only place that formula lives: training,
export, deployment and the report all call it. Two kinds:

* ``q`` (DSQN, Liu et al. 2022): ``y`` are Q-values; the policy's action is their argmax.
* ``action`` (a TD3 actor, Akl et al. 2023): ``y`` is the pre-activation of a continuous action,
  ``a = low + (tanh(y) + 1) * (high - low) / 2`` per dimension (``= max_action * tanh(y)`` for symmetric bounds).
  tanh rather than a clip: the actor's gradient never vanishes at the bounds during training (a clipped action
  has zero gradient outside them, and TD3's deterministic policy gradient then stalls there), and the action stays
  inside the bounds for every voltage. The host applies it to the integer voltage in float64 in ``act``; training
  acts through the same function on the same integers, so a deployed actor's actions equal the trained one's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dsqn.kernels.fixed_point import STATE_SCALE

READOUT_KINDS = ("q", "action")


@dataclass(frozen=True)
class Readout:
    kind: str
    """'q': the voltages are Q-values, the greedy action is their argmax; 'action': a continuous action (tanh)."""
    scale: float
    """positive constant; for Q-values it never changes the greedy action of a network."""
    timesteps: int
    """T of the inference (the voltage sums T - L steps of input; dividing by T gives the mean)."""
    low: tuple[float, ...] = ()
    """'action' only: the lower bound of each action dimension (the environment's Box)."""
    high: tuple[float, ...] = ()
    """'action' only: the upper bound of each action dimension."""

    def __post_init__(self) -> None:
        if self.kind not in READOUT_KINDS:
            raise ValueError(f"readout kind {self.kind!r}: expected one of {READOUT_KINDS}")
        object.__setattr__(self, "low", tuple(float(x) for x in self.low))
        object.__setattr__(self, "high", tuple(float(x) for x in self.high))
        if self.kind == "action":
            lo, hi = np.asarray(self.low), np.asarray(self.high)
            if lo.size == 0 or lo.shape != hi.shape:
                raise ValueError(f"action readout bounds: low {list(self.low)} and high {list(self.high)} must be "
                                 "non-empty and of one length")
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
                raise ValueError(f"action readout bounds low {list(self.low)}, high {list(self.high)}: need finite low < high")
        elif self.low or self.high:
            raise ValueError("a Q readout has no action bounds")
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

    def squash(self, y):  # type: ignore[no-untyped-def]
        """'action': decoded readout -> action normalised to [-1, 1] (tanh); numpy float64 or a torch tensor."""
        return np.tanh(y) if isinstance(y, np.ndarray) else y.tanh()

    def to_env(self, a_norm: np.ndarray) -> np.ndarray:
        """'action': normalised action in [-1, 1] -> the environment's units (float64)."""
        lo, hi = np.asarray(self.low), np.asarray(self.high)
        return lo + (np.asarray(a_norm, dtype=np.float64) + 1.0) * ((hi - lo) / 2.0)

    def normalize(self, a_env: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_env`."""
        lo, hi = np.asarray(self.low), np.asarray(self.high)
        return (np.asarray(a_env, dtype=np.float64) - lo) / ((hi - lo) / 2.0) - 1.0

    def act(self, v: np.ndarray):  # type: ignore[no-untyped-def]
        """The policy's action for one inference's readout voltage (integers): the argmax for Q-values, the
        continuous action (float64 array in the environment's units) for an actor."""
        v = np.asarray(v)
        if self.kind == "q":
            return int(np.argmax(v))
        return self.to_env(self.squash(np.asarray(self.decode(v), dtype=np.float64)))

    def to_dict(self) -> dict:
        d = {**asdict(self), "state": "v", "formula": f"Q = scale * v / (timesteps * {STATE_SCALE})"}
        if self.kind == "q":
            del d["low"], d["high"]
        else:
            d["low"], d["high"] = list(self.low), list(self.high)
            d["formula"] = (f"y = scale * v / (timesteps * {STATE_SCALE}); "
                            "action = low + (tanh(y) + 1) * (high - low) / 2")
        return d

    @classmethod
    def from_dict(cls, d: dict, timesteps: int) -> Readout:
        return cls(kind=str(d.get("kind", "q")), scale=float(d.get("scale", d.get("q_scale"))), timesteps=int(timesteps),
                   low=tuple(d.get("low", ())), high=tuple(d.get("high", ())))
