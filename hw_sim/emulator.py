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
import torch
import torch.nn.functional as F

from dsqn.fixed_point import ACT_SHIFT, BIAS_EXP, DECAY_SCALE, UV_MAX, VTH_SHIFT
from dsqn.netfile import Layer, NetFile


@dataclass
class _LoopOut:
    spikes: np.ndarray
    us: np.ndarray | None
    vs: np.ndarray | None
    u: np.ndarray
    v: np.ndarray
    v_captured: np.ndarray | None
    events: int


def _neuron_loop(a_in: np.ndarray, keep_u: float, keep_v: float, bias: np.ndarray, vth: float, resets: np.ndarray,
                 record: bool, capture_at: int | None) -> _LoopOut:
    """CUBA-LIF fixed-point dynamics over (S, B, n) synaptic input (already << 6 and delayed).

    State is held in float64 with integer values: every product below is exact (< 2**53), and trunc()
    is Lava's sign(x) * (|x| >> 12)."""
    n_steps, b, n = a_in.shape
    u = np.zeros((b, n))
    v = np.zeros((b, n))
    spikes = np.zeros((n_steps, b, n), dtype=bool)
    us = np.zeros((n_steps, b, n), dtype=np.int64) if record else None
    vs = np.zeros((n_steps, b, n), dtype=np.int64) if record else None
    events, v_captured = 0, None
    # Wrap/saturation can only happen in neurons whose geometric bound allows it: check only those.
    a_max = np.abs(a_in).max(axis=0).max(axis=0) if n_steps else np.zeros(n)  # per neuron
    u_bound = a_max / (1 - keep_u) if keep_u < 1 else a_max * n_steps
    v_bound = (u_bound + np.abs(bias)) * (1 / (1 - keep_v) if keep_v < 1 else n_steps)
    risk_u = np.flatnonzero(u_bound >= UV_MAX)
    risk_v = np.flatnonzero(v_bound > UV_MAX - 1)
    check_u, check_v = risk_u.size > 0, risk_v.size > 0
    has_bias = bool(np.any(bias))
    for t in range(n_steps):
        if resets[t]:
            u[:] = 0
            v[:] = 0
        if keep_u == 0.0:
            np.copyto(u, a_in[t])
        else:
            if keep_u != 1.0:
                u *= keep_u
                np.trunc(u, out=u)
            u += a_in[t]
        if check_u:  # 24-bit wrap as in Lava
            ur = u[:, risk_u]
            over, under = ur > UV_MAX, ur <= -UV_MAX
            if over.any() or under.any():
                events += int(over.sum() + under.sum())
                u[:, risk_u] = ur - 2 * UV_MAX * over + 2 * UV_MAX * under
        if keep_v != 1.0:
            v *= keep_v
            np.trunc(v, out=v)
        v += u
        if has_bias:
            v += bias
        if check_v:  # saturation to +-(2**23 - 1)
            vr = v[:, risk_v]
            sat = np.abs(vr) > UV_MAX - 1
            if sat.any():
                events += int(sat.sum())
                v[:, risk_v] = np.clip(vr, -UV_MAX + 1, UV_MAX - 1)
        s = spikes[t]
        np.greater(v, vth, out=s)
        np.copyto(v, 0.0, where=s)
        if t == capture_at:
            v_captured = v.astype(np.int64)
        if record:
            us[t] = u
            vs[t] = v
    return _LoopOut(spikes, us, vs, u, v, v_captured, events)


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
    overflow: list[int] = field(default_factory=list)  # per layer: u wrap-arounds + v saturations
    v_captured: list[np.ndarray] = field(default_factory=list)  # per layer (B, N): v after step capture_at


