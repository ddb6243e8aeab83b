"""The CUBA-LIF neuron update over T steps, in exact integers: one implementation of the chip's arithmetic.

Per neuron and step t (Lava ``PyLifModelBitAcc``; state in Loihi units, 24-bit; see ``dsqn.kernels.fixed_point``)::

    if reset[t]:  u = v = 0                                    (netx's per-layer reset, dsqn.kernels.timing)
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

Layout: time-major, (B, S, N) -- batch, step, neuron -- so the synaptic products are plain GEMMs and convolutions
over B*S rows and the kernels' inner loop runs over contiguous neurons (SIMD on the CPU, coalesced on the GPU).
With ``delay`` the spikes come out already shifted by one step (the next synapse's delay, slayer's
``delay_shift``), which saves a copy per layer.

Three implementations, picked by device: numba on the CPU (compiled on first use, cached on disk; no system
compiler needed), Triton on CUDA (``dsqn.kernels.neuron_triton``), and a plain torch loop over time that runs
anywhere and is the reference the others are tested against.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass

import numpy as np
import torch

from dsqn.kernels.fixed_point import DECAY_SCALE, SLAYER_TH_EPS, STATE_SCALE
from dsqn.kernels.neuron_torch import backward_torch, forward_torch

try:  # numba is a core dependency; the torch path keeps the package importable where a wheel is missing
    import numba
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only on platforms without numba wheels
    HAVE_NUMBA = False

# Problems smaller than this (neuron-steps) run single-threaded: thread start-up costs more than it saves.
_PARALLEL_MIN = 1 << 16
# A single inference is split over threads in slices of at least this many neurons.
_CHUNK_MIN = 2048


@dataclass(frozen=True)
class KernelParams:
    """Per-neuron integer parameters as the kernels take them (int64, length N), plus slayer's surrogate."""

    keep_u: np.ndarray
    keep_v: np.ndarray
    bias: np.ndarray  # state units (bias_mant << bias_exp)
    vth: np.ndarray  # state units (vThMant << 6)
    tau_rho: np.ndarray
    scale_rho: float

    def surrogate_tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """vth, 1 / (tau * 4096) and scale_rho / (2 tau) as float32 tensors on ``device``, cached."""
        key = f"_sur_{device}"
        cached = self.__dict__.get(key)
        if cached is None:
            cached = tuple(torch.as_tensor(a.astype(np.float32), device=device) for a in
                           (self.vth, 1.0 / (self.tau_rho * STATE_SCALE), self.scale_rho / 2 / self.tau_rho))
            object.__setattr__(self, key, cached)
        return cached  # type: ignore[return-value]

    def backward_arrays(self) -> tuple[np.ndarray, ...]:
        """For the numba backward: vth, 1 / (tau * 4096) and scale_rho / (2 tau) in float32 (as ``voltage_grad``
        computes the surrogate), and the kept fractions of u and v per step in float64; cached."""
        cached = self.__dict__.get("_bwd")
        if cached is None:
            cached = (*(np.ascontiguousarray(a, dtype=np.float32) for a in
                        (self.vth, 1.0 / (self.tau_rho * STATE_SCALE), self.scale_rho / 2 / self.tau_rho)),
                      self.keep_u / DECAY_SCALE, self.keep_v / DECAY_SCALE)
            object.__setattr__(self, "_bwd", cached)
        return cached  # type: ignore[return-value]

    def as_float64(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """keep_u, keep_v, bias, vth as float64 (exact: all below 2**53), cached."""
        cached = self.__dict__.get("_f64")
        if cached is None:
            cached = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (self.keep_u, self.keep_v, self.bias, self.vth))
            object.__setattr__(self, "_f64", cached)
        return cached  # type: ignore[return-value]


def backend_for(device: torch.device) -> str:
    forced = os.environ.get("DSQN_NEURON_BACKEND", "")
    if forced:
        return forced
    if device.type == "cuda":
        from dsqn.kernels import neuron_triton

        return "triton" if neuron_triton.available() else "torch"
    return "numba" if HAVE_NUMBA else "torch"


