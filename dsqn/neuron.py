"""The CUBA-LIF neuron update over T steps, in exact integers: one implementation of the chip's arithmetic.

Per neuron and step t (Lava ``PyLifModelBitAcc``; state in Loihi units, 24-bit; see ``dsqn.fixed_point``)::

    if reset[t]:  u = v = 0                                    (netx's per-layer reset, dsqn.timing)
    u = sign(u) * ((|u| * keep_u) >> 12) + a[t]                a[t] = 4096 * synaptic input (weight units)
    u wraps once: u > 2**23 -> u - 2**24;  u <= -2**23 -> u + 2**24
    v = sign(v) * ((|v| * keep_v) >> 12) + u + bias            bias = bias_mant << 6
    v saturates to +-(2**23 - 1)
    spike = v > vth;  v = 0 where spike                        vth = vThMant << 6

The synaptic input arrives as float weight units (``W_q @ x``, exact integers / 64) as slayer's neuron gets it;
``4096 * z`` is an exact integer. State is int64 inside the kernels whatever the training dtype, so the result is
Lava's bit for bit. Pre-reset voltages are returned as float32, which holds every saturated 24-bit value exactly;
recorded currents as float64, because Lava wraps u only once and a large input leaves it above 2**24.

The backward pass is slayer's (``slayer/neuron/dynamics/leaky_integrator.py`` and ``slayer/spike/spike.py``):
the surrogate ``scale_rho / (2 tau_rho) * exp(-|v - th'| / tau_rho)`` on the pre-reset voltage, then the
voltage and current leaky integrators run backwards in time as linear filters (resets and wrap are not
differentiated, as in slayer).

Three implementations, picked by device: numba on the CPU (compiled on first use, cached on disk; no system
compiler needed), Triton on CUDA (``dsqn.neuron_triton``), and a plain torch loop over time that runs
anywhere and is the reference the others are tested against.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from .fixed_point import DECAY_SCALE, STATE_SCALE, UV_MAX, V_LIMIT

try:  # numba is a core dependency; the torch path keeps the package importable where a wheel is missing
    import numba
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only on platforms without numba wheels
    HAVE_NUMBA = False

# Problems smaller than this (neuron-steps) run single-threaded: thread start-up costs more than it saves.
_PARALLEL_MIN = 1 << 16


@dataclass(frozen=True)
class KernelParams:
    """Per-neuron integer parameters as the kernels take them (int64, length N), plus slayer's surrogate."""

    keep_u: np.ndarray
    keep_v: np.ndarray
    bias: np.ndarray  # state units (bias_mant << bias_exp)
    vth: np.ndarray  # state units (vThMant << 6)
    th_float: np.ndarray  # slayer's threshold + eps in float state units / 4096 (for the surrogate)
    tau_rho: np.ndarray
    scale_rho: float


def backend_for(device: torch.device) -> str:
    forced = os.environ.get("DSQN_NEURON_BACKEND", "")
    if forced:
        return forced
    if device.type == "cuda":
        from . import neuron_triton

        return "triton" if neuron_triton.available() else "torch"
    return "numba" if HAVE_NUMBA else "torch"


