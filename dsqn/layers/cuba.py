"""SLAYER-compatible CUBA-LIF blocks whose forward pass is the chip's integer arithmetic.

``Dense``, ``Conv``, ``Flatten`` and the non-spiking ``Readout`` take the parameters of lava-dl's
``slayer.block.cuba`` blocks (a neuron-parameter dict, sizes, ``weight_scale``, ``delay_shift``), hold the same
tensors under the same names (``synapse.weight`` of shape (out, in, kH, kW, 1), ``neuron.current_decay`` and
``neuron.voltage_decay`` in 1/4096 units), initialise their weights as slayer does (so a seed gives the same
network), use the same 8-bit weight quantization and surrogate gradient, and write the same NetX HDF5 groups
as slayer's ``export_hdf5`` -- so Intel's ``netx.hdf5.Network`` loads what they export, and a state dict moves
between these blocks and slayer's unchanged.

What differs is the forward pass: synaptic input is an exact integer sum (float32 matmul/conv while the sum
stays below 2**24, float64 otherwise; TF32 is switched off on CUDA), and the neuron runs in int64 through
:mod:`dsqn.kernels.neuron` with Lava's 24-bit wrap of u and saturation of v, so training computes what Lava's
``fixed_pt`` model and Loihi compute, bit for bit. Layouts are slayer's: (B, C, T) and (B, C, H, W, T), time last.

Not supported (not used by this toolchain): learnable decays, per-channel random decays of slayer's
``shared_param=False``, weight norm, axonal delays, graded spikes, persistent state.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from dsqn.files.format import GROUPED_NEURON_TYPE, GROUPS_VERSION
from dsqn.kernels import neuron as kernel
from dsqn.kernels.fixed_point import (
    BIAS_EXP,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_SCALE,
    SCALE_RHO_MULT,
    STATE_SCALE,
    TAU_RHO_MULT,
    WEIGHT_SCALE,
    LoihiNeuron,
    NeuronParams,
    readout_neuron,
)
from dsqn.layers.exact import exact_product, quantize_8bit

NEURON_KEYS = ("threshold", "current_decay", "voltage_decay", "tau_grad", "scale_grad", "requires_grad", "shared_param",
               "graded_spike")








class Neuron(torch.nn.Module):
    """CUBA-LIF neuron group: slayer's parameters and tensors, Loihi's integers (``loihi()``)."""

    def __init__(self, threshold: float, current_decay: float, voltage_decay: float, tau_grad: float = 1.0,
                 scale_grad: float = 1.0, requires_grad: bool = False, shared_param: bool = True,
                 graded_spike: bool = False) -> None:
        super().__init__()
        if requires_grad or not shared_param or graded_spike:
            raise ValueError("dsqn.layers.cuba neurons support requires_grad=False, shared_param=True, graded_spike=False")
        self.w_scale, self.s_scale, self.p_scale = WEIGHT_SCALE, STATE_SCALE, DECAY_SCALE
        # slayer quantizes the threshold by truncation (int(th * 64) / 64); thresholds given on the 1/64 grid
        # (dsqn.kernels.fixed_point.quantize_threshold) are unchanged by it.
        self.threshold = int(threshold * WEIGHT_SCALE) / WEIGHT_SCALE
        self.tau_grad, self.scale_grad = float(tau_grad), float(scale_grad)
        self.register_parameter("current_decay", torch.nn.Parameter(torch.FloatTensor([DECAY_SCALE * current_decay]), requires_grad=False))
        self.register_parameter("voltage_decay", torch.nn.Parameter(torch.FloatTensor([DECAY_SCALE * voltage_decay]), requires_grad=False))
        self.shape: tuple[int, ...] | None = None
        self.groups: tuple[np.ndarray, LoihiNeuron] | None = None

    def set_groups(self, group: np.ndarray, grouped: LoihiNeuron) -> None:
        """Heterogeneous neurons: neuron j runs with the integers of group ``group[j]`` (dsqn.layers.qnet.NetSpec)."""
        self.groups = (np.asarray(group, dtype=np.int64), grouped)
        self._kernel_params = None

    def params(self) -> NeuronParams:
        return NeuronParams(current_decay=float(torch.round(self.current_decay).item()) / DECAY_SCALE,
                            voltage_decay=float(torch.round(self.voltage_decay).item()) / DECAY_SCALE, threshold=self.threshold)

    def loihi(self, where: str = "neuron") -> LoihiNeuron:
        """The layer's integers: scalars, or one value per neuron for heterogeneous neurons."""
        if self.groups is not None:
            group, g = self.groups
            return LoihiNeuron(i_decay=g.i_decay[group], v_decay=g.v_decay[group], vth_mant=g.vth_mant[group])
        return self.params().to_loihi(where)

    def device_params(self) -> dict:
        """The layer's ``neuron`` group of a NetX file (slayer's ``device_params``); heterogeneous neurons as
        ``CUBA_GROUPS`` (dsqn.files.netfile: the groups' integers and each neuron's group; stock netx refuses it)."""
        if self.groups is not None:
            group, g = self.groups
            return {"type": GROUPED_NEURON_TYPE, "iDecay": g.i_decay.astype(np.int32), "vDecay": g.v_decay.astype(np.int32),
                    "vThMant": g.vth_mant.astype(np.int32), "group": group.astype(np.int32),
                    "groupsVersion": GROUPS_VERSION, "refDelay": 1, "gradedSpike": False}
        n = self.loihi()
        return {"type": "CUBA", "iDecay": int(n.i_decay), "vDecay": int(n.v_decay), "vThMant": int(n.vth_mant),
                "refDelay": 1, "gradedSpike": False}

    def kernel_params(self, n: int, bias_mant: np.ndarray | None = None) -> kernel.KernelParams:
        """The kernels' per-neuron arrays; converted once and cached until the decays change (load_state_dict)."""
        key = (n, self.current_decay._version, self.voltage_decay._version, self.current_decay.data_ptr())
        cached = getattr(self, "_kernel_params", None)
        if cached is None or cached[0] != key:
            loihi = self.loihi()
            keep_u, keep_v, bias, vth = loihi.per_neuron(n)
            th = self.threshold if self.groups is None else np.broadcast_to(loihi.vth_mant, (n,)) / WEIGHT_SCALE
            params = kernel.KernelParams(keep_u, keep_v, bias, vth, tau_rho=np.full(n, self.tau_grad * th * TAU_RHO_MULT),
                                         scale_rho=self.scale_grad * SCALE_RHO_MULT)
            cached = (key, params)
            self._kernel_params = cached
        params = cached[1]
        if bias_mant is not None:
            bias = np.broadcast_to(np.clip(bias_mant, BIAS_MANT_MIN, BIAS_MANT_MAX).astype(np.int64) << BIAS_EXP, (n,))
            params = dataclasses.replace(params, bias=np.ascontiguousarray(bias))
        return params