# ----------------------------------------------------------------------------------------------------
# numba (CPU)
# ----------------------------------------------------------------------------------------------------
if HAVE_NUMBA:

    @njit(inline="always")
    def lif_step(u, v, a, keep_u, keep_v, bias, vth):  # type: ignore[no-untyped-def]
        """One neuron, one step (the module docstring's update), on integers carried in float64: every value
        stays below 2**53 (|u| < 2**26, keep <= 2**12), so products, trunc(x / 4096) and sums are exact, and loops
        over neurons that call it vectorise (AVX2 has no int64 multiply). ``a`` is the synaptic input in state
        units. Returns the new u, the pre-reset v (saturated), whether it fires, and the number of wrap/saturation
        events (0-2). The only copy of the chip's neuron arithmetic on the CPU; the torch reference does the same
        in int64 and the tests hold them equal."""
        # Selects, not bool-to-float conversions: LLVM vectorises them to one mask AND/blend each (1.5x faster loop).
        # A wrap moves u by 2**24, so it happened exactly where uu != p; a saturation exactly where vs != vv.
        p = np.trunc(u * keep_u * (1.0 / 4096.0)) + a
        uu = p - 16777216.0 if p > 8388608.0 else p
        uu = uu + 16777216.0 if p <= -8388608.0 else uu
        vv = np.trunc(v * keep_v * (1.0 / 4096.0)) + uu + bias
        vs = min(max(vv, -8388607.0), 8388607.0)
        return uu, vs, vs > vth, (1.0 if uu != p else 0.0) + (1.0 if vs != vv else 0.0)

    def _fwd_impl(z, const, t_on, t_off, n_steps, keep_u, keep_v, bias, vth, resets, delay, spikes, v_pre, u_rec,  # type: ignore[no-untyped-def]
                  record_u, chunk, events):
        # One job per (inference, slice of ``chunk`` neurons): neurons are independent, so a single inference can
        # run on several threads too (the emulator and acting run batch 1).
        n_batch = z.shape[0]
        n = keep_u.shape[0]
        n_chunks = (n + chunk - 1) // chunk
        for job in prange(n_batch * n_chunks):
            b = job // n_chunks
            lo = (job % n_chunks) * chunk
            hi = min(n, lo + chunk)
            m = hi - lo
            ku, kv, bi, th = keep_u[lo:hi], keep_v[lo:hi], bias[lo:hi], vth[lo:hi]
            u = np.zeros(m)
            v = np.zeros(m)
            ev = np.zeros(m)
            scratch = np.empty(m, dtype=spikes.dtype)
            if delay:
                spikes[b, 0, lo:hi] = 0
            for t in range(n_steps):
                if resets[t]:
                    u[:] = 0.0
                    v[:] = 0.0
                on = (not const) or (t >= t_on and t < t_off)
                zrow = z[b, 0 if const else t, lo:hi]
                gain = 4096.0 if on else 0.0
                to = t + 1 if delay else t
                srow = spikes[b, to, lo:hi] if to < n_steps else scratch
                vrow = v_pre[b, t, lo:hi]
                for j in range(m):  # branch-free, so it vectorises
                    uu, vs, fire, e = lif_step(u[j], v[j], np.trunc(np.float64(zrow[j]) * gain), ku[j], kv[j], bi[j], th[j])
                    ev[j] += e
                    vrow[j] = vs
                    srow[j] = fire
                    v[j] = 0.0 if fire else vs
                    u[j] = uu
                if record_u:
                    u_rec[b, t, lo:hi] = u
            events[job] = np.int64(ev.sum())

    def _bwd_impl(grad_s, has_s, grad_v, has_v, v_pre, vth, inv_tau, c, du, dv, delay, bias_from, want_bias,  # type: ignore[no-untyped-def]
                  const_from, gz, gb):
        """``voltage_grad`` (slayer's surrogate, in float32 as there) and the voltage and current leaky
        integrators backwards in time, in one pass over memory. With ``const_from >= 0`` the input was one
        value held from that step on: gz (B, 1, N) is its gradient, the sum over those steps."""
        n_batch, n_steps, n = v_pre.shape
        eps = np.float32(SLAYER_TH_EPS)
        for b in prange(n_batch):
            acc_v = np.zeros(n)
            acc_u = np.zeros(n)
            acc_z = np.zeros(n)
            g = np.zeros(n, dtype=np.float32)
            for i in range(n_steps):
                t = n_steps - 1 - i
                ts = t + 1 if delay else t  # with delay the spike of step t left the block on step t + 1
                if has_s and ts < n_steps:
                    for j in range(n):
                        dist = np.abs((v_pre[b, t, j] - vth[j]) - eps) * -inv_tau[j]
                        g[j] = np.exp(dist) * c[j] * grad_s[b, ts, j]
                else:
                    g[:] = 0.0
                if has_v:
                    for j in range(n):
                        g[j] += grad_v[b, t, j] * np.float32(4096.0)
                for j in range(n):
                    av = dv[j] * acc_v[j] + g[j]
                    acc_u[j] = du[j] * acc_u[j] + av
                    acc_v[j] = av
                if const_from < 0:
                    for j in range(n):
                        gz[b, t, j] = acc_u[j]
                elif t >= const_from:
                    for j in range(n):
                        acc_z[j] += acc_u[j]
                if want_bias and t >= bias_from:
                    for j in range(n):
                        gb[b, j] += acc_v[j]
            if const_from >= 0:
                for j in range(n):
                    gz[b, 0, j] = acc_z[j]

    def named_copy(fn, suffix):  # type: ignore[no-untyped-def]
        """fn under its own name. numba's disk cache files an entry under the function's name, line and signature,
        not its compile options: a parallel and a serial build of one function shared one entry, and whichever was
        compiled first ran for both (a serial kernel on two threads, or the parallel one starting OpenMP threads --
        and changing torch's thread count -- under OMP_NUM_THREADS=1)."""
        f = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
        f.__qualname__ = fn.__qualname__ + suffix
        return f

    _fwd_par = njit(cache=True, parallel=True, nogil=True)(named_copy(_fwd_impl, "_par"))
    _fwd_ser = njit(cache=True, nogil=True)(named_copy(_fwd_impl, "_ser"))
    _bwd_par = njit(cache=True, parallel=True, nogil=True)(named_copy(_bwd_impl, "_par"))
    _bwd_ser = njit(cache=True, nogil=True)(named_copy(_bwd_impl, "_ser"))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def parallel_ok(b: int, work: int) -> bool:
    if b < 2 or work < _PARALLEL_MIN or torch.get_num_threads() < 2:
        return False
    numba.set_num_threads(min(numba.config.NUMBA_NUM_THREADS, torch.get_num_threads()))
    return True


