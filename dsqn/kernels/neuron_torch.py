"""The plain torch implementation of the CUBA-LIF kernel (forward over T steps in int64, slayer's backward): it runs
anywhere and is the reference the numba and Triton kernels are tested against; ``surrogate_reference`` is the one
surrogate gradient every backward pass is checked against. The arithmetic is described in ``neuron.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from dsqn.kernels.fixed_point import DECAY_SCALE, SLAYER_TH_EPS, STATE_SCALE, UV_MAX, V_LIMIT

if TYPE_CHECKING:  # annotations only: neuron.py imports this module
    from dsqn.kernels.neuron import KernelParams


# ----------------------------------------------------------------------------------------------------
# torch reference (any device)
# ----------------------------------------------------------------------------------------------------
def _shift_decay(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    p = x * keep
    return torch.where(p >= 0, p >> 12, -((-p) >> 12))


def forward_torch(z: torch.Tensor, const: bool, t_on: int, t_off: int, n_steps: int, p: KernelParams,
                  resets: np.ndarray, record_u: bool, delay: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    dev = z.device
    b, n = z.shape[0], z.shape[2]
    keep_u, keep_v, bias, vth = (torch.as_tensor(a, device=dev) for a in (p.keep_u, p.keep_v, p.bias, p.vth))
    a_all = torch.trunc(z.double() * STATE_SCALE).long()
    u = torch.zeros(b, n, dtype=torch.int64, device=dev)
    v = torch.zeros_like(u)
    spikes = torch.zeros(b, n_steps, n, dtype=z.dtype, device=dev)
    v_pre = torch.zeros(b, n_steps, n, dtype=torch.float32, device=dev)
    u_rec = torch.zeros(b, n_steps, n, dtype=torch.float64, device=dev) if record_u else None
    events = torch.zeros((), dtype=torch.int64, device=dev)
    for t in range(n_steps):
        if resets[t]:
            u = torch.zeros_like(u)
            v = torch.zeros_like(v)
        if const:
            a = a_all[:, 0] if t_on <= t < t_off else torch.zeros_like(u)
        else:
            a = a_all[:, t]
        u = _shift_decay(u, keep_u) + a
        over, under = u > UV_MAX, u <= -UV_MAX
        events += over.sum() + under.sum()
        u = torch.where(over, u - 2 * UV_MAX, torch.where(under, u + 2 * UV_MAX, u))
        v = _shift_decay(v, keep_v) + u + bias
        sat = v.abs() > V_LIMIT
        events += sat.sum()
        v = v.clamp(-V_LIMIT, V_LIMIT)
        s = v > vth
        if not delay:
            spikes[:, t] = s.to(z.dtype)
        elif t + 1 < n_steps:
            spikes[:, t + 1] = s.to(z.dtype)
        v_pre[:, t] = v.float()
        if u_rec is not None:
            u_rec[:, t] = u.double()
        v = torch.where(s, torch.zeros_like(v), v)
    return spikes, v_pre, u_rec, int(events)


def surrogate_reference(v_pre: torch.Tensor, vth: torch.Tensor, tau_rho: torch.Tensor, scale_rho: float) -> torch.Tensor:
    """The surrogate gradient d spike / d v, written once, in float64: slayer's
    ``scale_rho / (2 tau_rho) * exp(-|v - th'| / tau_rho)`` with v and th' = vth + SLAYER_TH_EPS in Loihi state units
    (tau_rho in weight units, hence the 4096). It is the reference the three backward passes (``voltage_grad`` in torch,
    numba's ``_bwd_impl``, Triton's ``_bwd_kernel``) are tested against (tests/test_surrogate.py); they compute it in
    float32 for speed, and their results are kept as they are so trained weights do not change."""
    v, th, tau = v_pre.double(), vth.double(), tau_rho.double()
    return scale_rho / (2.0 * tau) * torch.exp(-(v - th - SLAYER_TH_EPS).abs() / (tau * STATE_SCALE))


def voltage_grad(grad_s: torch.Tensor | None, grad_v: torch.Tensor | None, v_pre: torch.Tensor, p: KernelParams,
                 delay: bool) -> torch.Tensor:
    """d loss / d v (float units) at every step: the surrogate times the spikes' gradient, plus the voltage's own.
    Vectorised in float32: v and vth are integers below 2**24, so v - vth is exact, and slayer's threshold
    epsilon (th' = th + 0.01 / 4096) is applied to that small difference. With ``delay`` the spike of step t
    left the block on step t + 1, so its gradient is grad_s[t + 1]."""
    dev = v_pre.device
    if grad_s is not None:
        g = torch.empty(v_pre.shape, dtype=torch.float32, device=dev)  # every step is written below
        if delay:
            g[:, -1].zero_()  # the last step's spike leaves after the window: no gradient reaches it
    else:
        g = torch.zeros(v_pre.shape, dtype=torch.float32, device=dev)
    if grad_s is not None:
        vth, inv_tau, c = p.surrogate_tensors(dev)
        gs, vp, out = (grad_s[:, 1:], v_pre[:, :-1], g[:, :-1]) if delay else (grad_s, v_pre, g)
        dist = (vp - vth).sub_(SLAYER_TH_EPS).abs_().mul_(-inv_tau)
        out.copy_(dist.exp_().mul_(c).mul_(gs))
    if grad_v is not None:
        g.add_(grad_v.float(), alpha=STATE_SCALE)
    return g


def backward_torch(grad_s: torch.Tensor | None, grad_v: torch.Tensor | None, v_pre: torch.Tensor, p: KernelParams,
                   bias_from: int, want_bias: bool, delay: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    dev = v_pre.device
    n_steps = v_pre.shape[1]
    du = torch.as_tensor(p.keep_u / DECAY_SCALE, device=dev)
    dv = torch.as_tensor(p.keep_v / DECAY_SCALE, device=dev)
    g = voltage_grad(grad_s, grad_v, v_pre, p, delay).double()
    acc_v = torch.zeros_like(g[:, 0])
    acc_u = torch.zeros_like(acc_v)
    gz = torch.zeros_like(g)
    gb = torch.zeros_like(acc_v) if want_bias else None
    for t in range(n_steps - 1, -1, -1):
        acc_v = dv * acc_v + g[:, t]
        acc_u = du * acc_u + acc_v
        gz[:, t] = acc_u
        if gb is not None and t >= bias_from:
            gb = gb + acc_v
    return gz.float(), (gb.float() if gb is not None else None)