class ReadoutNeuron(Neuron):
    """slayer's Affine neuron (current decay 1, voltage decay 0), on the chip a LIF whose threshold is the
    largest vThMant (dsqn.kernels.fixed_point.readout_neuron)."""

    def __init__(self) -> None:
        super().__init__(threshold=1.0, current_decay=1.0, voltage_decay=0.0)

    def loihi(self, where: str = "readout") -> LoihiNeuron:
        return readout_neuron()


class _CubaFn(torch.autograd.Function):
    """z (B, S, N) or (B, 1, N) constant input [, bias (N,) float weight units] -> spikes, v (state units)."""

    @staticmethod
    def forward(ctx, z, bias, p, const, t_on, n_steps, resets, bias_from, want_v, delay):  # type: ignore[no-untyped-def, override]
        spikes, v_pre, _, _ = kernel.forward(z, const, t_on, n_steps, n_steps, p, resets, delay=delay)
        ctx.save_for_backward(v_pre)
        ctx.set_materialize_grads(False)  # an unused output (a hidden layer's v, the readout's spikes) stays None
        ctx.p, ctx.const, ctx.t_on, ctx.bias_from, ctx.has_bias, ctx.delay = p, const, t_on, bias_from, bias is not None, delay
        ctx.z_dtype = z.dtype
        return spikes, (_post_reset(v_pre, spikes) if want_v else v_pre)

    @staticmethod
    def backward(ctx, grad_s, grad_v):  # type: ignore[no-untyped-def, override]
        (v_pre,) = ctx.saved_tensors
        gz, gb = kernel.backward(grad_s, grad_v, v_pre, ctx.p, ctx.bias_from, ctx.has_bias and ctx.needs_input_grad[1],
                                 delay=ctx.delay, const_from=ctx.t_on if ctx.const else None)
        grad_bias = gb.sum(0) if gb is not None else None
        return gz.to(ctx.z_dtype), grad_bias, None, None, None, None, None, None, None, None


