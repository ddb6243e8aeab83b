"""Loihi's fixed-point neuron: every constant, every conversion between float and chip integers, once.

Training (``dsqn.layers.cuba``), export, the emulator (``dsqn.hw_sim``) and the Lava backend all take their Loihi
numbers from here. Sources: lava-dl ``slayer/neuron/cuba.py`` and ``slayer/neuron/base.py`` (``w_scale``,
``s_scale``, ``p_scale``, ``quantize_8bit``), lava-nc ``lava/proc/lif/models.py`` (``AbstractPyLifModelFixed``:
24-bit u/v, 12-bit decays, ``vth_shift``/``act_shift`` 6, ``ds_offset`` 1) and ``lava/lib/dl/netx/hdf5.py``
(``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_exp = 6``).

Float view (what a researcher sets) and integer view (what the chip holds):

====================  ===============================  =========================================
float                 integer                          why
====================  ===============================  =========================================
weight w              w_int = 64 w, even, [-256, 254]  slayer's ``quantize_8bit`` (w_scale 64)
current decay a_u     iDecay = round(4096 a_u)         12-bit decay (p_scale 4096)
voltage decay a_v     vDecay = round(4096 a_v)
threshold th          vThMant = round(64 th), 17 bit   Lava compares ``v > vThMant << 6``
bias b (per step)     bias_mant = round(64 b), 13 bit  netx writes ``bias_exp = 6``
state (u, v) x        x_int = 4096 x, 24 bit           slayer's s_scale = w_scale << 6
====================  ===============================  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# slayer represents a weight w as the integer w * WEIGHT_SCALE; Lava left-shifts the synaptic input
# by ACT_SHIFT (6 bits) to MSB-align it with the 24-bit state, so one weight unit = 64 state units.
WEIGHT_SCALE = 1 << 6
ACT_SHIFT = 6
# slayer's neuron state scale (s_scale = w_scale << 6): float state * 4096 == Lava integer state.
STATE_SCALE = 1 << 12
# Decays are 12-bit fractions of 4096 (p_scale). Lava stores du = iDecay - 1 and adds ds_offset 1 back, so
# the current keeps (4096 - iDecay) / 4096 of itself per step, as the voltage keeps (4096 - vDecay) / 4096.
DECAY_SHIFT = 12
DECAY_SCALE = 1 << DECAY_SHIFT
# Lava spikes on v > (vThMant << VTH_SHIFT); slayer spikes on v >= th + 0.01 / s_scale, the same integers.
VTH_SHIFT = 6
# u and v are 24-bit signed registers: u wraps (once, as Lava's np.where does), v saturates at +-(2**23 - 1).
UV_BITS = 24
UV_MAX = 1 << (UV_BITS - 1)
V_LIMIT = UV_MAX - 1
# netx maps the neuron bias through bias_exp = 6 (hdf5.py get_neuron_params); the mantissa is 13-bit signed.
BIAS_EXP = 6
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << 12), (1 << 12) - 1
# slayer's quantize_8bit: even integers in [-256, 254] (step 2 / w_scale in float units).
WEIGHT_INT_MIN, WEIGHT_INT_MAX = -256, 254
# vThMant is a 17-bit unsigned field of Loihi's LIF.
VTH_MANT_MAX = (1 << 17) - 1
# The readout neuron must not spike: its threshold is the largest the field holds. Its voltage saturates at
# 2**23 - 1 > VTH_MANT_MAX << 6, so a readout whose |v| passes 2**23 - 64 spikes and resets -- on the chip, in
# Lava, in the emulator and in training alike (the kernel models it); Q is then out of range anyway.
READOUT_VTH_MANT = VTH_MANT_MAX
# What netx gives a layer whose file has no neuron group (``1 << 18 - 1`` in hdf5.py, which is 1 << 17).
NETX_DEFAULT_VTH_MANT = 1 << 17
# slayer's threshold epsilon: spike on v >= th + SLAYER_TH_EPS / STATE_SCALE, i.e. v_int > vth_int.
SLAYER_TH_EPS = 0.01
# slayer's surrogate-gradient multipliers (slayer/neuron/cuba.py: TAU_RHO_MULT, SCALE_RHO_MULT).
TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1


def _as_array(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class LoihiNeuron:
    """A CUBA-LIF neuron group in Loihi integers. Every field is a scalar (one value for the layer) or an
    array with one value per neuron; both broadcast the same way."""

    i_decay: np.ndarray
    v_decay: np.ndarray
    vth_mant: np.ndarray
    bias_mant: np.ndarray = field(default_factory=lambda: np.zeros((), dtype=np.int64))
    bias_exp: int = BIAS_EXP

    def __post_init__(self) -> None:
        for name in ("i_decay", "v_decay", "vth_mant", "bias_mant"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))

    def validate(self, where: str) -> None:
        """ValueError naming ``where`` and the value when a field leaves its Loihi range."""
        checks = (("iDecay", self.i_decay, 0, DECAY_SCALE), ("vDecay", self.v_decay, 0, DECAY_SCALE),
                  ("vThMant", self.vth_mant, 1, VTH_MANT_MAX), ("bias mantissa", self.bias_mant, BIAS_MANT_MIN, BIAS_MANT_MAX))
        for name, val, lo, hi in checks:
            bad = (val < lo) | (val > hi)
            if np.any(bad):
                first = int(np.asarray(val)[bad].reshape(-1)[0]) if np.ndim(val) else int(val)
                raise ValueError(f"{where}: {name} {first} outside the Loihi range {lo}..{hi}")

    # --- what the neuron update computes with (state units; see dsqn.kernels.neuron) ---------------------------
    @property
    def keep_u(self) -> np.ndarray:
        """Multiplier of the current per step, over 4096."""
        return DECAY_SCALE - self.i_decay

    @property
    def keep_v(self) -> np.ndarray:
        return DECAY_SCALE - self.v_decay

    @property
    def vth_state(self) -> np.ndarray:
        return self.vth_mant << VTH_SHIFT

    @property
    def bias_state(self) -> np.ndarray:
        return self.bias_mant << self.bias_exp if self.bias_exp >= 0 else self.bias_mant >> -self.bias_exp

    def per_neuron(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keep_u, keep_v, bias_state, vth_state) as int64 arrays of length n (the kernels' arguments)."""
        return tuple(np.ascontiguousarray(np.broadcast_to(a, (n,)), dtype=np.int64)  # type: ignore[return-value]
                     for a in (self.keep_u, self.keep_v, self.bias_state, self.vth_state))

    def to_float(self) -> NeuronParams:
        return NeuronParams(current_decay=self.i_decay / DECAY_SCALE, voltage_decay=self.v_decay / DECAY_SCALE,
                            threshold=self.vth_mant / WEIGHT_SCALE, bias=self.bias_state / (1 << ACT_SHIFT) / WEIGHT_SCALE)


