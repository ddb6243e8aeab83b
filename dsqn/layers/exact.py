"""Exact synaptic sums in floating point: 8-bit integer weights times binary or 8-bit graded inputs, computed by
BLAS in float32 where every partial sum stays below 2**24 (exact), split into exact halves or done in float64 where not,
and TF32 switched off on CUDA. Shared by the training blocks (``cuba``) and the emulator (``hw_sim``)."""

from __future__ import annotations

import torch

from dsqn.kernels.fixed_point import WEIGHT_INT_MAX, WEIGHT_INT_MIN, WEIGHT_SCALE

# Sums of integer weights (|w| <= 256) times inputs are exact in float32 below 2**24.
F32_EXACT = 1 << 24


def exact_matmul_settings() -> None:
    """TF32 would round the synaptic sums on Ampere and newer GPUs; the blocks need exact float32."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


class _Quantize8Bit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        step = 2.0 / WEIGHT_SCALE
        return torch.round(w / step) * step

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def quantize_8bit(weight: torch.Tensor) -> torch.Tensor:
    """slayer's ``quantize_8bit`` (descaled): round to even multiples of 1/64 with a straight-through gradient,
    then clamp to [-256/64, 254/64] (which zeroes the gradient outside), exactly as slayer composes them."""
    return torch.clamp(_Quantize8Bit.apply(weight), WEIGHT_INT_MIN / WEIGHT_SCALE, WEIGHT_INT_MAX / WEIGHT_SCALE)


def _needs_f64(x: torch.Tensor, fan_in: int, binary: bool) -> bool:
    bound = fan_in * (-WEIGHT_INT_MIN) * (1.0 if binary else float(x.detach().abs().max().item() if x.numel() else 0.0))
    return bound >= F32_EXACT


_NIBBLE = 16


def exact_product(op, x: torch.Tensor, w: torch.Tensor, fan_in: int, binary: bool) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """op(x, w) (a linear map: matmul or convolution) exactly, in weight units.

    float32 is exact while every partial sum stays below 2**24. Graded 8-bit payloads pass that once the fan-in
    exceeds 256 (the Nature conv1's 4 x 8 x 8 = 256 just stays below: 256 x 255 x 256), so they are split into 4-bit halves x = 16 hi + lo, each product exact in float32,
    and combined in float64 -- two float32 products cost less than one in float64. Wider inputs use float64."""
    parts = exact_operands(x, fan_in, binary)
    if parts is None:
        return op(x.double(), w.double())
    if len(parts) == 1:
        return op(parts[0][0].to(w.dtype), w)
    (hi, f_hi), (lo, f_lo) = parts
    return op(hi.to(w.dtype), w).double() * f_hi + op(lo.to(w.dtype), w).double() * f_lo


def exact_operands(x: torch.Tensor, fan_in: int, binary: bool) -> list[tuple[torch.Tensor, float]] | None:
    """The float32 operands of :func:`exact_product`: ``[(x, 1)]`` where one float32 product is exact, ``[(hi, 16),
    (lo, 1)]`` for integer payloads up to 255 past float32's exact range, None where only float64 is exact."""
    if binary or not _needs_f64(x, fan_in, binary):
        return [(x, 1.0)]
    xd = x.detach()
    amax = float(xd.abs().max().item())
    if amax <= 255 and fan_in * (-WEIGHT_INT_MIN) * (_NIBBLE - 1) < F32_EXACT and torch.equal(xd, torch.round(xd)):
        hi = torch.floor(xd / _NIBBLE)
        return [(hi, float(_NIBBLE)), (xd - _NIBBLE * hi, 1.0)]
    return None
