"""When things happen on the chip: synaptic delay, netx's per-layer reset phase, each layer's window.

These rules are used by the training model, the emulator, the activity counters and the Lava backend;
nothing else in the toolchain spells them out.

* **One step of delay per synapse.** Lava's Dense/Conv send on step t what they accumulated on step t-1
  (``lava/proc/dense/models.py``: ``a_out.send(a_buff)`` before computing the new ``a_buff``). slayer models it
  with ``delay_shift=True`` on each block, and the first synapse's delay by presenting the input from step 1.
* **Resets.** A netx network built with ``reset_interval = T`` and ``reset_offset = k`` zeroes u and v of layer i
  on Lava step ``s`` (counted from 1) with ``s % T == (k + 1 + i) % T`` (``netx/hdf5.py``). With steps counted
  from 0 that is step ``t = (k + i) % T`` of every window. With ``RESET_OFFSET = 1`` layer i starts afresh
  exactly when the first input of the new inference reaches it (step i + 1), so back-to-back inferences on the
  chip equal independent ones in training.
* **Windows.** Layer i therefore works on one inference from step i + 1 to step T + i (its pipelined window);
  the readout (layer L - 1 of L) holds the inference's answer after step T - 1, having integrated T - L steps.
"""

from __future__ import annotations

import numpy as np

SYNAPSE_DELAY = 1
RESET_OFFSET = 1


def reset_interval(timesteps: int) -> int:
    """netx's reset interval: one inference per T steps."""
    return int(timesteps)


def reset_step(layer: int, timesteps: int, reset_offset: int = RESET_OFFSET) -> int:
    """0-based step of each T-step window on which layer ``layer`` is reset."""
    return (reset_offset + layer) % timesteps


def reset_mask(layer: int, n_steps: int, timesteps: int | None, reset_offset: int = RESET_OFFSET,
               first_step: int = 0) -> np.ndarray:
    """(n_steps,) bool: True on the steps where the layer's state is zeroed before its update.
    ``timesteps=None`` means no resets (a network built without reset_interval)."""
    steps = np.arange(first_step, first_step + n_steps)
    if timesteps is None:
        return np.zeros(n_steps, dtype=bool)
    return steps % timesteps == reset_step(layer, timesteps, reset_offset)


def window(layer: int, timesteps: int) -> slice:
    """Steps (0-based, from the start of an inference) in which ``layer`` processes that inference."""
    return slice(layer + SYNAPSE_DELAY, timesteps + layer + SYNAPSE_DELAY)


def inference_steps(timesteps: int, n_layers: int) -> int:
    """Steps to run one inference from zero state until every layer has finished its window."""
    return timesteps + n_layers


def readout_step(timesteps: int) -> int:
    """0-based step after which the readout voltage is read (the last step of the inference's window)."""
    return timesteps - 1


def readout_active_steps(timesteps: int, n_layers: int, reset_offset: int = RESET_OFFSET) -> int:
    """Steps the readout integrates (its bias included) before it is read: from its reset to step T - 1."""
    return timesteps - reset_step(n_layers - 1, timesteps, reset_offset)


def check_timesteps(timesteps: int, n_layers: int) -> None:
    """T must exceed the number of layers: each synapse delays by one step, so the readout sees nothing
    before step L."""
    if int(timesteps) <= n_layers:
        raise ValueError(f"timesteps={timesteps} must exceed the number of layers ({n_layers}): each synapse delays by "
                         "one step, so the readout sees nothing before step L")