@dataclass(frozen=True)
class NeuronParams:
    """A CUBA-LIF neuron group as a researcher sets it: decays in [0, 1] (the fraction lost per step),
    threshold and bias in weight units (bias added to v every step). Scalars or per-neuron arrays."""

    current_decay: float | np.ndarray = 0.5
    voltage_decay: float | np.ndarray = 0.5
    threshold: float | np.ndarray = 1.0
    bias: float | np.ndarray = 0.0

    def to_loihi(self, where: str = "neuron") -> LoihiNeuron:
        """The chip's integers (rounded to nearest); ValueError naming ``where`` for values outside the fields."""
        for name in ("current_decay", "voltage_decay", "threshold", "bias"):
            val = _as_array(getattr(self, name))
            if not np.all(np.isfinite(val)):
                raise ValueError(f"{where}: {name} is not a finite number ({getattr(self, name)})")
        for name in ("current_decay", "voltage_decay"):
            val = _as_array(getattr(self, name))
            if np.any((val < 0) | (val > 1)):
                raise ValueError(f"{where}: {name} {val[(val < 0) | (val > 1)].reshape(-1)[0] if val.ndim else float(val)} outside 0..1")
        th = _as_array(self.threshold)
        neuron = LoihiNeuron(
            i_decay=np.rint(_as_array(self.current_decay) * DECAY_SCALE),
            v_decay=np.rint(_as_array(self.voltage_decay) * DECAY_SCALE),
            vth_mant=np.rint(th * WEIGHT_SCALE),
            bias_mant=np.rint(_as_array(self.bias) * WEIGHT_SCALE),
        )
        if np.any(neuron.vth_mant < 1) or np.any(neuron.vth_mant > VTH_MANT_MAX):
            raise ValueError(f"{where}: threshold {float(np.max(th)) if np.any(th * 64 > VTH_MANT_MAX) else float(np.min(th))} "
                             f"outside the Loihi range {1 / WEIGHT_SCALE}..{VTH_MANT_MAX / WEIGHT_SCALE} (vThMant is 17 bits)")
        neuron.validate(where)
        return neuron


