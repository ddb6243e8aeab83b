"""Whole-network inference in one compiled call: event-driven synapses and the shared neuron step.

Acting (batch 1 every environment step) and the emulator run many small inferences, where calling a kernel
per layer and a matrix product per synapse costs more than the arithmetic. :class:`FusedNet` runs all layers
of a feed-forward network over all steps in one numba call:

* the first layer's synaptic input ``z0`` is computed by the caller once per inference (the observation is
  constant over T; ``dsqn.layers.exact.exact_product`` keeps graded payloads exact) and enters on steps
  ``t_on <= t < t_off``;
* every later synapse is dense and event-driven, as on the chip: a spike of neuron i on step t adds column i
  of the integer weight matrix (stored transposed, so the column is contiguous and the addition vectorises)
  to the next layer's input for step t + 1 (``dsqn.kernels.timing.SYNAPSE_DELAY``); the sums are integers below
  fan_in * 256 < 2**24, exact in float32;
* the neuron update is :func:`dsqn.kernels.neuron.lif_step`, the one CPU copy of the chip's arithmetic, with each
  layer's resets from ``dsqn.kernels.timing``.

The layer-by-layer path (``dsqn.kernels.neuron.forward`` with GEMMs) computes the same integers; tests hold them equal
and equal to Lava. That path stays for training (it needs the voltages for the surrogate gradient), for conv networks
and large layers, where a GEMM over all steps beats adding one column per spike (measured on the Nature-DQN
network at its firing rates: ``benchmarks/emulator_speed.py``), and for recording u and v.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsqn.kernels import neuron as kernel
from dsqn.kernels.fixed_point import ACT_SHIFT, WEIGHT_INT_MIN

ACT_SCALE = float(1 << ACT_SHIFT)
MAX_FAN_IN = (1 << 24) // -WEIGHT_INT_MIN - 1
# Above this many synaptic weights (after the first layer) a GEMM per layer over all steps is faster than one
# column per spike at the firing rates these networks have; classic-control and TD3-actor sizes are far below.
MAX_WEIGHTS = 1 << 20


if kernel.HAVE_NUMBA:
    from numba import njit, prange

    lif_step = kernel.lif_step

    def _net_impl(z0, t_on, t_off, n_steps, neu_off, keep_u, keep_v, bias, vth, resets, col, dst, n_dst, w_t,  # type: ignore[no-untyped-def]
                  spikes, v_last, events):
        # With one step of delay per synapse no layer waits for another within a step: each step updates every
        # neuron of every layer in one vectorised loop, then sends the spikes on.
        n_batch = z0.shape[0]
        n_layers = neu_off.shape[0] - 1
        n_tot = neu_off[n_layers]
        n_send = neu_off[n_layers - 1]  # the last layer sends nowhere
        n_last = n_tot - n_send
        n0 = z0.shape[1]
        for b in prange(n_batch):
            u = np.zeros(n_tot)
            v = np.zeros(n_tot)
            ev = np.zeros(n_tot)
            vs_row = np.zeros(n_tot)
            fired = np.zeros(n_tot, dtype=np.uint8)
            # synaptic input in weight integers arriving on even / odd steps (float32: exact, see FusedNet)
            buf = np.zeros((2, n_tot), dtype=np.float32)
            a0 = np.zeros(n_tot)  # the first layer's input in state units (exact in float64), 0 elsewhere
            for j in range(n0):
                a0[j] = np.trunc(z0[b, j] * 4096.0)
            for t in range(n_steps):
                inc = buf[t % 2]
                nxt = buf[(t + 1) % 2]
                gate = 1.0 if (t >= t_on and t < t_off) else 0.0
                for layer in range(n_layers):
                    if resets[layer, t]:
                        for j in range(neu_off[layer], neu_off[layer + 1]):
                            u[j] = 0.0
                            v[j] = 0.0
                for j in range(n_tot):  # branch-free, so it vectorises
                    a = a0[j] * gate + np.float64(inc[j]) * ACT_SCALE  # weight integers -> state units (Lava's act shift)
                    uu, vs, fire, e = lif_step(u[j], v[j], a, keep_u[j], keep_v[j], bias[j], vth[j])
                    ev[j] += e
                    fired[j] = fire
                    vs_row[j] = vs
                    v[j] = 0.0 if fire else vs
                    u[j] = uu
                    inc[j] = 0.0  # consumed; the buffer receives step t + 2's input
                for j in range(n_tot):
                    spikes[b, t, j] = fired[j]
                for j in range(n_last):
                    v_last[b, t, j] = vs_row[n_send + j]
                for j in range(n_send):  # event-driven synapses: each spike adds its weight column
                    if fired[j]:
                        d, c = dst[j], col[j]
                        for k in range(n_dst[j]):
                            nxt[d + k] += w_t[c + k]
            for layer in range(n_layers):
                s = 0.0
                for j in range(neu_off[layer], neu_off[layer + 1]):
                    s += ev[j]
                events[b, layer] = np.int64(s)

    _net_par = njit(cache=True, parallel=True, nogil=True)(kernel.named_copy(_net_impl, "_par"))  # own cache entries
    _net_ser = njit(cache=True, nogil=True)(kernel.named_copy(_net_impl, "_ser"))


@dataclass
class FusedResult:
    spikes: list[np.ndarray]  # per layer (B, S, N) uint8: the spike of step t (before the synapse's delay)
    v_last: np.ndarray  # (B, S, N_last) float64: the last layer's voltage before its spike reset
    events: np.ndarray  # (B, L) int64: u wrap-arounds and v saturations per layer


class FusedNet:
    """A feed-forward network of dense synapses for :meth:`run`: per layer its neurons' integer parameters
    (keep_u, keep_v, bias and vth in state units, ``dsqn.kernels.neuron.KernelParams`` order), and the integer weights
    (out, in) of the synapses between consecutive layers."""

    def __init__(self, neurons: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], weights: list[np.ndarray]) -> None:
        if not kernel.HAVE_NUMBA:  # pragma: no cover
            raise RuntimeError("dsqn.kernels.fused needs numba")
        if len(weights) != len(neurons) - 1:
            raise ValueError(f"{len(neurons)} layers need {len(neurons) - 1} synapses, got {len(weights)}")
        sizes = [len(n[0]) for n in neurons]
        for i, w in enumerate(weights):
            if w.shape != (sizes[i + 1], sizes[i]):
                raise ValueError(f"synapse {i + 1} has weights {w.shape}, the layers have {sizes[i]} -> {sizes[i + 1]} neurons")
        self.sizes = sizes
        self.neu_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.params = tuple(np.ascontiguousarray(np.concatenate([n[k] for n in neurons]), dtype=np.float64) for k in range(4))
        w_off = np.concatenate([[0], np.cumsum([w.size for w in weights])]).astype(np.int64)
        # per sending neuron: where its weight column starts, where its targets start, how many there are
        self.col = np.concatenate([w_off[i] + np.arange(n) * sizes[i + 1] for i, n in enumerate(sizes[:-1])]).astype(np.uint64)
        self.dst = np.concatenate([np.full(n, self.neu_off[i + 1]) for i, n in enumerate(sizes[:-1])]).astype(np.uint64)
        self.n_dst = np.concatenate([np.full(n, sizes[i + 1]) for i, n in enumerate(sizes[:-1])]).astype(np.uint64)
        self.n_weights = int(w_off[-1])
        # Transposed (a source's column contiguous), weight integers in float32: every partial sum is an integer
        # below fan_in * 256 < 2**24, so exact, and twice as many adds per vector instruction as float64.
        for i, w in enumerate(weights):
            if w.shape[1] * -WEIGHT_INT_MIN >= 1 << 24:
                raise ValueError(f"synapse {i + 1} has {w.shape[1]} inputs; dsqn.kernels.fused sums exactly up to {MAX_FAN_IN}")
        self.w_t = np.concatenate([np.asarray(w, dtype=np.float32).T.ravel() for w in weights] or [np.zeros(0, np.float32)])

    def run(self, z0: np.ndarray, n_steps: int, t_on: int, t_off: int, resets: np.ndarray) -> FusedResult:
        """z0: (B, N_0) the first layer's synaptic input in weight units, present on steps t_on <= t < t_off;
        resets: (L, n_steps) bool, True where a layer is zeroed before its update."""
        z0 = np.ascontiguousarray(z0, dtype=np.float64)
        b, n_layers = z0.shape[0], len(self.sizes)
        if z0.shape[1] != self.sizes[0]:
            raise ValueError(f"z0 has {z0.shape[1]} inputs, the first layer {self.sizes[0]} neurons")
        spikes = np.empty((b, n_steps, int(self.neu_off[-1])), dtype=np.uint8)
        v_last = np.empty((b, n_steps, self.sizes[-1]))
        events = np.zeros((b, n_layers), dtype=np.int64)
        fn = _net_par if kernel.parallel_ok(b, b * n_steps * self.n_weights // 8) else _net_ser
        fn(z0, t_on, t_off, n_steps, self.neu_off, *self.params, np.ascontiguousarray(resets, dtype=np.bool_),
           self.col, self.dst, self.n_dst, self.w_t, spikes, v_last, events)
        per_layer = [spikes[:, :, self.neu_off[i] : self.neu_off[i + 1]] for i in range(n_layers)]
        return FusedResult(per_layer, v_last, events)

