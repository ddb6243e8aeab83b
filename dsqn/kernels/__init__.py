"""The chip's arithmetic: Loihi's fixed-point constants and conversions, the timing rules, and the exact CUBA-LIF
kernels (torch reference, numba on the CPU, Triton on CUDA, and the fused acting path)."""