def quantize_threshold(threshold: float) -> float:
    """Threshold rounded to the grid Loihi can hold (vThMant = threshold * 64 is an integer)."""
    return float(NeuronParams(threshold=threshold).to_loihi("threshold").vth_mant) / WEIGHT_SCALE


def weight_to_int(weight: np.ndarray) -> np.ndarray:
    """slayer's quantize_8bit followed by descale: float weights -> even integers in [-256, 254]."""
    w = np.round(np.asarray(weight, dtype=np.float64) * WEIGHT_SCALE / 2.0) * 2.0
    return np.clip(w, WEIGHT_INT_MIN, WEIGHT_INT_MAX).astype(np.int32)


def readout_neuron(bias_mant: np.ndarray | None = None) -> LoihiNeuron:
    """The non-spiking accumulating readout: u = this step's input (iDecay 4096), v integrates u (vDecay 0)."""
    return LoihiNeuron(i_decay=DECAY_SCALE, v_decay=0, vth_mant=READOUT_VTH_MANT,
                       bias_mant=np.zeros((), np.int64) if bias_mant is None else bias_mant)


def draw_neurons(mean: NeuronParams, n: int, jitter: float, rng: np.random.Generator, where: str) -> NeuronParams:
    """Akl et al. 2023's heterogeneous neurons: each neuron's current decay, voltage decay and threshold drawn once
    from N(mu, jitter * mu) around the layer's value, clipped to what Loihi holds (decays to 0..1, the threshold to
    1/64 .. VTH_MANT_MAX/64). Returns per-neuron float arrays (bias stays the layer's)."""
    if not (np.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"{where}: membrane jitter {jitter} must be a non-negative number")
    out = {}
    for name, lo, hi in (("current_decay", 0.0, 1.0), ("voltage_decay", 0.0, 1.0),
                         ("threshold", 1.0 / WEIGHT_SCALE, VTH_MANT_MAX / WEIGHT_SCALE)):
        mu = float(getattr(mean, name))
        out[name] = np.clip(rng.normal(mu, jitter * abs(mu), n), lo, hi)
    return NeuronParams(current_decay=out["current_decay"], voltage_decay=out["voltage_decay"], threshold=out["threshold"],
                        bias=mean.bias)


def group_neurons(neuron: LoihiNeuron, n: int, k: int, where: str = "layer") -> tuple[np.ndarray, LoihiNeuron]:
    """Quantize per-neuron (iDecay, vDecay, vThMant) integers into at most ``k`` groups, each one triple, so a layer
    maps onto ``k`` Loihi neuron processes (compartment profiles): k-means in the integer space (each axis scaled by
    its spread), deterministic (initial centres at evenly spaced ranks of the neurons sorted by threshold, then
    decays), each group's triple the rounded mean of its members. ``k`` >= the number of distinct triples keeps
    every neuron's own values. Returns (group index per neuron, LoihiNeuron of the groups' arrays)."""
    if k < 1:
        raise ValueError(f"{where}: param groups {k} must be at least 1")
    if k > n:
        raise ValueError(f"{where}: {k} param groups for a layer of {n} neurons")
    x = np.stack([np.broadcast_to(a, (n,)).astype(np.float64) for a in (neuron.i_decay, neuron.v_decay, neuron.vth_mant)], 1)
    distinct, inverse = np.unique(x, axis=0, return_inverse=True)
    if len(distinct) <= k:
        groups, centres = inverse.reshape(-1), distinct
    else:
        scale = np.where(x.std(0) > 0, x.std(0), 1.0)
        z = x / scale
        order = np.lexsort((x[:, 1], x[:, 0], x[:, 2]))
        centres = z[order[((np.arange(k) + 0.5) * n / k).astype(int)]]
        groups = np.zeros(n, dtype=np.int64)
        for _ in range(50):
            d = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
            new = d.argmin(1)
            for j in range(k):
                members = z[new == j]
                if len(members):
                    centres[j] = members.mean(0)
            if np.array_equal(new, groups):
                break
            groups = new
        used = np.unique(groups)
        remap = np.full(k, -1)
        remap[used] = np.arange(len(used))
        groups = remap[groups]
        centres = np.stack([x[groups == j].mean(0) for j in range(len(used))])
    centres = np.rint(centres).astype(np.int64)
    grouped = LoihiNeuron(i_decay=centres[:, 0], v_decay=centres[:, 1], vth_mant=centres[:, 2])
    grouped.validate(where)
    return groups.astype(np.int64), grouped
