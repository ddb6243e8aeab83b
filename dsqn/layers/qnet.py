"""The deep spiking Q-network: CUBA-LIF dense/conv blocks (``dsqn.layers.cuba``) and a non-spiking readout.

What training computes is what Loihi computes, bit for bit (tests compare it with the emulator and Lava):

* weights pass through slayer's ``quantize_8bit`` in every forward pass (even integers / 64);
* every synapse delays by one step (``dsqn.kernels.timing``): each block's output is shifted by one step and the
  observation reaches the first layer from step 1 on;
* the input is the integer graded-spike payload of :class:`dsqn.encoding.Encoder`, constant over the T steps, so
  the first layer's synaptic input is computed once per inference; its threshold is scaled by ``encoder.unit``
  instead of scaling the payload, so nothing is rounded;
* the readout is a non-spiking neuron (current decay 1, voltage decay 0) whose voltage after step T-1 is
  decoded by :class:`dsqn.layers.readout.Readout`: ``Q = q_scale * (W @ mean_t spikes + b)``;
* every layer is reset where netx resets it (``dsqn.kernels.timing.reset_mask``), so the readout's bias enters from
  its reset at step L on, as on the chip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dsqn.kernels import fused, timing
from dsqn.kernels import neuron as kernel
from dsqn.kernels.fixed_point import (
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    WEIGHT_SCALE,
)
from dsqn.layers import cuba
from dsqn.layers.spec import NetSpec, conv_fanout, conv_out


@dataclass
class Activity:
    """The activity of each inference of a batch as :mod:`dsqn.hw_sim.counters` counts it on the emulator and
    Lava, per netx layer (the hidden layers, then the readout): layer i's input events (the first layer's: every
    non-zero payload value on each of the T steps; a later layer's: the previous hidden layer's spikes in its
    window, :func:`dsqn.kernels.timing.window`) and synaptic operations (each event times the fan-out of its source neuron,
    :meth:`SpikingQNet.fanouts`); and each hidden layer's output spikes in its window. Every tensor is (B,)
    float64 with integer values; ``synops[i > 0]`` and ``spikes`` are sums of the forward pass's spike tensors,
    so they carry its surrogate gradient (the first layer's synops are a constant of the payload)."""

    in_events: list[torch.Tensor]
    synops: list[torch.Tensor]
    spikes: list[torch.Tensor]

    def total_synops(self) -> torch.Tensor:
        """(B,) synaptic operations per inference over all layers."""
        return torch.stack(self.synops).sum(0)


class SpikingQNet(torch.nn.Module):
    """Deep spiking Q-network: CUBA-LIF dense/conv blocks and a non-spiking accumulating readout."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        blocks: list[torch.nn.Module] = []
        shape = list(spec.input_shape)
        for i, layer in enumerate(spec.layers):
            p = spec.layer_params(i)
            params = {"threshold": float(p.threshold), "current_decay": spec.current_decay, "voltage_decay": spec.voltage_decay,
                      "tau_grad": spec.tau_grad, "scale_grad": spec.scale_grad}
            if layer["type"] == "conv":
                if len(shape) != 3:
                    raise ValueError("a conv layer needs a (C, H, W) input")
                k, s = int(layer["kernel"]), int(layer.get("stride", 1))
                blocks.append(cuba.Conv(params, shape[0], int(layer["out"]), k, stride=s, weight_scale=2))
                shape = [int(layer["out"]), conv_out(shape[1], k, s), conv_out(shape[2], k, s)]
                blocks[-1].neuron.shape = tuple(shape)
            else:
                if len(shape) == 3:
                    blocks.append(cuba.Flatten(shape))
                    shape = [int(np.prod(shape))]
                blocks.append(cuba.Dense(params, shape[0], int(layer["out"]), weight_scale=2))
                shape = [int(layer["out"])]
        if len(shape) == 3:
            blocks.append(cuba.Flatten(shape))
            shape = [int(np.prod(shape))]
        self.blocks = torch.nn.ModuleList(blocks)
        for i, block in enumerate(self.neuron_blocks()):
            groups = spec.layer_groups(i)
            if groups is not None:
                block.neuron.set_groups(*groups)
        self.readout = cuba.ReadoutLayer(shape[0], spec.n_actions, weight_scale=1)
        # Readout bias in weight units per step; quantized to bias_mant / 64 on Loihi's grid.
        self.readout_bias = torch.nn.Parameter(torch.zeros(spec.n_actions))
        self.fused_enabled = True  # False: always the layer-by-layer forward (tests compare the two)
        self._fused_ok: bool | None = None
        self._fused_params: list[torch.Tensor] = []
        self._readout = spec.readout

    def neuron_blocks(self) -> list[cuba.Dense | cuba.Conv]:
        return [b for b in self.blocks if not isinstance(b, cuba.Flatten)]

    def quantized_bias(self) -> torch.Tensor:
        """Readout bias on Loihi's grid (bias_mant / 64, 13-bit mantissa), with a straight-through gradient."""
        b = self.readout_bias * WEIGHT_SCALE
        bq = torch.clamp(torch.round(b), BIAS_MANT_MIN, BIAS_MANT_MAX)
        return (b + (bq - b).detach()) / WEIGHT_SCALE

    def shift_q(self, delta: float) -> None:
        """Add ``delta`` to every Q value through the readout bias (clamped to the bias mantissa range)."""
        steps = timing.readout_active_steps(self.spec.timesteps, self.spec.n_layers)
        per_unit = self.spec.q_scale * steps / self.spec.timesteps
        with torch.no_grad():
            self.readout_bias.add_(delta / per_unit).clamp_(BIAS_MANT_MIN / WEIGHT_SCALE, BIAS_MANT_MAX / WEIGHT_SCALE)

    def calibrate_(self, payload: torch.Tensor, target_rate: float, iterations: int = 14) -> list[float]:
        """Data-driven initialisation: scale each hidden layer's weights, first to last, by the gain that makes the
        layer fire at ``target_rate`` (spikes per neuron and step, over the T steps and the batch ``payload``) with the
        layers before it already calibrated; geometric bisection of the gain in [1/4, 256]. Returns the gains.

        Why: with 8-bit weights in steps of 1/32 and threshold 1, the default init of a wide layer quantizes mostly
        to zero (the Nature network's 3136 -> 512 layer: bound 0.036) and the spike rates fall from layer to layer
        until the last hidden layer is silent -- Q is then the readout bias alone, equal for every observation, and
        no gradient reaches the hidden layers. The gains only change initial weights: the arithmetic, the
        quantization and everything exported stay as they are."""
        if not 0.0 < target_rate < 1.0:
            raise ValueError(f"target spike rate {target_rate} must lie in (0, 1)")
        blocks = self.neuron_blocks()
        gains = []
        with torch.no_grad():
            for i, block in enumerate(blocks):
                w0 = block.synapse.weight.detach().clone()
                lo, hi = 0.25, 256.0
                for _ in range(iterations):
                    g = (lo * hi) ** 0.5
                    block.synapse.weight.copy_(w0 * g)
                    _, spikes, _ = self(payload, return_spikes=True)
                    if spikes[i].float().mean().item() < target_rate:
                        lo = g
                    else:
                        hi = g
                g = (lo * hi) ** 0.5
                block.synapse.weight.copy_(w0 * g)
                gains.append(g)
        return gains

    def _fused_net(self) -> tuple[fused.FusedNet, np.ndarray, np.ndarray] | None:
        """The network as one compiled call (dsqn.kernels.fused) for acting on the CPU where it applies (dense layers of
        moderate size): the FusedNet, its resets and the first layer's weight integers (float64). Rebuilt when
        the optimizer has changed the weights (cheap at these sizes)."""
        if self._fused_ok is None:
            dense = all(isinstance(b, cuba.Dense) for b in self.blocks)
            later = [*self.blocks[1:], self.readout] if dense else []
            self._fused_ok = kernel.HAVE_NUMBA and dense and sum(b.synapse.weight.numel() for b in later) <= fused.MAX_WEIGHTS \
                and all(b.synapse.in_channels <= fused.MAX_FAN_IN for b in later)
            if self._fused_ok:
                self._fused_params = [*(b.synapse.weight for b in self.blocks), self.readout.synapse.weight, self.readout_bias]
        if not self._fused_ok:
            return None
        key = tuple((p._version, p.data_ptr()) for p in self._fused_params)
        cached = self.__dict__.get("_fused_cache")
        if cached is None or cached[0] != key:
            T, L = self.spec.timesteps, self.spec.n_layers
            neurons = [b.neuron.kernel_params(b.synapse.out_channels) for b in self.blocks]
            neurons.append(self.readout.neuron.kernel_params(self.spec.n_actions, self.readout.bias_mantissa(self.quantized_bias())))
            with torch.no_grad():
                weights = [s.quantized() for s in [*(b.synapse for b in self.blocks), self.readout.synapse]]
            weights = [q.reshape(q.shape[0], -1).cpu().numpy().astype(np.float64) * WEIGHT_SCALE for q in weights]
            resets = np.zeros((L, T), dtype=bool)
            resets[L - 1] = timing.reset_mask(L - 1, T, T)
            net = fused.FusedNet([(p.keep_u, p.keep_v, p.bias, p.vth) for p in neurons], weights[1:])
            cached = (key, net, resets, np.ascontiguousarray(weights[0].T))
            self.__dict__["_fused_cache"] = cached
        return cached[1], cached[2], cached[3]

    def _voltage_fused(self, net: fused.FusedNet, resets: np.ndarray, w0_t: np.ndarray, payload: torch.Tensor) -> np.ndarray:
        """The readout voltage (B, A) from one compiled call; the same integers as the layer-by-layer forward
        (tested). The first layer's synaptic input is one float64 product of integers (exact below 2**53)."""
        T = self.spec.timesteps
        x = payload.detach().reshape(payload.shape[0], -1).numpy().astype(np.float64)
        z0 = (x @ w0_t) / WEIGHT_SCALE
        res = net.run(z0, T, timing.SYNAPSE_DELAY, T, resets)
        at = timing.readout_step(T)
        return np.where(res.spikes[-1][:, at] != 0, 0.0, res.v_last[:, at])

    def _forward_fused(self, net: fused.FusedNet, resets: np.ndarray, w0_t: np.ndarray, payload: torch.Tensor) -> torch.Tensor:
        v = self._voltage_fused(net, resets, w0_t, payload).astype(np.float32)
        return torch.from_numpy(np.asarray(self._readout.decode(v), dtype=np.float32))

    def readout_voltage(self, payload: torch.Tensor) -> np.ndarray:
        """The readout voltage after an inference, (B, A) int64 in state units: what the chip's readout holds
        (no autograd; one compiled call where it applies)."""
        with torch.no_grad():
            if payload.device.type == "cpu" and self.fused_enabled:
                net = self._fused_net()
                if net is not None:
                    return self._voltage_fused(*net, payload).astype(np.int64)
            _, _, v = self.forward(payload, return_spikes=True)
        return v[..., timing.readout_step(self.spec.timesteps)].cpu().numpy().astype(np.int64)

    def policy_actions(self, payload: torch.Tensor) -> list:
        """The policy's action for each payload of the batch: the argmax of Q for a DSQN, the continuous action
        (the environment's units, float64) for an actor -- computed from the integer readout voltage exactly as
        the deployed network's (``Readout.act``)."""
        if self.spec.readout_kind == "q":
            with torch.no_grad():
                return self(payload).argmax(dim=1).tolist()
        return [self._readout.act(v) for v in self.readout_voltage(payload)]

    def _run_blocks(self, payload: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The hidden blocks over ``n_steps`` steps: the last block's output and each hidden layer's delayed spike
        train, time-major (B, n_steps, *shape). Causal: the first T steps do not depend on ``n_steps``."""
        x = payload
        spikes = []
        first = True
        for block in self.blocks:  # time-major tensors (B, T, ...) throughout
            if isinstance(block, cuba.Flatten):
                x = block.forward_tm(x)
                continue
            # the first synapse delays the constant observation by one step
            x = block.forward_tm(x, n_steps=n_steps, const_from=timing.SYNAPSE_DELAY) if first else block.forward_tm(x)
            first = False
            spikes.append(x)
        return x, spikes

    def _readout_tm(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q (B, A) and the readout voltage (B, T, A) from the last block's output over the first T steps."""
        T, L = self.spec.timesteps, self.spec.n_layers
        v = self.readout.forward_tm(x, self.quantized_bias(), timing.reset_mask(L - 1, T, T), timing.reset_step(L - 1, T))
        return self._readout.decode(v[:, timing.readout_step(T)]), v

    def forward(self, payload: torch.Tensor, return_spikes: bool = False):  # type: ignore[no-untyped-def]
        """payload: (B, *input_shape) integer payloads (as float). Returns Q (B, A); with ``return_spikes`` also
        each layer's delayed spike train (B, *shape, T) and the readout voltage (B, A, T) in state units.
        Without autograd on the CPU (acting, evaluation, the target network) small dense networks run as one
        compiled call (:mod:`dsqn.kernels.fused`), which returns the same numbers."""
        T = self.spec.timesteps
        if not return_spikes and not torch.is_grad_enabled() and payload.device.type == "cpu" and self.fused_enabled:
            net = self._fused_net()
            if net is not None:
                return self._forward_fused(*net, payload)
        x, spikes = self._run_blocks(payload, T)
        q, v = self._readout_tm(x)
        if return_spikes:  # in slayer's layout, time last
            return q, [s.movedim(1, -1) for s in spikes], v.movedim(1, -1)
        return q

    def forward_activity(self, payload: torch.Tensor, rows: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor], Activity]:
        """``forward(payload, return_spikes=True)``'s Q and spike trains, and the :class:`Activity` of the first
        ``rows`` payloads (all: None), from one pass of the hidden layers over T + L steps (every layer's whole
        window; the chip's pipelined inference, :mod:`dsqn.kernels.timing`). Q, the spikes returned and their gradients are
        forward's (its T steps are the first T of this causal pass); the activity's synops and spikes carry the
        surrogate gradient of the same spike tensors."""
        T, L = self.spec.timesteps, self.spec.n_layers
        x, spikes = self._run_blocks(payload, timing.inference_steps(T, L))
        q, _ = self._readout_tm(x[:, :T])
        rows = payload.shape[0] if rows is None else rows
        activity = self.activity_of(payload[:rows], [s[:rows] for s in spikes])
        return q, [s[:, :T].movedim(1, -1) for s in spikes], activity

    def activity(self, payload: torch.Tensor) -> Activity:
        """The per-inference :class:`Activity` of each payload (differentiable where autograd is on; the readout is
        not run: its synops are the last hidden layer's spikes times its fan-out)."""
        _, spikes = self._run_blocks(payload, timing.inference_steps(self.spec.timesteps, self.spec.n_layers))
        return self.activity_of(payload, spikes)

    def fanouts(self) -> list[np.ndarray]:
        """Per netx layer (hidden layers, then the readout): the fan-out of each of its source neurons -- the
        payload's elements for the first, the previous hidden layer's neurons (flattened C, H, W) otherwise --
        i.e. the synapses each drives in that layer, exact at conv borders and strides (as hw_sim.counters)."""
        shape = list(self.spec.input_shape)
        out = []
        for layer in self.spec.layers:
            if layer["type"] == "conv":
                k, st = int(layer["kernel"]), int(layer.get("stride", 1))
                out.append(conv_fanout(shape, int(layer["out"]), k, st))
                shape = [int(layer["out"]), conv_out(shape[1], k, st), conv_out(shape[2], k, st)]
            else:
                out.append(np.full(int(np.prod(shape)), int(layer["out"]), dtype=np.int64))
                shape = [int(layer["out"])]
        out.append(np.full(int(np.prod(shape)), self.spec.n_actions, dtype=np.int64))
        return out

    def synapse_counts(self) -> list[int]:
        """Synapses of each netx layer (the sum of its sources' fan-outs; conv: taps that meet a real input)."""
        return [int(f.sum()) for f in self.fanouts()]

    def ann_macs(self) -> list[int]:
        """Multiply-accumulates per netx layer of the same-shape ANN (one dense pass): what hw_sim.counters.ann_macs
        counts from the exported file."""
        shape = list(self.spec.input_shape)
        macs = []
        for layer in self.spec.layers:
            if layer["type"] == "conv":
                k, st = int(layer["kernel"]), int(layer.get("stride", 1))
                out_shape = [int(layer["out"]), conv_out(shape[1], k, st), conv_out(shape[2], k, st)]
                macs.append(int(np.prod(out_shape)) * shape[0] * k * k)
                shape = out_shape
            else:
                macs.append(int(np.prod(shape)) * int(layer["out"]))
                shape = [int(layer["out"])]
        macs.append(int(np.prod(shape)) * self.spec.n_actions)
        return macs

    def activity_of(self, payload: torch.Tensor, spikes_tm: list[torch.Tensor]) -> Activity:
        """:class:`Activity` from the payloads (B, *input_shape) and the hidden layers' delayed spike trains
        (B, S, *shape) time-major, S >= T + L (``_run_blocks`` over ``timing.inference_steps``)."""
        T = self.spec.timesteps
        b = payload.shape[0]
        dev = payload.device
        key = str(dev)
        cached = self.__dict__.get("_fanout_tensors")
        if cached is None or cached[0] != key:
            cached = (key, [torch.as_tensor(f, dtype=torch.float64, device=dev) for f in self.fanouts()])
            self.__dict__["_fanout_tensors"] = cached
        fan = cached[1]
        # the first layer's events: every non-zero payload value, sent on each of the T steps (a constant)
        events = (payload.detach().reshape(b, -1) != 0).to(torch.float64) * T
        in_events, synops, spikes = [events.sum(1)], [events @ fan[0]], []
        for h, s in enumerate(spikes_tm):
            win = timing.window(h, T)  # the undelayed window; the tensors are delayed by one step
            counts = s[:, win.start + timing.SYNAPSE_DELAY: win.stop + timing.SYNAPSE_DELAY].reshape(b, T, -1).sum(1)
            counts = counts.to(torch.float64)  # per neuron, <= T: exact in any float; the sums below in float64
            total = counts.sum(1)
            spikes.append(total)
            in_events.append(total)
            synops.append(counts @ fan[h + 1])
        return Activity(in_events=in_events, synops=synops, spikes=spikes)