# ----------------------------------------------------------------------------------------------------
# torch reference (any device)
# ----------------------------------------------------------------------------------------------------
def _shift_decay(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    p = x * keep
    return torch.where(p >= 0, p >> 12, -((-p) >> 12))


def forward_torch(z: torch.Tensor, const: bool, t_on: int, t_off: int, n_steps: int, p: KernelParams,
                  resets: np.ndarray, record_u: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    dev = z.device
    b, n = z.shape[0], z.shape[1]
    keep_u, keep_v, bias, vth = (torch.as_tensor(a, device=dev) for a in (p.keep_u, p.keep_v, p.bias, p.vth))
    a_all = torch.trunc(z.double() * STATE_SCALE).long()
    u = torch.zeros(b, n, dtype=torch.int64, device=dev)
    v = torch.zeros_like(u)
    spikes = torch.zeros(b, n, n_steps, dtype=z.dtype, device=dev)
    v_pre = torch.zeros(b, n, n_steps, dtype=torch.float32, device=dev)
    u_rec = torch.zeros(b, n, n_steps, dtype=torch.float64, device=dev) if record_u else None
    events = torch.zeros((), dtype=torch.int64, device=dev)
    for t in range(n_steps):
        if resets[t]:
            u = torch.zeros_like(u)
            v = torch.zeros_like(v)
        if const:
            a = a_all[..., 0] if t_on <= t < t_off else torch.zeros_like(u)
        else:
            a = a_all[..., t]
        u = _shift_decay(u, keep_u) + a
        over, under = u > UV_MAX, u <= -UV_MAX
        events += over.sum() + under.sum()
        u = torch.where(over, u - 2 * UV_MAX, torch.where(under, u + 2 * UV_MAX, u))
        v = _shift_decay(v, keep_v) + u + bias
        sat = v.abs() > V_LIMIT
        events += sat.sum()
        v = v.clamp(-V_LIMIT, V_LIMIT)
        s = v > vth
        spikes[..., t] = s.to(z.dtype)
        v_pre[..., t] = v.float()
        if u_rec is not None:
            u_rec[..., t] = u.double()
        v = torch.where(s, torch.zeros_like(v), v)
    return spikes, v_pre, u_rec, int(events)


def backward_torch(grad_s: torch.Tensor | None, grad_v: torch.Tensor | None, v_pre: torch.Tensor, p: KernelParams,
                   bias_from: int, want_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    dev = v_pre.device
    n_steps = v_pre.shape[-1]
    # float64 like the numba kernel: |v - th| of two large numbers loses bits in float32
    du = torch.as_tensor(p.keep_u / DECAY_SCALE, device=dev)
    dv = torch.as_tensor(p.keep_v / DECAY_SCALE, device=dev)
    g = torch.zeros(v_pre.shape, dtype=torch.float64, device=dev)
    if grad_s is not None:
        th = torch.as_tensor(p.th_float, device=dev)[:, None]
        tau = torch.as_tensor(p.tau_rho, device=dev)[:, None]
        g = g + grad_s.double() * (p.scale_rho / 2 / tau * torch.exp(-(v_pre.double() / STATE_SCALE - th).abs() / tau))
    if grad_v is not None:
        g = g + grad_v.double() * STATE_SCALE
    acc_v = torch.zeros_like(g[..., 0])
    acc_u = torch.zeros_like(acc_v)
    gz = torch.zeros_like(g)
    gb = torch.zeros_like(acc_v) if want_bias else None
    for t in range(n_steps - 1, -1, -1):
        acc_v = dv * acc_v + g[..., t]
        acc_u = du * acc_u + acc_v
        gz[..., t] = acc_u
        if gb is not None and t >= bias_from:
            gb = gb + acc_v
    return gz.float(), (gb.float() if gb is not None else None)


# ----------------------------------------------------------------------------------------------------
# numba (CPU)
# ----------------------------------------------------------------------------------------------------
if HAVE_NUMBA:

    def _fwd_impl(z, const, t_on, t_off, n_steps, keep_u, keep_v, bias, vth, resets, spikes, v_pre, u_rec, record_u, events):  # type: ignore[no-untyped-def]
        n_rows = z.shape[0] * z.shape[1]
        n = z.shape[1]
        for r in prange(n_rows):
            b = r // n
            j = r - b * n
            ku, kv, bi, th = keep_u[j], keep_v[j], bias[j], vth[j]
            u = np.int64(0)
            v = np.int64(0)
            ev = np.int64(0)
            for t in range(n_steps):
                if resets[t]:
                    u = np.int64(0)
                    v = np.int64(0)
                if const:
                    x = z[b, j, 0] if (t >= t_on and t < t_off) else 0.0
                else:
                    x = z[b, j, t]
                a = np.int64(np.float64(x) * 4096.0)
                pu = u * ku
                u = ((pu >> 12) if pu >= 0 else -((-pu) >> 12)) + a
                if u > 8388608:
                    u -= 16777216
                    ev += 1
                elif u <= -8388608:
                    u += 16777216
                    ev += 1
                pv = v * kv
                v = ((pv >> 12) if pv >= 0 else -((-pv) >> 12)) + u + bi
                if v > 8388607:
                    v = np.int64(8388607)
                    ev += 1
                elif v < -8388607:
                    v = np.int64(-8388607)
                    ev += 1
                v_pre[b, j, t] = v
                if record_u:
                    u_rec[b, j, t] = u
                if v > th:
                    spikes[b, j, t] = 1
                    v = np.int64(0)
                else:
                    spikes[b, j, t] = 0
            events[r] = ev

    def _bwd_impl(grad_s, has_s, grad_v, has_v, v_pre, du, dv, th, tau, scale_rho, bias_from, want_bias, gz, gb):  # type: ignore[no-untyped-def]
        n = v_pre.shape[1]
        n_steps = v_pre.shape[2]
        for r in prange(v_pre.shape[0] * n):
            b = r // n
            j = r - b * n
            acc_v = 0.0
            acc_u = 0.0
            gbias = 0.0
            c = scale_rho / 2.0 / tau[j]
            for t in range(n_steps - 1, -1, -1):
                g = 0.0
                if has_s:
                    g += grad_s[b, j, t] * (c * math.exp(-abs(v_pre[b, j, t] / 4096.0 - th[j]) / tau[j]))
                if has_v:
                    g += grad_v[b, j, t] * 4096.0
                acc_v = dv[j] * acc_v + g
                acc_u = du[j] * acc_u + acc_v
                gz[b, j, t] = acc_u
                if want_bias and t >= bias_from:
                    gbias += acc_v
            if want_bias:
                gb[b, j] = gbias

    _fwd_par = njit(cache=True, parallel=True, nogil=True)(_fwd_impl)
    _fwd_ser = njit(cache=True, nogil=True)(_fwd_impl)
    _bwd_par = njit(cache=True, parallel=True, nogil=True, fastmath=False)(_bwd_impl)
    _bwd_ser = njit(cache=True, nogil=True)(_bwd_impl)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def forward_numba(z: torch.Tensor, const: bool, t_on: int, t_off: int, n_steps: int, p: KernelParams,
                  resets: np.ndarray, record_u: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    b, n = z.shape[0], z.shape[1]
    spikes = torch.empty(b, n, n_steps, dtype=z.dtype)
    v_pre = torch.empty(b, n, n_steps, dtype=torch.float32)
    u_rec = torch.empty(b, n, n_steps, dtype=torch.float64) if record_u else torch.empty(1, 1, 1, dtype=torch.float64)
    events = np.zeros(b * n, dtype=np.int64)
    parallel = b * n * n_steps >= _PARALLEL_MIN and torch.get_num_threads() > 1
    if parallel:
        numba.set_num_threads(min(numba.config.NUMBA_NUM_THREADS, torch.get_num_threads()))
    fn = _fwd_par if parallel else _fwd_ser
    fn(_np(z), const, t_on, t_off, n_steps, p.keep_u, p.keep_v, p.bias, p.vth, np.ascontiguousarray(resets, dtype=np.bool_),
       spikes.numpy(), v_pre.numpy(), u_rec.numpy(), record_u, events)
    return spikes, v_pre, (u_rec if record_u else None), int(events.sum())


def backward_numba(grad_s: torch.Tensor | None, grad_v: torch.Tensor | None, v_pre: torch.Tensor, p: KernelParams,
                   bias_from: int, want_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    b, n, n_steps = v_pre.shape
    gz = torch.empty(b, n, n_steps, dtype=torch.float32)
    gb = torch.zeros(b, n, dtype=torch.float32) if want_bias else torch.zeros(1, 1)
    dummy = np.zeros((1, 1, 1), dtype=np.float32)
    gs = _np(grad_s.float()) if grad_s is not None else dummy
    gv = _np(grad_v.float()) if grad_v is not None else dummy
    parallel = b * n * n_steps >= _PARALLEL_MIN and torch.get_num_threads() > 1
    fn = _bwd_par if parallel else _bwd_ser
    fn(gs, grad_s is not None, gv, grad_v is not None, _np(v_pre), p.keep_u / DECAY_SCALE, p.keep_v / DECAY_SCALE,
       p.th_float, p.tau_rho, float(p.scale_rho), bias_from, want_bias, gz.numpy(), gb.numpy())
    return gz, (gb if want_bias else None)


# ----------------------------------------------------------------------------------------------------
# dispatch
# ----------------------------------------------------------------------------------------------------
def forward(z: torch.Tensor, const: bool, t_on: int, t_off: int, n_steps: int, p: KernelParams, resets: np.ndarray,
            record_u: bool = False, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """Neuron update over ``n_steps``. z: (B, N, S) synaptic input per step, or (B, N, 1) with ``const`` (the
    input is z on steps t_on <= t < t_off and 0 elsewhere). Returns spikes (z's dtype), pre-reset voltage and
    (with ``record_u``) current as float32 state units, and the number of wrap/saturation events."""
    backend = backend or backend_for(z.device)
    if backend == "numba":
        return forward_numba(z, const, t_on, t_off, n_steps, p, resets, record_u)
    if backend == "triton":
        from . import neuron_triton

        return neuron_triton.forward(z, const, t_on, t_off, n_steps, p, resets, record_u)
    return forward_torch(z, const, t_on, t_off, n_steps, p, resets, record_u)


def backward(grad_s: torch.Tensor | None, grad_v: torch.Tensor | None, v_pre: torch.Tensor, p: KernelParams,
             bias_from: int, want_bias: bool, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Surrogate gradient through time: d loss / d z (B, N, S) and, with ``want_bias``, d loss / d bias (B, N)
    summed over the steps from ``bias_from`` (the layer's reset) on."""
    backend = backend or backend_for(v_pre.device)
    if backend == "numba":
        return backward_numba(grad_s, grad_v, v_pre, p, bias_from, want_bias)
    if backend == "triton":
        from . import neuron_triton

        return neuron_triton.backward(grad_s, grad_v, v_pre, p, bias_from, want_bias)
    return backward_torch(grad_s, grad_v, v_pre, p, bias_from, want_bias)
