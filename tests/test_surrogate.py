"""One surrogate gradient (``dsqn.kernels.neuron_torch.surrogate_reference``, float64) that every backward pass is tested against on
the same inputs: the torch loop and numba here, Triton in its interpreter (tests/triton_interpret_check.py). With one
step and no voltage gradient the leaky integrators pass the surrogate through unchanged (gz = surrogate x grad_s), so
what is compared is the surrogate alone. Stated tolerance: the passes compute it in float32, so 1e-6 relative to the
float64 reference (a few float32 ulps), and torch and numba agree with each other to 5e-7."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsqn.kernels import neuron as kernel
from dsqn.kernels.fixed_point import STATE_SCALE
from dsqn.kernels.neuron_torch import surrogate_reference

REL_TO_REFERENCE = 1e-6
REL_BETWEEN_PASSES = 5e-7


def surrogate_case(seed: int, b: int = 4, n: int = 64) -> tuple[kernel.KernelParams, torch.Tensor, torch.Tensor]:
    """Voltages around and far from per-neuron thresholds (within a few surrogate widths), one step."""
    rng = np.random.default_rng(seed)
    vth = (rng.integers(1, 4000, n) << 6).astype(np.int64)
    tau = rng.choice([0.01, 0.1, 0.7, 3.0], n)
    p = kernel.KernelParams(np.full(n, 4096, np.int64), np.full(n, 4096, np.int64), np.zeros(n, np.int64), vth,
                            tau_rho=tau, scale_rho=0.3 + seed % 3)
    spread = (tau * STATE_SCALE)[None, :] * rng.uniform(-6, 6, (b, n))
    v_pre = torch.from_numpy(np.round(vth[None, :] + spread)).float()[:, None, :]  # (B, 1 step, N)
    grad_s = torch.from_numpy(rng.normal(0, 1, (b, 1, n))).float()
    return p, v_pre, grad_s


def reference(p: kernel.KernelParams, v_pre: torch.Tensor, grad_s: torch.Tensor) -> torch.Tensor:
    return surrogate_reference(v_pre, torch.from_numpy(p.vth), torch.from_numpy(p.tau_rho), p.scale_rho) * grad_s.double()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_and_numba_backward_equal_the_reference_surrogate(seed: int):
    p, v_pre, grad_s = surrogate_case(seed)
    want = reference(p, v_pre, grad_s)
    assert float(want.abs().max()) > 0.1 and float((want == 0).float().mean()) < 0.5  # near and far from threshold
    got = {}
    for backend in ("torch", *(("numba",) if kernel.HAVE_NUMBA else ())):
        gz, _ = kernel.backward(grad_s, None, v_pre, p, 0, False, delay=False, backend=backend)
        torch.testing.assert_close(gz.double(), want, rtol=REL_TO_REFERENCE, atol=1e-12)
        got[backend] = gz
    if "numba" in got:
        torch.testing.assert_close(got["numba"], got["torch"], rtol=REL_BETWEEN_PASSES, atol=0.0)


def test_the_reference_is_slayers_formula():
    """Spot values by hand: at v = th' the peak scale / (2 tau); one tau (in state units) away, that times e^-1."""
    vth, tau = torch.tensor([6400.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    th = 6400.0 + 0.01
    at = surrogate_reference(torch.tensor([th], dtype=torch.float64), vth, tau, 0.3)
    away = surrogate_reference(torch.tensor([th + 0.5 * STATE_SCALE], dtype=torch.float64), vth, tau, 0.3)
    assert float(at) == pytest.approx(0.3, rel=1e-12) and float(away) == pytest.approx(0.3 * np.exp(-1), rel=1e-12)
