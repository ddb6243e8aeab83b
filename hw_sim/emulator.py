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
the neuron update runs step by step -- in :mod:`dsqn.kernels.neuron`, the same integer kernel the training blocks use
(one implementation of the chip's arithmetic), with the reset phases of :mod:`dsqn.kernels.timing`. Synaptic sums are exact
(``dsqn.layers.exact.exact_product``: float32 below 2**24, graded payloads split into exact halves). The batch dimension
holds independent inferences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dsqn.files.netfile import Layer, NetFile
from dsqn.kernels import fused, timing
from dsqn.kernels import neuron as kernel
from dsqn.kernels.fixed_point import WEIGHT_SCALE
from dsqn.layers.exact import exact_product
from dsqn.layers.spec import conv_fanout as spec_conv_fanout


def conv_fanout(layer: Layer) -> np.ndarray:
    """Number of synapses leaving each input neuron of a conv layer, exact at borders and strides."""
    return spec_conv_fanout(layer.in_shape, layer.weight.shape[0], tuple(layer.weight.shape[2:4]), layer.stride, layer.padding)


# numpy integer dtypes that torch computes with as they are; bool and the other unsigned widths become int64
_TORCH_INTS = (np.uint8, np.int8, np.int16, np.int32, np.int64)


def integer_payload(payload: np.ndarray | torch.Tensor) -> np.ndarray:
    """The payload as an array of the integers the chip receives.

    Accepts numpy arrays and torch tensors (any device; gradients are not followed) of bool (binary spikes, as
    lava-dl users pass them), any integer dtype, or floats whose values are all integers (0./1. spike trains, encoded
    payloads held as float). Floats with a fractional part (or NaN/inf) are refused with a ValueError: the chip
    receives integers, and rounding them here would hide an encoding mistake."""
    if isinstance(payload, torch.Tensor):
        payload = payload.detach().cpu().numpy()
    arr = np.asarray(payload)
    if arr.dtype == np.bool_ or (np.issubdtype(arr.dtype, np.integer) and arr.dtype.type not in _TORCH_INTS):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"payload of dtype {arr.dtype}: expected bool, integers, or floats with integer values")
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) if arr.size else np.zeros(0, dtype=bool)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"payload has non-integer values ({int(bad.sum())} of {arr.size}, first {float(arr[where])!r} at "
                         f"index {where}): the network receives integers (bool, integer dtypes, or integer-valued floats)")
    return arr.astype(np.float32) if arr.dtype == np.float16 else arr


def after_reset(spiked: np.ndarray, v_pre: np.ndarray) -> np.ndarray:
    """The voltage Lava holds after a step: the pre-reset voltage, 0 where the neuron spiked (int64)."""
    return np.where(spiked != 0, 0, v_pre).astype(np.int64)


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
    v_captured: list[np.ndarray] = field(default_factory=list)  # [readout (B, A)]: its v after step capture_at


