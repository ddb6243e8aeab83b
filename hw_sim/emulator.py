"""A bit-exact, vectorized emulator of Lava's ``fixed_pt`` CUBA-LIF networks read from NetX files.

It computes what ``Loihi2SimCfg(select_tag='fixed_pt')`` computes for a netx network
(``PyDenseModelBitAcc`` / ``PyConvModelBitAcc`` synapses, ``PyLifResetModelBitAcc`` neurons):

* a synapse sends on step t what it accumulated from its input on step t-1 (one step of delay);
* ``u <- sign(u)*(|u*(4096-iDecay)| >> 12) + (a_in << 6)``, wrapped to 24 bits;
* ``v <- sign(v)*(|v*(4096-vDecay)| >> 12) + u + (bias << 6)``, saturated to +-(2**23-1);
* spike when ``v > vThMant << 6``, then v = 0; layer i resets u and v before step
  t with ``t % interval == (reset_offset + 1 + i) % interval`` (netx's per-layer phase).

Because the networks are feed-forward and resets touch only neuron state, a layer's synaptic input
for all steps is one matrix product of its weights with the previous layer's whole spike train; only
the neuron update runs step by step. Sums are exact in float64 (and float32 for binary spikes below
2**24). The batch dimension holds independent inferences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsqn.fixed_point import ACT_SHIFT, BIAS_EXP, DECAY_SCALE, DECAY_SHIFT, UV_MAX, VTH_SHIFT
from dsqn.netfile import Layer, NetFile


def _decay(x: np.ndarray, keep: int) -> np.ndarray:
    """sign(x) * (|x * keep| >> 12): Lava's decay, rounding toward zero."""
    prod = x * keep
    return np.sign(prod) * (np.abs(prod) >> DECAY_SHIFT)


