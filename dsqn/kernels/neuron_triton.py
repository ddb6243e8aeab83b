"""The CUBA-LIF kernels of :mod:`dsqn.kernels.neuron` for CUDA, in Triton (which ships with torch's CUDA builds).

Same arithmetic, same argument conventions: one program handles a block of (batch, neuron) rows and walks the
T steps in order with the state in int64 registers, so the result is the torch reference's and Lava's, bit for
bit (``tests/test_core.py`` checks it wherever a GPU is present; ``benchmarks/train_speed.py --device cuda``
times it).
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import triton
    import triton.language as tl

    # The kernels are written for Triton 3 (torch >= 2.4); torch 2.3's Triton 2.3 falls back to the torch loop.
    HAVE_TRITON = int(triton.__version__.split(".")[0]) >= 3
except ImportError:  # CPU builds of torch come without Triton
    HAVE_TRITON = False

BLOCK = 128  # neurons per program; one program per (batch row, block of neurons)


def available() -> bool:
    return HAVE_TRITON and torch.cuda.is_available()


if HAVE_TRITON:

    @triton.jit
    def _fwd_kernel(z_ptr, s_ptr, v_ptr, u_ptr, ev_ptr, keep_u_ptr, keep_v_ptr, bias_ptr, vth_ptr, reset_ptr,  # type: ignore[no-untyped-def]
                    n_neurons, n_steps, t_on, t_off,
                    CONST: tl.constexpr, RECORD_U: tl.constexpr, DELAY: tl.constexpr, BLOCK_N: tl.constexpr):
        b = tl.program_id(0).to(tl.int64)
        j = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = j < n_neurons
        ku = tl.load(keep_u_ptr + j, mask=mask, other=0)
        kv = tl.load(keep_v_ptr + j, mask=mask, other=0)
        bi = tl.load(bias_ptr + j, mask=mask, other=0)
        th = tl.load(vth_ptr + j, mask=mask, other=0)
        u = tl.zeros([BLOCK_N], dtype=tl.int64)
        v = tl.zeros([BLOCK_N], dtype=tl.int64)
        ev = tl.zeros([BLOCK_N], dtype=tl.int64)
        zero = tl.zeros([BLOCK_N], dtype=tl.int64)
        base = b * n_steps * n_neurons
        if CONST:
            x_const = tl.load(z_ptr + b * n_neurons + j, mask=mask, other=0.0).to(tl.float64)
        if DELAY:
            tl.store(s_ptr + base + j, tl.zeros([BLOCK_N], dtype=tl.float32).to(s_ptr.dtype.element_ty), mask=mask)
        for t in range(0, n_steps):
            r = tl.load(reset_ptr + t)
            u = tl.where(r != 0, zero, u)
            v = tl.where(r != 0, zero, v)
            off = base + t * n_neurons + j
            if CONST:
                x = tl.where((t >= t_on) & (t < t_off), x_const, 0.0)
            else:
                x = tl.load(z_ptr + off, mask=mask, other=0.0).to(tl.float64)
            a = (x * 4096.0).to(tl.int64)  # truncation toward zero, as slayer's .to(int64)
            pu = u * ku
            u = tl.where(pu >= 0, pu >> 12, -((-pu) >> 12)) + a
            over = u > 8388608
            under = u <= -8388608
            ev += over.to(tl.int64) + under.to(tl.int64)
            u = tl.where(over, u - 16777216, tl.where(under, u + 16777216, u))
            pv = v * kv
            v = tl.where(pv >= 0, pv >> 12, -((-pv) >> 12)) + u + bi
            sat = (v > 8388607) | (v < -8388607)
            ev += sat.to(tl.int64)
            v = tl.minimum(tl.maximum(v, -8388607), 8388607)
            tl.store(v_ptr + off, v.to(tl.float32), mask=mask)
            if RECORD_U:
                tl.store(u_ptr + off, u.to(tl.float64), mask=mask)
            s = v > th
            if DELAY:
                if t + 1 < n_steps:  # the last step's spike would leave after the window
                    tl.store(s_ptr + off + n_neurons, s.to(s_ptr.dtype.element_ty), mask=mask)
            else:
                tl.store(s_ptr + off, s.to(s_ptr.dtype.element_ty), mask=mask)
            v = tl.where(s, zero, v)
        tl.store(ev_ptr + b * n_neurons + j, ev, mask=mask)

    @triton.jit
    def _bwd_kernel(gs_ptr, gv_ptr, v_ptr, gz_ptr, gb_ptr, du_ptr, dv_ptr, vth_ptr, tau_ptr, scale_rho,  # type: ignore[no-untyped-def]
                    n_neurons, n_steps, bias_from,
                    HAS_S: tl.constexpr, HAS_V: tl.constexpr, WANT_B: tl.constexpr, DELAY: tl.constexpr,
                    BLOCK_N: tl.constexpr):
        b = tl.program_id(0).to(tl.int64)
        j = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = j < n_neurons
        du = tl.load(du_ptr + j, mask=mask, other=0.0)
        dv = tl.load(dv_ptr + j, mask=mask, other=0.0)
        vth = tl.load(vth_ptr + j, mask=mask, other=0.0)
        tau = tl.load(tau_ptr + j, mask=mask, other=1.0)
        c = scale_rho / 2.0 / tau
        acc_v = tl.zeros([BLOCK_N], dtype=tl.float64)
        acc_u = tl.zeros([BLOCK_N], dtype=tl.float64)
        gbias = tl.zeros([BLOCK_N], dtype=tl.float64)
        base = b * n_steps * n_neurons
        for i in range(0, n_steps):
            t = n_steps - 1 - i
            off = base + t * n_neurons + j
            g = tl.zeros([BLOCK_N], dtype=tl.float64)
            if HAS_S:
                vv = tl.load(v_ptr + off, mask=mask, other=0.0).to(tl.float64)
                if DELAY:  # the spike of step t left on step t + 1
                    nxt = base + tl.minimum(t + 1, n_steps - 1) * n_neurons + j
                    gs = tl.load(gs_ptr + nxt, mask=mask, other=0.0).to(tl.float64)
                    gs = tl.where(t + 1 < n_steps, gs, 0.0)
                else:
                    gs = tl.load(gs_ptr + off, mask=mask, other=0.0).to(tl.float64)
                dist = tl.abs((vv - vth) - 0.01) / 4096.0
                g += gs * c * tl.exp((-dist / tau).to(tl.float32)).to(tl.float64)
            if HAS_V:
                g += tl.load(gv_ptr + off, mask=mask, other=0.0).to(tl.float64) * 4096.0
            acc_v = dv * acc_v + g
            acc_u = du * acc_u + acc_v
            tl.store(gz_ptr + off, acc_u.to(tl.float32), mask=mask)
            if WANT_B:
                gbias += tl.where(t >= bias_from, acc_v, 0.0)
        if WANT_B:
            tl.store(gb_ptr + b * n_neurons + j, gbias.to(tl.float32), mask=mask)


def _dev(a: np.ndarray, dev: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), device=dev).to(dtype)


def forward(z, const, t_on, t_off, n_steps, p, resets, record_u, delay):  # type: ignore[no-untyped-def]
    dev = z.device
    b, n = z.shape[0], z.shape[2]
    z = z.contiguous()
    spikes = torch.empty(b, n_steps, n, dtype=z.dtype, device=dev)
    v_pre = torch.empty(b, n_steps, n, dtype=torch.float32, device=dev)
    u_rec = torch.empty(b, n_steps, n, dtype=torch.float64, device=dev) if record_u else torch.empty(1, dtype=torch.float64, device=dev)
    events = torch.zeros(b * n, dtype=torch.int64, device=dev)
    grid = (b, triton.cdiv(n, BLOCK))
    _fwd_kernel[grid](z, spikes, v_pre, u_rec, events, _dev(p.keep_u, dev, torch.int64), _dev(p.keep_v, dev, torch.int64),
                      _dev(p.bias, dev, torch.int64), _dev(p.vth, dev, torch.int64),
                      _dev(np.asarray(resets, dtype=np.int8), dev, torch.int8), n, n_steps, int(t_on), int(t_off),
                      CONST=bool(const), RECORD_U=bool(record_u), DELAY=bool(delay), BLOCK_N=BLOCK)
    return spikes, v_pre, (u_rec if record_u else None), int(events.sum().item())


def backward(grad_s, grad_v, v_pre, p, bias_from, want_bias, delay):  # type: ignore[no-untyped-def]
    dev = v_pre.device
    b, n_steps, n = v_pre.shape
    gz = torch.empty(b, n_steps, n, dtype=torch.float32, device=dev)
    gb = torch.zeros(b, n, dtype=torch.float32, device=dev) if want_bias else torch.empty(1, device=dev)
    dummy = torch.empty(1, device=dev)
    grid = (b, triton.cdiv(n, BLOCK))
    _bwd_kernel[grid](grad_s.float().contiguous() if grad_s is not None else dummy,
                      grad_v.float().contiguous() if grad_v is not None else dummy, v_pre.contiguous(), gz, gb,
                      _dev(p.keep_u / 4096.0, dev, torch.float64), _dev(p.keep_v / 4096.0, dev, torch.float64),
                      _dev(p.vth.astype(np.float64), dev, torch.float64), _dev(p.tau_rho, dev, torch.float64),
                      float(p.scale_rho), n, n_steps, int(bias_from), HAS_S=grad_s is not None, HAS_V=grad_v is not None,
                      WANT_B=bool(want_bias), DELAY=bool(delay), BLOCK_N=BLOCK)
    return gz, (gb if want_bias else None)