def neuron_forward(z: torch.Tensor, p: kernel.KernelParams, n_steps: int, const: bool = False, t_on: int = 0,
                   resets: np.ndarray | None = None, bias: torch.Tensor | None = None, bias_from: int = 0,
                   delay: bool = False, want_v: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes (z's dtype; shifted one step with ``delay``) and post-reset voltage (float32 state units) over
    ``n_steps``, differentiable (without ``want_v`` the voltage is the pre-reset one and not differentiated)."""
    if resets is None:
        resets = np.zeros(n_steps, dtype=bool)
    z = z.contiguous()
    if not torch.is_grad_enabled():  # acting and evaluation: no autograd bookkeeping
        spikes, v_pre, _, _ = kernel.forward(z, const, t_on, n_steps, n_steps, p, resets, delay=delay)
        return spikes, (_post_reset(v_pre, spikes) if want_v and not delay else v_pre)
    return _CubaFn.apply(z, bias, p, const, t_on, n_steps, resets, bias_from, want_v and not delay, delay)


def _post_reset(v_pre: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """The voltage after the spike's reset (what Lava's ``v`` holds)."""
    return torch.where(spikes != 0, torch.zeros((), dtype=v_pre.dtype, device=v_pre.device), v_pre)


class _Synapse(torch.nn.Module):
    """Holds ``weight`` in slayer's shape (out, in, kH, kW, 1) with slayer's initialisation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], weight_scale: float) -> None:
        super().__init__()
        w = torch.empty(out_channels, in_channels, kernel_size[0], kernel_size[1], 1)
        torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # torch.nn.Conv3d's default, which slayer's synapse is
        self.weight = torch.nn.Parameter(weight_scale * w)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size

    def quantized(self) -> torch.Tensor:
        if torch.is_grad_enabled():
            return quantize_8bit(self.weight)
        # acting and target networks: reuse the quantized weights until the optimizer changes them
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device)
        cached = self.__dict__.get("_quantized")
        if cached is None or cached[0] != key:
            cached = (key, quantize_8bit(self.weight.detach()))
            self.__dict__["_quantized"] = cached
        return cached[1]

    def weight_int(self) -> np.ndarray:
        """Exported integer weights (even, [-256, 254]) as float32 like slayer writes them."""
        return (self.quantized().detach() * WEIGHT_SCALE).reshape(self.weight.shape[:-1]).cpu().numpy().astype(np.float32)










def _time_major(x: torch.Tensor) -> torch.Tensor:
    """slayer layout (B, C..., T) -> ours (B, T, C...)."""
    return x.movedim(-1, 1)


def _time_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1)