def _im2col(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """x: (N, C, H, W) -> (N, OH, OW, C*kh*kw) patches (a view where possible)."""
    if padding != (0, 0):
        x = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    n, c, h, w = x.shape
    oh = (h - kh) // stride[0] + 1
    ow = (w - kw) // stride[1] + 1
    s = x.strides
    patches = np.lib.stride_tricks.as_strided(
        x, shape=(n, oh, ow, c, kh, kw), strides=(s[0], s[2] * stride[0], s[3] * stride[1], s[1], s[2], s[3])
    )
    return patches.reshape(n, oh, ow, c * kh * kw)


def conv_fanout(layer: Layer) -> np.ndarray:
    """Number of synapses leaving each input neuron of a conv layer, exact at borders and strides."""
    c, h, w = layer.in_shape
    out_c, _, kh, kw = layer.weight.shape
    count = np.zeros((h + 2 * layer.padding[0], w + 2 * layer.padding[1]))
    oh, ow = layer.out_shape[1], layer.out_shape[2]
    for i in range(kh):
        for j in range(kw):
            count[i : i + oh * layer.stride[0] : layer.stride[0], j : j + ow * layer.stride[1] : layer.stride[1]] += 1
    count = count[layer.padding[0] : layer.padding[0] + h, layer.padding[1] : layer.padding[1] + w]
    return np.broadcast_to(count * out_c, (c, h, w)).reshape(-1)


@dataclass
class LayerTrace:
    """What one layer did during a run: everything the counters and the bit-exact checks need."""

    spikes: np.ndarray  # (B, N, S) bool
    u: np.ndarray | None = None  # (B, N, S) int64, when recorded
    v: np.ndarray | None = None


@dataclass
class RunResult:
    traces: list[LayerTrace]
    v_last: list[np.ndarray]  # per layer (B, N): state after the last step
    u_last: list[np.ndarray]
    overflow: list[int] = field(default_factory=list)  # per layer: u wrap-arounds + v saturations
    v_captured: list[np.ndarray] = field(default_factory=list)  # per layer (B, N): v after step capture_at


class Emulator:
    """Runs a netx network (as read by :func:`dsqn.netfile.read_netfile`) in Loihi fixed point."""

    def __init__(self, net: NetFile, input_message_bits: int = 0) -> None:
        self.net = net
        self.layers = net.layers
        self.input_message_bits = input_message_bits
        self._w = []
        for layer in self.layers:
            if layer.kind == "dense":
                self._w.append(layer.weight.astype(np.float64))
            else:
                out_c = layer.weight.shape[0]
                self._w.append(layer.weight.reshape(out_c, -1).astype(np.float64))
        self.fanout = [
            np.full(int(np.prod(layer.in_shape)), layer.n_neurons) if layer.kind == "dense" else conv_fanout(layer)
            for layer in self.layers
        ]

    @staticmethod
    def _bias(layer: Layer) -> np.ndarray | int:
        """Per-neuron bias in state units (bias_mant << 6); netx accepts one value, per channel or per neuron."""
        if layer.bias is None:
            return 0
        b = layer.bias.astype(np.int64)
        if b.size == layer.n_neurons:
            full = b
        elif b.size == layer.out_shape[0]:
            full = np.repeat(b, layer.n_neurons // layer.out_shape[0])
        else:
            full = np.full(layer.n_neurons, b.reshape(-1)[0])
        return full << BIAS_EXP

    def synaptic_input(self, i: int, x: np.ndarray) -> np.ndarray:
        """x: (B, n_in, S) events or payloads of layer i's source -> (B, n_out, S) exact integer sums."""
        layer = self.layers[i]
        b, _, s = x.shape
        xf = x.astype(np.float64)
        if layer.kind == "dense":
            out = np.einsum("oi,bis->bos", self._w[i], xf, optimize=True)
        else:
            c, h, w = layer.in_shape
            img = xf.reshape(b, c, h, w, s).transpose(0, 4, 1, 2, 3).reshape(b * s, c, h, w)
            kh, kw = layer.weight.shape[2:]
            cols = _im2col(np.ascontiguousarray(img), kh, kw, layer.stride, layer.padding)
            res = cols @ self._w[i].T  # (B*S, OH, OW, OC)
            oc, oh, ow = layer.out_shape
            out = res.reshape(b, s, oh, ow, oc).transpose(0, 4, 2, 3, 1).reshape(b, oc * oh * ow, s)
        return np.rint(out).astype(np.int64)

    def run(
        self,
        payload: np.ndarray,
        reset_interval: int | None = None,
        reset_offset: int = 0,
        start_step: int = 1,
        record: bool = False,
        capture_at: int | None = None,
    ) -> RunResult:
        """Run from zero state. payload: (B, C_in, S) values sent into the network on Lava steps
        start_step .. start_step+S-1 (Lava counts steps from 1)."""
        b, _, n_steps = payload.shape
        x = payload
        traces: list[LayerTrace] = []
        v_last, u_last, overflow, captured = [], [], [], []
        steps = np.arange(start_step, start_step + n_steps)
        for i, layer in enumerate(self.layers):
            a = self.synaptic_input(i, x)
            # One step of synaptic delay: what arrives on step t was accumulated on step t-1.
            a_in = np.zeros_like(a)
            a_in[..., 1:] = a[..., :-1]
            a_in <<= ACT_SHIFT
            keep_u = DECAY_SCALE - layer.i_decay
            keep_v = DECAY_SCALE - layer.v_decay
            bias = self._bias(layer)
            vth = np.int64(layer.vth_mant) << VTH_SHIFT
            n = layer.n_neurons
            u = np.zeros((b, n), dtype=np.int64)
            v = np.zeros((b, n), dtype=np.int64)
            spikes = np.zeros((b, n, n_steps), dtype=bool)
            us = np.zeros((b, n, n_steps), dtype=np.int64) if record else None
            vs = np.zeros((b, n, n_steps), dtype=np.int64) if record else None
            events = 0
            reset_phase = None if reset_interval is None else (reset_offset + 1 + i) % reset_interval
            for t in range(n_steps):
                if reset_phase is not None and steps[t] % reset_interval == reset_phase:
                    u[:] = 0
                    v[:] = 0
                u = _decay(u, keep_u) + a_in[..., t]
                over = u > UV_MAX
                under = u <= -UV_MAX
                if over.any() or under.any():
                    events += int(over.sum() + under.sum())
                    u = np.where(over, u - 2 * UV_MAX, np.where(under, u + 2 * UV_MAX, u))
                v = _decay(v, keep_v) + u + bias
                sat = (v > UV_MAX - 1) | (v < -UV_MAX + 1)
                if sat.any():
                    events += int(sat.sum())
                    v = np.clip(v, -UV_MAX + 1, UV_MAX - 1)
                s = v > vth
                v = np.where(s, 0, v)
                spikes[..., t] = s
                if t == capture_at:
                    captured.append(v.copy())
                if record:
                    us[..., t] = u
                    vs[..., t] = v
            traces.append(LayerTrace(spikes=spikes, u=us, v=vs))
            v_last.append(v)
            u_last.append(u)
            overflow.append(events)
            x = spikes
        return RunResult(traces=traces, v_last=v_last, u_last=u_last, overflow=overflow, v_captured=captured)

    def infer(self, payload: np.ndarray, timesteps: int) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
        """Independent inferences, as a netx network with reset_interval=T runs them back to back.

        payload: (B, *input_shape) integers, presented on steps 0..T-1. Returns the readout voltage
        after step T-1 (B, A), each layer's spikes over its pipelined window t = i+1 .. T+i
        (B, N_i, T; see hw_sim.counters) and the overflow events per layer.
        """
        b = payload.shape[0]
        n_steps = timesteps + len(self.layers)
        x = np.zeros((b, int(np.prod(payload.shape[1:])), n_steps), dtype=np.int64)
        x[..., :timesteps] = payload.reshape(b, -1, 1)
        # The per-layer resets matter even from zero state: a layer's bias integrates until its reset.
        offset = int(self.net.meta.get("reset_offset", 1))
        res = self.run(x, reset_interval=timesteps, reset_offset=offset, capture_at=timesteps - 1)
        windows = [tr.spikes[..., i + 1 : timesteps + i + 1] for i, tr in enumerate(res.traces)]
        return res.v_captured[-1], windows, res.overflow
