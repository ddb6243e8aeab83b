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
the neuron update runs step by step -- in :mod:`dsqn.neuron`, the same integer kernel the training blocks use
(one implementation of the chip's arithmetic), with the reset phases of :mod:`dsqn.timing`. Sums are exact in
float64 (and float32 for binary spikes below 2**24). The batch dimension holds independent inferences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dsqn import neuron as kernel
from dsqn import timing
from dsqn.fixed_point import WEIGHT_SCALE
from dsqn.netfile import Layer, NetFile


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

    def synaptic_input(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """x: (B, S, n_in) events or payloads of layer i's source -> (B, S, n_out) exact integer sums.

        Binary spikes times 8-bit weights sum exactly in float32 while fan-in * 256 < 2**24 (BLAS and
        oneDNN convolutions are then exact); graded payloads use float64 (exact to 2**53)."""
        layer = self.layers[i]
        b, s, _ = x.shape
        fan_in = int(np.prod(self._w[i].shape[1:]))
        binary = x.dtype == torch.bool
        w = self._w32[i] if (binary and fan_in * 256 < (1 << 24)) else self._w[i]
        xf = x.to(w.dtype)
        if layer.kind == "dense":
            out = xf.reshape(b * s, -1) @ w.T
        else:
            out = F.conv2d(xf.reshape(b * s, *layer.in_shape), w, stride=layer.stride, padding=layer.padding)
        return out.reshape(b, s, -1)  # exact integers (weight units)

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
        start_step .. start_step+S-1 (Lava counts steps from 1). With ``const_steps`` the payload's first column
        is sent on the first const_steps steps and nothing after (its synaptic input is computed once)."""
        b, _, given_steps = payload.shape
        n_steps = n_steps or given_steps
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(payload), -1, 1)))  # (B, S, C), time-major
        traces: list[LayerTrace] = []
        overflow, captured = [], []
        for i, layer in enumerate(self.layers):
            # One step of synaptic delay: what arrives on step t was accumulated on step t-1.
            if i == 0 and const_steps:
                z = self.synaptic_input(0, x[:, :1]) / WEIGHT_SCALE  # (B, 1, N), weight units
                t_on, t_off, const = timing.SYNAPSE_DELAY, const_steps + timing.SYNAPSE_DELAY, True
            else:
                a = self.synaptic_input(i, x)  # (B, S, N)
                z = torch.zeros((b, n_steps, a.shape[-1]), dtype=a.dtype)
                m = min(a.shape[1], n_steps - timing.SYNAPSE_DELAY)
                z[:, timing.SYNAPSE_DELAY : timing.SYNAPSE_DELAY + m] = a[:, :m] / WEIGHT_SCALE
                t_on, t_off, const = 0, n_steps, False
            neuron = layer.neuron()
            keep_u, keep_v, bias, vth = neuron.per_neuron(layer.n_neurons)
            zeros = np.zeros(layer.n_neurons)
            params = kernel.KernelParams(keep_u, keep_v, bias, vth, zeros, zeros, 0.0)
            resets = timing.reset_mask(i, n_steps, reset_interval, reset_offset, first_step=start_step - 1)
            spikes, v_pre, u_rec, events = kernel.forward(z.contiguous(), const, t_on, t_off, n_steps, params, resets,
                                                          record_u=record)
            s_bool = spikes.numpy() != 0  # (B, S, N)
            v_post = np.where(s_bool, 0, v_pre.numpy()).astype(np.int64) if (record or capture_at is not None) else None
            if capture_at is not None:
                captured.append(v_post[:, capture_at])  # type: ignore[index]
            traces.append(LayerTrace(spikes=np.moveaxis(s_bool, 1, -1),
                                     u=None if u_rec is None else np.moveaxis(u_rec.numpy().astype(np.int64), 1, -1),
                                     v=np.moveaxis(v_post, 1, -1) if record else None))  # type: ignore[arg-type]
            overflow.append(events)
            x = torch.from_numpy(s_bool)
        return RunResult(traces=traces, overflow=overflow, v_captured=captured)

    def infer(self, payload: np.ndarray, timesteps: int) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
        """Independent inferences, as a netx network with reset_interval=T runs them back to back.

        payload: (B, *input_shape) integers, presented on steps 0..T-1. Returns the readout voltage
        after step T-1 (B, A), each layer's spikes over its pipelined window (B, N_i, T; dsqn.timing.window)
        and the overflow events per layer.
        """
        b = payload.shape[0]
        n_steps = timing.inference_steps(timesteps, len(self.layers))
        x = np.asarray(payload).reshape(b, -1, 1)
        # The per-layer resets matter even from zero state: a layer's bias integrates until its reset.
        offset = int(self.net.meta.get("reset_offset", timing.RESET_OFFSET))
        res = self.run(x, reset_interval=timing.reset_interval(timesteps), reset_offset=offset,
                       capture_at=timing.readout_step(timesteps), const_steps=timesteps, n_steps=n_steps)
        windows = [tr.spikes[..., timing.window(i, timesteps)] for i, tr in enumerate(res.traces)]
        return res.v_captured[-1], windows, res.overflow
