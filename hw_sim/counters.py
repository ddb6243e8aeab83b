"""Per-inference activity counters of a deployed network, identical for Lava runs and the emulator.

For every layer and inference: input events (spikes or non-zero graded payloads arriving at the
layer's synapses), synaptic operations (each event times the fan-out of its source neuron, exact at
conv borders and strides), neuron updates (neurons x T) and output spikes.

Window of an inference: Lava pipelines inferences. Layer i (0-based) is reset on step i+1 of an
inference's T-step window and keeps processing that inference until step i of the next window, so
its work for one inference spans T steps, from t = i+1 to t = T+i. Spikes are attributed that way,
both when they come from a Lava run (windows stitched together) and from the emulator (one run of
T + L steps per inference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsqn.files.netfile import Layer
from dsqn.kernels import timing


def fanouts(layers: list[Layer]) -> list[np.ndarray]:
    """Fan-out of every source neuron of each layer's synapses (number of synapses it drives)."""
    from .emulator import conv_fanout

    return [
        np.full(int(np.prod(layer.in_shape)), layer.n_neurons, dtype=np.int64) if layer.kind == "dense" else conv_fanout(layer).astype(np.int64)
        for layer in layers
    ]


def synapse_counts(layers: list[Layer]) -> list[int]:
    """Synapses of each layer: its (source, target) connections, i.e. the sum of its sources' fan-outs. Dense: in x out;
    conv: every kernel tap that meets a real input (padding taps are no synapses), so at most the layer's ANN MACs."""
    return [int(f.sum()) for f in fanouts(layers)]


def ann_macs(layers: list[Layer]) -> list[int]:
    """Multiply-accumulates of an ANN with the same layers (one pass, dense weights)."""
    macs = []
    for layer in layers:
        if layer.kind == "dense":
            macs.append(int(np.prod(layer.in_shape)) * layer.n_neurons)
        else:
            oc, ic, kh, kw = layer.weight.shape
            macs.append(layer.n_neurons * ic * kh * kw)
    return macs


@dataclass
class Totals:
    """Activity summed over inferences, per layer."""

    n_layers: int
    inferences: int = 0
    in_events: list[int] = field(default_factory=list)
    synops: list[int] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    spikes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("in_events", "synops", "updates", "spikes"):
            if not getattr(self, name):
                setattr(self, name, [0] * self.n_layers)

    def per_inference(self) -> dict[str, list[float]]:
        n = max(1, self.inferences)
        return {k: [v / n for v in getattr(self, k)] for k in ("in_events", "synops", "updates", "spikes")}


class Counter:
    """Accumulates per-inference counts from per-layer spike windows."""

    def __init__(self, layers: list[Layer], timesteps: int) -> None:
        self.layers = layers
        self.T = timesteps
        self.fanout = fanouts(layers)
        self.totals = Totals(len(layers))
        # Spikes per layer and timestep of the inference window, summed over inferences.
        self.spikes_per_step = [np.zeros(timesteps, dtype=np.int64) for _ in layers]
        self.raster: list[list[list[int]]] | None = None  # first inference: per layer [neuron, t] pairs

    RASTER_NEURONS = 64

    def add(self, payload: np.ndarray, spikes: list[np.ndarray]) -> None:
        """payload: (C_in,) graded input of the inference; spikes[i]: (N_i, T) bool of layer i's window."""
        tot = self.totals
        tot.inferences += 1
        if self.raster is None:
            self.raster = [np.argwhere(s.reshape(s.shape[0], -1)[: self.RASTER_NEURONS]).tolist() for s in spikes]
        src_counts = (np.asarray(payload).reshape(-1) != 0).astype(np.int64) * self.T
        for i, s in enumerate(spikes):
            tot.in_events[i] += int(src_counts.sum())
            tot.synops[i] += int(src_counts @ self.fanout[i])
            tot.updates[i] += self.layers[i].n_neurons * self.T
            st = s.reshape(s.shape[0], -1).T  # (T, N): contiguous for the emulator's time-major windows
            # count_nonzero without an axis (SIMD) per step: 2x faster than with axis=1 on these shapes
            self.spikes_per_step[i] += np.fromiter((np.count_nonzero(row) for row in st), np.int64, count=st.shape[0])
            # spikes per neuron: byte sums cannot pass T < 256, and add bytes at SIMD width
            per_neuron = np.add.reduce(st.view(np.uint8), axis=0, dtype=np.uint8 if st.shape[0] < 256 else np.int32).astype(np.int64)
            tot.spikes[i] += int(per_neuron.sum())
            src_counts = per_neuron


class WindowStitcher:
    """Turns consecutive Lava T-step windows into per-inference layer windows (see module doc)."""

    def __init__(self, n_layers: int) -> None:
        self.prev: list[np.ndarray] | None = None
        self.prev_payload: np.ndarray | None = None
        self.n_layers = n_layers

    def push(self, payload: np.ndarray, window: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]] | None:
        """Give the window just run; returns (payload, spikes) of the inference it completed, if any."""
        done = None
        if self.prev is not None:
            # layer i's inference starts at step window(i).start of one T-step window and ends just before it in the next
            starts = [timing.window(i, w.shape[1]).start for i, w in enumerate(window)]
            done = (
                self.prev_payload,
                [np.concatenate([self.prev[i][:, s:], window[i][:, :s]], axis=1) for i, s in enumerate(starts)],
            )
        self.prev, self.prev_payload = window, payload
        return done