class Emulator:
    """Runs a netx network (as read by :func:`dsqn.files.netfile_read.read_netfile`) in Loihi fixed point."""

    def __init__(self, net: NetFile) -> None:
        self.net = net
        self.layers = net.layers
        # 8-bit integer weights are exact in float32; products are made exact by dsqn.layers.exact.exact_product
        self._w32 = [torch.from_numpy(layer.weight.astype(np.float32)) for layer in self.layers]
        # the same weights / WEIGHT_SCALE (a power of two: every product and partial sum is the integer one scaled
        # exactly), so that synaptic sums come out in weight units without a division pass over them
        self._w_units = [w / WEIGHT_SCALE for w in self._w32]
        # each layer's integers as the kernels take them, once (no surrogate: the emulator never differentiates)
        self._params = [kernel.KernelParams(*layer.neuron().per_neuron(layer.n_neurons), tau_rho=np.ones(layer.n_neurons),
                                            scale_rho=0.0) for layer in self.layers]
        later = self.layers[1:]
        self._fused_fits = kernel.HAVE_NUMBA and all(layer.kind == "dense" and layer.weight.shape[1] <= fused.MAX_FAN_IN
                                                     for layer in later) and sum(layer.weight.size for layer in later) <= fused.MAX_WEIGHTS
        self._fused: fused.FusedNet | None = None

    def fused_net(self) -> fused.FusedNet | None:
        """The network for dsqn.kernels.fused, where it is the faster path: every synapse after the first dense and
        small (conv networks run layer by layer, their GEMMs beat adding one column per spike)."""
        if not self._fused_fits:
            return None
        if self._fused is None:
            self._fused = fused.FusedNet([(p.keep_u, p.keep_v, p.bias, p.vth) for p in self._params],
                                         [layer.weight for layer in self.layers[1:]])
        return self._fused

    def synaptic_input(self, i: int, x: torch.Tensor, binary: bool, scaled: bool = False) -> torch.Tensor:
        """x: (B, S, n_in) spikes (0/1) or graded payloads of layer i's source -> (B, S, n_out) exact integer
        sums of the integer weights (dsqn.layers.exact.exact_product: float32 where exact, split or float64 where not);
        with ``scaled`` the same sums / WEIGHT_SCALE, bit for bit (what the neuron kernel takes)."""
        layer = self.layers[i]
        b, s = x.shape[0], x.shape[1]
        w = (self._w_units if scaled else self._w32)[i]
        fan_in = int(np.prod(w.shape[1:]))
        rows = x.reshape(b * s, *((-1,) if layer.kind == "dense" else layer.in_shape))
        if layer.kind == "dense":
            out = exact_product(F.linear, rows, w, fan_in, binary)
        else:

            def conv(x_: torch.Tensor, w_: torch.Tensor) -> torch.Tensor:
                return F.conv2d(x_, w_, stride=layer.stride, padding=layer.padding)

            out = exact_product(conv, rows, w, fan_in, binary)
        return out.reshape(b, s, -1)

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
        start_step .. start_step+S-1 (Lava counts steps from 1): bool, integers or integer-valued floats, numpy or
        torch (:func:`integer_payload`). With ``const_steps`` the payload's first column is sent on the first
        const_steps steps and nothing after (its synaptic input is computed once)."""
        payload = integer_payload(payload)
        if payload.ndim != 3:
            raise ValueError(f"run() takes a payload of shape (batch, inputs, steps), got shape {payload.shape}")
        b, _, given_steps = payload.shape
        n_steps = n_steps or given_steps
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(payload, -1, 1)))  # (B, S, C), time-major
        traces: list[LayerTrace] = []
        overflow, captured = [], []
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            # One step of synaptic delay: what arrives on step t was accumulated on step t-1.
            if i == 0 and const_steps:
                z = self.synaptic_input(0, x[:, :1], binary=False, scaled=True)  # (B, 1, N), weight units
                t_on, t_off, const = timing.SYNAPSE_DELAY, const_steps + timing.SYNAPSE_DELAY, True
            else:
                m = min(x.shape[1], n_steps - timing.SYNAPSE_DELAY)
                a = self.synaptic_input(i, x[:, :m], binary=i > 0, scaled=True)  # (B, m, N), weight units
                z = torch.zeros((b, n_steps, a.shape[-1]), dtype=a.dtype)
                z[:, timing.SYNAPSE_DELAY : timing.SYNAPSE_DELAY + m] = a
                t_on, t_off, const = 0, n_steps, False
            resets = timing.reset_mask(i, n_steps, reset_interval, reset_offset, first_step=start_step - 1)
            spikes, v_pre, u_rec, events = kernel.forward(z.contiguous(), const, t_on, t_off, n_steps, self._params[i], resets,
                                                          record_u=record)
            s_bool = spikes.numpy() != 0  # (B, S, N)
            if capture_at is not None and i == last:
                captured.append(after_reset(s_bool[:, capture_at], v_pre.numpy()[:, capture_at]))
            v_post = after_reset(s_bool, v_pre.numpy()) if record else None
            traces.append(LayerTrace(spikes=np.moveaxis(s_bool, 1, -1),
                                     u=None if u_rec is None else np.moveaxis(u_rec.numpy().astype(np.int64), 1, -1),
                                     v=None if v_post is None else np.moveaxis(v_post, 1, -1)))
            overflow.append(events)
            x = spikes  # float 0/1, the next layer's input
        return RunResult(traces=traces, overflow=overflow, v_captured=captured)

    def infer(self, payload: np.ndarray, timesteps: int, fused_path: bool = True,
              windowed: bool = True) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
        """Independent inferences, as a netx network with reset_interval=T runs them back to back.

        payload: (B, *input_shape) integers (bool, any integer dtype or integer-valued floats; numpy or torch),
        presented on steps 0..T-1. Returns the readout voltage after step T-1 (B, A), each layer's spikes over its
        pipelined window (B, N_i, T; dsqn.kernels.timing.window) and the overflow events per layer. A single observation's
        payload of exactly ``input_shape`` (no batch dimension) gives the same without the batch dimension:
        voltage (A,), windows (N_i, T); the overflow counts are per layer either way. Small dense networks run in one compiled call (:mod:`dsqn.kernels.fused`),
        others layer by layer, each layer over its window only (``windowed``; see ``_infer_windows``) or over
        all T + L steps (``run``); all compute the same integers (tested).
        """
        payload = integer_payload(payload)
        if self._unbatched(payload):
            v, windows, overflow = self.infer(payload[None], timesteps, fused_path, windowed)
            return v[0], [w[0] for w in windows], overflow
        b = payload.shape[0]
        n_steps = timing.inference_steps(timesteps, len(self.layers))
        # The per-layer resets matter even from zero state: a layer's bias integrates until its reset.
        offset = int(self.net.meta.get("reset_offset", timing.RESET_OFFSET))
        interval = timing.reset_interval(timesteps)
        net = self.fused_net() if fused_path else None
        if net is None and windowed and offset == timing.RESET_OFFSET and len(self.layers) < timesteps:
            return self._infer_windows(payload, timesteps)
        if net is None:
            x = np.asarray(payload).reshape(b, -1, 1)
            res = self.run(x, reset_interval=interval, reset_offset=offset, capture_at=timing.readout_step(timesteps),
                           const_steps=timesteps, n_steps=n_steps)
            windows = [tr.spikes[..., timing.window(i, timesteps)] for i, tr in enumerate(res.traces)]
            return res.v_captured[-1], windows, res.overflow
        # One compiled call for all layers and steps (dsqn.kernels.fused); the first layer's input once, exactly.
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(payload).reshape(b, 1, -1)))
        z0 = self.synaptic_input(0, x, binary=False).reshape(b, -1).double().numpy() / WEIGHT_SCALE
        resets = np.stack([timing.reset_mask(i, n_steps, interval, offset) for i in range(len(self.layers))])
        res = net.run(z0, n_steps, timing.SYNAPSE_DELAY, timesteps + timing.SYNAPSE_DELAY, resets)
        at = timing.readout_step(timesteps)
        v = after_reset(res.spikes[-1][:, at], res.v_last[:, at])
        windows = [np.moveaxis(s[:, timing.window(i, timesteps)], 1, -1) != 0 for i, s in enumerate(res.spikes)]
        return v, windows, [int(e) for e in res.events.sum(0)]

    def _unbatched(self, payload: np.ndarray) -> bool:
        """Whether ``payload`` is one observation's (exactly the input shape) rather than a batch of them (a leading
        batch dimension over the input shape, or over its flattened size); any other shape is refused."""
        shape = tuple(self.net.input_shape or self.layers[0].in_shape)
        if payload.shape == shape:  # also where a batch of flat payloads would match (input shape (1, n)): as documented
            return True
        if payload.ndim >= 2 and (payload.shape[1:] == shape or int(np.prod(payload.shape[1:])) == int(np.prod(shape))):
            return False
        raise ValueError(f"payload of shape {payload.shape}: expected {shape} (one observation) or (batch, *{shape})")

    def _infer_windows(self, payload: np.ndarray, timesteps: int) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
        """``infer`` computing each layer over its own window only: T steps instead of T + L.

        With netx's reset phase (``dsqn.kernels.timing.RESET_OFFSET``) layer i is zeroed on step i + 1, the first of its
        window, so nothing before the window reaches its state: whatever layer i - 1 sent earlier arrived before
        that reset. Inside the window its input is layer i - 1's window, shifted by the synapse's one step, i.e.
        exactly the spike train that layer computed (the first layer: the observation on every step). So each
        layer runs T steps from zero state on its predecessor's window; the readout is read on step T - 1, i.e.
        T - 1 - (L - 1) - 1 steps into its window. Same integers as the full run (tested)."""
        b, T, last = payload.shape[0], timesteps, len(self.layers) - 1
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(payload).reshape(b, 1, -1)))
        no_resets = np.zeros(T, dtype=bool)
        windows, overflow = [], []
        v_out = np.zeros(0)
        at = timing.readout_step(T) - timing.window(last, T).start
        for i in range(len(self.layers)):
            const = i == 0
            z = self.synaptic_input(i, x, binary=not const, scaled=True)  # (B, 1 or T, N), weight units
            spikes, v_pre, _, events = kernel.forward(z.contiguous(), const, 0, T, T, self._params[i], no_resets)
            if i == last:
                v_out = after_reset(spikes[:, at].numpy(), v_pre[:, at].numpy())
            windows.append(np.moveaxis(spikes.numpy() != 0, 1, -1))
            overflow.append(events)
            x = spikes
        return v_out, windows, overflow