def forward_numba(z: torch.Tensor, const: bool, t_on: int, t_off: int, n_steps: int, p: KernelParams,
                  resets: np.ndarray, record_u: bool, delay: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    b, n = z.shape[0], z.shape[2]
    spikes = torch.empty(b, n_steps, n, dtype=z.dtype)
    v_pre = torch.empty(b, n_steps, n, dtype=torch.float32)
    u_rec = torch.empty(b, n_steps, n, dtype=torch.float64) if record_u else torch.empty(1, 1, 1, dtype=torch.float64)
    # Fewer inferences than threads: split the neurons too, in slices of at least _CHUNK_MIN (each a long loop).
    threads = torch.get_num_threads()
    chunk = max(1, n)
    if 0 < b < threads:
        chunk = min(chunk, max(_CHUNK_MIN, -(-n // -(-threads // b))))
    jobs = b * -(-max(n, 1) // chunk)
    events = np.zeros(max(jobs, 1), dtype=np.int64)
    fn = _fwd_par if jobs >= 2 and parallel_ok(2, b * n * n_steps) else _fwd_ser
    fn(_np(z), const, t_on, t_off, n_steps, *p.as_float64(), np.ascontiguousarray(resets, dtype=np.bool_),
       delay, spikes.numpy(), v_pre.numpy(), u_rec.numpy(), record_u, chunk, events)
    return spikes, v_pre, (u_rec if record_u else None), int(events.sum())


def backward_numba(grad_s: torch.Tensor | None, grad_v: torch.Tensor | None, v_pre: torch.Tensor, p: KernelParams,
                   bias_from: int, want_bias: bool, delay: bool, const_from: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    b, n_steps, n = v_pre.shape
    gz = torch.empty(b, 1 if const_from is not None else n_steps, n, dtype=torch.float32)
    gb = torch.zeros(b, n, dtype=torch.float32) if want_bias else torch.zeros(1, 1)
    dummy = np.zeros((1, 1, 1), dtype=np.float32)
    gs = dummy if grad_s is None else _np(grad_s.float())
    gv = dummy if grad_v is None else _np(grad_v.float())
    fn = _bwd_par if parallel_ok(b, b * n * n_steps) else _bwd_ser
    fn(gs, grad_s is not None, gv, grad_v is not None, _np(v_pre), *p.backward_arrays(), delay, bias_from, want_bias,
       -1 if const_from is None else const_from, gz.numpy(), gb.numpy())
    return gz, (gb if want_bias else None)


# ----------------------------------------------------------------------------------------------------
# dispatch
# ----------------------------------------------------------------------------------------------------
def forward(z: torch.Tensor, const: bool, t_on: int, t_off: int, n_steps: int, p: KernelParams, resets: np.ndarray,
            record_u: bool = False, delay: bool = False,
            backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """Neuron update over ``n_steps``. z: (B, S, N) synaptic input per step (weight units), or (B, 1, N) with
    ``const`` (the input is z on steps t_on <= t < t_off and 0 elsewhere). Returns spikes (z's dtype; shifted by
    one step with ``delay``), pre-reset voltage (float32 state units), with ``record_u`` the current (float64
    state units), and the number of wrap/saturation events."""
    backend = backend or backend_for(z.device)
    if backend == "numba":
        return forward_numba(z, const, t_on, t_off, n_steps, p, resets, record_u, delay)
    if backend == "triton":
        from dsqn.kernels import neuron_triton

        return neuron_triton.forward(z, const, t_on, t_off, n_steps, p, resets, record_u, delay)
    return forward_torch(z, const, t_on, t_off, n_steps, p, resets, record_u, delay)


def backward(grad_s: torch.Tensor | None, grad_v: torch.Tensor | None, v_pre: torch.Tensor, p: KernelParams,
             bias_from: int, want_bias: bool, delay: bool = False, backend: str | None = None,
             const_from: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Surrogate gradient through time: d loss / d z (B, S, N) and, with ``want_bias``, d loss / d bias (B, N)
    summed over the steps from ``bias_from`` (the layer's reset) on. ``grad_s`` is the gradient of the spike
    output as forward returned it (shifted with ``delay``). With ``const_from`` the input was one value held
    from that step on (forward's ``const``): d loss / d z is then (B, 1, N), summed over those steps."""
    backend = backend or backend_for(v_pre.device)
    if backend == "numba":
        return backward_numba(grad_s, grad_v, v_pre, p, bias_from, want_bias, delay, const_from)
    if backend == "triton":
        from dsqn.kernels import neuron_triton

        gz, gb = neuron_triton.backward(grad_s, grad_v, v_pre, p, bias_from, want_bias, delay)
    else:
        gz, gb = backward_torch(grad_s, grad_v, v_pre, p, bias_from, want_bias, delay)
    return (gz if const_from is None else gz[:, const_from:].sum(1, keepdim=True)), gb