class _Block(torch.nn.Module):
    """A CUBA block. ``forward`` takes and returns slayer's layout (B, C..., T); the network runs ``forward_tm``
    on time-major tensors (B, T, C...), where synaptic products are GEMMs over B*T rows without copies."""

    neuron: Neuron
    synapse: _Synapse

    def __init__(self, neuron_params: dict, delay_shift: bool) -> None:
        super().__init__()
        unknown = set(neuron_params) - set(NEURON_KEYS)
        if unknown:
            raise ValueError(f"unsupported neuron parameters {sorted(unknown)}")
        self.neuron = Neuron(**neuron_params)
        self.delay_shift = delay_shift

    def synaptic_input(self, x: torch.Tensor, binary: bool) -> torch.Tensor:
        """x (R, C...) -> (R, N) in weight units, exact (R = batch x steps)."""
        raise NotImplementedError

    def forward_tm(self, x: torch.Tensor, n_steps: int | None = None, const_from: int | None = None) -> torch.Tensor:
        """Spikes (B, T, *shape), delayed by one step with ``delay_shift``. ``const_from``: x is (B, C...) presented
        on steps const_from .. n_steps-1 and its synaptic input is computed once; otherwise x is (B, T, C...)."""
        b = x.shape[0]
        if const_from is not None:
            z = self.synaptic_input(x, binary=False).reshape(b, 1, -1)
            steps = int(n_steps)  # type: ignore[arg-type]
        else:
            steps = x.shape[1]
            z = self.synaptic_input(x.reshape(b * steps, *x.shape[2:]), binary=True).reshape(b, steps, -1)
        p = self.neuron.kernel_params(z.shape[-1])
        s, _ = neuron_forward(z, p, steps, const=const_from is not None, t_on=const_from or 0, delay=self.delay_shift,
                              want_v=False)
        return s.reshape(b, steps, *self.neuron.shape)  # type: ignore[misc]

    def forward(self, x: torch.Tensor, n_steps: int | None = None, const_from: int | None = None) -> torch.Tensor:
        """slayer's interface: x (B, C..., T) -> spikes (B, *shape, T)."""
        return _time_last(self.forward_tm(x if const_from is not None else _time_major(x), n_steps, const_from))

    @property
    def shape(self) -> tuple[int, ...] | None:
        return self.neuron.shape


class Dense(_Block):
    """slayer.block.cuba.Dense(neuron_params, in_neurons, out_neurons, weight_scale, delay_shift)."""

    def __init__(self, neuron_params: dict, in_neurons: int, out_neurons: int, weight_scale: float = 1.0,
                 delay_shift: bool = True) -> None:
        super().__init__(neuron_params, delay_shift)
        self.synapse = _Synapse(in_neurons, out_neurons, (1, 1), weight_scale)
        self.neuron.shape = (out_neurons,)

    def synaptic_input(self, x: torch.Tensor, binary: bool) -> torch.Tensor:
        w = self.synapse.quantized().reshape(self.synapse.out_channels, -1)
        return exact_product(F.linear, x.reshape(x.shape[0], -1), w, w.shape[1], binary)

    def export_hdf5(self, handle) -> None:  # type: ignore[no-untyped-def]
        handle.create_dataset("type", (1,), "S10", [b"dense"])
        handle.create_dataset("shape", data=np.array(self.neuron.shape))
        handle.create_dataset("inFeatures", data=self.synapse.in_channels)
        handle.create_dataset("outFeatures", data=self.synapse.out_channels)
        handle.create_dataset("weight", data=self.synapse.weight_int().reshape(self.synapse.out_channels, -1))
        for key, value in self.neuron.device_params().items():
            handle.create_dataset(f"neuron/{key}", data=value)


