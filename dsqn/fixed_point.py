"""Loihi fixed-point constants shared by training, export, the emulator and deployment.

Each constant is defined once here with the reason it has its value. Sources:
lava-dl ``slayer/neuron/cuba.py`` (``w_scale``/``s_scale``/``p_scale``), lava-nc
``lava/proc/lif/models.py`` (``AbstractPyLifModelFixed``) and ``lava/lib/dl/netx/hdf5.py``.
"""

from __future__ import annotations

import numpy as np

# slayer represents a weight w as the integer w * WEIGHT_SCALE; Lava left-shifts the synaptic input
# by ACT_SHIFT (6 bits) to MSB-align it with the 24-bit state, so one weight unit = 64 state units.
WEIGHT_SCALE = 1 << 6
ACT_SHIFT = 6
# slayer's neuron state scale (s_scale = w_scale << 6): float state * 4096 == Lava integer state.
STATE_SCALE = 1 << 12
# Decays are 12-bit fractions of 4096 (p_scale); Lava adds a 1-bit offset to du so iDecay=4096 works.
DECAY_SCALE = 1 << 12
# Lava compares v > (vth << VTH_SHIFT).
VTH_SHIFT = 6
# u and v are 24-bit signed registers: u wraps, v saturates at +-(2**23 - 1).
UV_BITS = 24
UV_MAX = 1 << (UV_BITS - 1)
# netx maps the neuron bias through bias_exp = 6 (hdf5.py get_neuron_params).
BIAS_EXP = 6
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << 12), (1 << 12) - 1
# slayer's quantize_8bit: even integers in [-256, 254] (step 2 / w_scale in float units).
WEIGHT_INT_MIN, WEIGHT_INT_MAX = -256, 254
# vth is a 17-bit unsigned mantissa in Lava's LIF.
VTH_MANT_MAX = (1 << 17) - 1
# A readout neuron that must never spike: v <= 2**23 - 1 < (1 << 17) << 6. This is the value netx
# itself uses for its default non-leaky integrator (``1 << 18 - 1`` == ``1 << 17``).
READOUT_VTH_MANT = 1 << 17


def quantize_threshold(threshold: float) -> float:
    """Threshold rounded to the grid Loihi can hold (vThMant = threshold * 64 must be an integer)."""
    mant = int(round(threshold * WEIGHT_SCALE))
    if not 1 <= mant <= VTH_MANT_MAX:
        raise ValueError(f"threshold {threshold} is outside the Loihi range (1/64 .. {VTH_MANT_MAX / 64})")
    return mant / WEIGHT_SCALE


def weight_to_int(weight: np.ndarray) -> np.ndarray:
    """slayer's quantize_8bit followed by descale: float weights -> even integers in [-256, 254]."""
    w = np.round(np.asarray(weight, dtype=np.float64) * WEIGHT_SCALE / 2.0) * 2.0
    return np.clip(w, WEIGHT_INT_MIN, WEIGHT_INT_MAX).astype(np.int32)