class Emulator:
    """Runs a netx network (as read by :func:`dsqn.netfile.read_netfile`) in Loihi fixed point."""

    def __init__(self, net: NetFile) -> None:
        self.net = net
        self.layers = net.layers
        self._w = [torch.from_numpy(layer.weight.astype(np.float64)) for layer in self.layers]
        self._w32 = [w.to(torch.float32) for w in self._w]

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

    def synaptic_input(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """x: (S, B, n_in) events or payloads of layer i's source -> (S, B, n_out) exact integer sums.

        Binary spikes times 8-bit weights sum exactly in float32 while fan-in * 256 < 2**24 (BLAS and
        oneDNN convolutions are then exact); graded payloads use float64 (exact to 2**53)."""
        layer = self.layers[i]
        s, b, _ = x.shape
        fan_in = int(np.prod(self._w[i].shape[1:]))
        binary = x.dtype == torch.bool
        w = self._w32[i] if (binary and fan_in * 256 < (1 << 24)) else self._w[i]
        xf = x.to(w.dtype)
        if layer.kind == "dense":
            out = xf.reshape(s * b, -1) @ w.T
        else:
            out = F.conv2d(xf.reshape(s * b, *layer.in_shape), w, stride=layer.stride, padding=layer.padding)
        return out.reshape(s, b, -1)  # float32 values are exact integers here; state math is float64

    def run(
        self,
        payload: np.ndarray,
        reset_interval: int | None = None,
        reset_offset: int = 0,
        start_step: int = 1,
        record: bool = False,
        capture_at: int | None = None,
        const_steps: int = 0,
        n_steps: int | None = None,
    ) -> RunResult:
        """Run from zero state. payload: (B, C_in, S) values sent into the network on Lava steps
        start_step .. start_step+S-1 (Lava counts steps from 1)."""
        b, _, given_steps = payload.shape
        n_steps = n_steps or given_steps
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(payload), -1, 0)))  # (S, B, C)
        traces: list[LayerTrace] = []
        overflow, captured = [], []
        steps = np.arange(start_step, start_step + n_steps)
        for i, layer in enumerate(self.layers):
            if i == 0 and const_steps:
                # Input constant over the first const_steps steps and zero after: one product, broadcast.
                a0 = self.synaptic_input(0, x[:1])
                a = torch.zeros((n_steps, b, a0.shape[-1]), dtype=a0.dtype)
                a[:const_steps] = a0
            else:
                a = self.synaptic_input(i, x)
            # One step of synaptic delay: what arrives on step t was accumulated on step t-1.
            a_np = a.numpy()
            a_in = np.zeros_like(a_np)
            np.multiply(a_np[:-1], 1 << ACT_SHIFT, out=a_in[1:])
            keep_u = (DECAY_SCALE - layer.i_decay) / DECAY_SCALE
            keep_v = (DECAY_SCALE - layer.v_decay) / DECAY_SCALE
            bias = np.broadcast_to(np.asarray(self._bias(layer), dtype=np.float64), (layer.n_neurons,))
            vth = float(layer.vth_mant << VTH_SHIFT)
            resets = np.zeros(n_steps, dtype=bool)
            if reset_interval is not None:
                resets = steps % reset_interval == (reset_offset + 1 + i) % reset_interval
            out = _neuron_loop(a_in, keep_u, keep_v, bias, vth, resets, record, capture_at)
            spikes, us, vs, events = out.spikes, out.us, out.vs, out.events
            if capture_at is not None:
                captured.append(out.v_captured)
            traces.append(LayerTrace(spikes=np.moveaxis(spikes, 0, -1), u=None if us is None else np.moveaxis(us, 0, -1),
                                     v=None if vs is None else np.moveaxis(vs, 0, -1)))
            overflow.append(events)
            x = torch.from_numpy(spikes)
        return RunResult(traces=traces, overflow=overflow, v_captured=captured)

    def infer(self, payload: np.ndarray, timesteps: int) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
        """Independent inferences, as a netx network with reset_interval=T runs them back to back.

        payload: (B, *input_shape) integers, presented on steps 0..T-1. Returns the readout voltage
        after step T-1 (B, A), each layer's spikes over its pipelined window t = i+1 .. T+i
        (B, N_i, T; see hw_sim.counters) and the overflow events per layer.
        """
        b = payload.shape[0]
        n_steps = timesteps + len(self.layers)
        x = np.asarray(payload).reshape(b, -1, 1)
        # The per-layer resets matter even from zero state: a layer's bias integrates until its reset.
        offset = int(self.net.meta.get("reset_offset", 1))
        res = self.run(x, reset_interval=timesteps, reset_offset=offset, capture_at=timesteps - 1, const_steps=timesteps, n_steps=n_steps)
        windows = [tr.spikes[..., i + 1 : timesteps + i + 1] for i, tr in enumerate(res.traces)]
        return res.v_captured[-1], windows, res.overflow