class Conv(_Block):
    """slayer.block.cuba.Conv(neuron_params, in_features, out_features, kernel_size, stride, padding, weight_scale,
    delay_shift); dilation 1 and groups 1."""

    def __init__(self, neuron_params: dict, in_features: int, out_features: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, weight_scale: float = 1.0, delay_shift: bool = True) -> None:
        super().__init__(neuron_params, delay_shift)
        self.synapse = _Synapse(in_features, out_features, (kernel_size, kernel_size), weight_scale)
        self.stride, self.padding = (stride, stride), (padding, padding)

    def synaptic_input(self, x: torch.Tensor, binary: bool) -> torch.Tensor:
        w = self.synapse.quantized()[..., 0]

        def conv(x_: torch.Tensor, w_: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x_, w_, stride=self.stride, padding=self.padding)

        z = exact_product(conv, x, w, int(np.prod(w.shape[1:])), binary)
        if self.neuron.shape is None:
            self.neuron.shape = tuple(z.shape[1:])
        return z.reshape(z.shape[0], -1)

    def export_hdf5(self, handle) -> None:  # type: ignore[no-untyped-def]
        handle.create_dataset("type", (1,), "S10", [b"conv"])
        handle.create_dataset("shape", data=np.array(self.neuron.shape))
        handle.create_dataset("inChannels", data=self.synapse.in_channels)
        handle.create_dataset("outChannels", data=self.synapse.out_channels)
        handle.create_dataset("kernelSize", data=np.array(self.synapse.kernel_size))
        handle.create_dataset("stride", data=np.array(self.stride))
        handle.create_dataset("padding", data=np.array(self.padding))
        handle.create_dataset("dilation", data=np.array([1, 1]))
        handle.create_dataset("groups", data=1)
        handle.create_dataset("weight", data=self.synapse.weight_int())
        for key, value in self.neuron.device_params().items():
            handle.create_dataset(f"neuron/{key}", data=value)


class Flatten(torch.nn.Module):
    """(B, C, H, W, T) -> (B, C*H*W, T), as slayer.block.cuba.Flatten."""

    def __init__(self, in_shape: list[int] | None = None) -> None:
        super().__init__()
        # slayer's Flatten learns this on its first forward pass and exports it as (C*H*W, 1, 1)
        self.shape: list[int] | None = None if in_shape is None else [int(np.prod(in_shape)), 1, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shape is None:
            self.shape = [x.shape[1] * x.shape[2] * x.shape[3], 1, 1]
        return x.reshape(x.shape[0], -1, x.shape[-1])

    def forward_tm(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, C*H*W), the same neuron order."""
        return x.reshape(x.shape[0], x.shape[1], -1)

    def export_hdf5(self, handle) -> None:  # type: ignore[no-untyped-def]
        handle.create_dataset("type", (1,), "S10", [b"flatten"])
        handle.create_dataset("shape", data=np.array(self.shape))


class ReadoutLayer(torch.nn.Module):
    """Non-spiking accumulating readout (slayer.block.cuba.Affine with current decay 1, voltage decay 0):
    dense synapse, u = this step's input, v integrates u + bias. Returns v in state units (B, A, T)."""

    def __init__(self, in_neurons: int, out_neurons: int, weight_scale: float = 1.0) -> None:
        super().__init__()
        self.neuron = ReadoutNeuron()
        self.neuron.shape = (out_neurons,)
        self.synapse = _Synapse(in_neurons, out_neurons, (1, 1), weight_scale)

    def loihi(self, bias_mant: np.ndarray | None = None) -> LoihiNeuron:
        return readout_neuron(bias_mant)

    @staticmethod
    def bias_mantissa(bias: torch.Tensor) -> np.ndarray:
        """Loihi's bias mantissa of a bias on its grid (weight units, multiples of 1/64)."""
        return np.rint(bias.detach().cpu().numpy().astype(np.float64) * WEIGHT_SCALE).astype(np.int64)

    def forward_tm(self, x: torch.Tensor, bias: torch.Tensor, resets: np.ndarray, bias_from: int) -> torch.Tensor:
        """x (B, T, C) spikes -> v (B, T, A); ``bias`` (A,) float weight units on Loihi's grid (bias_mant / 64)."""
        w = self.synapse.quantized().reshape(self.synapse.out_channels, -1)
        z = F.linear(x.to(w.dtype), w)
        p = self.neuron.kernel_params(z.shape[-1], self.bias_mantissa(bias))
        _, v = neuron_forward(z, p, z.shape[1], resets=resets, bias=bias, bias_from=bias_from)
        return v
