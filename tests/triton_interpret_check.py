"""Run the Triton kernels in Triton's interpreter (TRITON_INTERPRET=1: numpy on the CPU) against the torch
reference kernel. Called in a fresh process by tests/test_core.py, because the interpreter is chosen when the
kernels are decorated. Prints ALL OK when every case agrees (forward bit for bit, backward to float rounding)."""

import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_core import _params  # noqa: E402

from dsqn.kernels import neuron as kernel  # noqa: E402
from dsqn.kernels import neuron_triton  # noqa: E402

ok = True
for scale in (40.0, 5000.0):
    for const in (False, True):
        rng = np.random.default_rng(int(scale) + const)
        b, n, s = 3, 150, 12
        z = torch.from_numpy(np.round(rng.normal(0, scale, (b, 1 if const else s, n)) * 64) / 64).float()
        p = _params(rng, n, big=scale > 100)
        resets = rng.random(s) < 0.2
        for delay in (False, True):
            ref = kernel.forward(z, const, 2, 9, s, p, resets, record_u=True, delay=delay, backend="torch")
            tri = neuron_triton.forward(z, const, 2, 9, s, p, resets, True, delay)
            same = all(torch.equal(a, c) for a, c in zip(ref[:3], tri[:3])) and ref[3] == tri[3]
            gen = torch.Generator().manual_seed(int(scale) + 2 * const + delay)
            gs, gv = torch.randn(b, s, n, generator=gen), torch.randn(b, s, n, generator=gen)
            gz_t, gb_t = kernel.backward(gs, gv, ref[1], p, 3, True, delay=delay, backend="torch")
            gz_g, gb_g = neuron_triton.backward(gs, gv, tri[1], p, 3, True, delay)
            # float32 sums over up to 12 steps of values up to ~4096 * |grad_v|: compare to the largest magnitude
            close = all(float((x - y).abs().max()) <= 1e-5 * float(y.abs().max()) + 1e-3 for x, y in ((gz_g, gz_t), (gb_g, gb_t)))
            print(f"scale {scale} const {const} delay {delay}: forward equal {same}, backward close {close}")
            ok &= same and close
# the surrogate alone (one step, no voltage gradient: gz = surrogate x grad_s) against the float64 reference
from test_surrogate import REL_TO_REFERENCE, reference, surrogate_case  # noqa: E402

for seed in (0, 1, 2):
    p, v_pre, grad_s = surrogate_case(seed)
    gz, _ = neuron_triton.backward(grad_s, None, v_pre, p, 0, False, False)
    want = reference(p, v_pre, grad_s)
    close = bool(((gz.double() - want).abs() <= REL_TO_REFERENCE * want.abs() + 1e-12).all())
    print(f"surrogate seed {seed}: equals the reference to {REL_TO_REFERENCE:g} relative: {close}")
    ok &= close
print("ALL OK" if ok else "MISMATCH")
