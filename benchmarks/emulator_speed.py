"""hw_sim emulator versus the Lava CPU simulator on the same NetX file (Nature-DQN size by default).

Prints, measured in this one run: Lava fixed_pt time per timestep, emulator time per timestep for one
inference (batch 1) and for a batch of independent inferences, their ratio, and how emulator time
grows with T and with network width. Both run the file exported from the same random network.

Closed loop (Pong, T = --T): env steps/s as ``dsqn-deploy --backend emu`` plays them, the steady-state rate (env
creation and reset left out), where the time of a step goes (``--breakdown``), and the **compute bound**: the
float32 convolutions and GEMMs of one inference alone -- the very calls the emulator makes (``F.conv2d`` /
``F.linear`` on the same shapes, weights and spike trains; the first layer's payload as dsqn.layers.exact.exact_product
multiplies it: 8-bit pixels into an 8x8x4 conv stay below 2**24 in float32, so one call), timed after every step of
a second closed-loop run (outside the step's own time), so that load on a shared machine hits steps and bound alike.
The bound in env steps/s is 1 / (GEMM time per inference): no emulator doing these exact float32 products steps
faster at this GEMM throughput, env and neuron updates excluded.

    .venv/bin/python benchmarks/emulator_speed.py [--lava-steps 16] [--T 64] [--batch 8]
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/emulator_speed.py --skip-lava --skip-scaling --breakdown \
        --closed-loop-steps 150
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

with contextlib.redirect_stdout(io.StringIO()):
    from dsqn.deploy.closed_loop import make_policy, run_episodes
    from dsqn.deploy.lava_backend import LavaNetwork
    from dsqn.encoding import Encoder
    from dsqn.export.exporter import export_model, network_meta
    from dsqn.files.netfile_read import read_netfile
    from dsqn.hw_sim.emulator import Emulator
    from dsqn.kernels import neuron as kernel
    from dsqn.layers.exact import exact_operands
    from dsqn.layers.qnet import SpikingQNet
    from dsqn.layers.spec import NetSpec

NATURE = [{"type": "conv", "out": 32, "kernel": 8, "stride": 4}, {"type": "conv", "out": 64, "kernel": 4, "stride": 2},
          {"type": "conv", "out": 64, "kernel": 3, "stride": 1}, {"type": "dense", "out": 512}]


def build(path: Path, T: int, width: float = 1.0, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    layers = [{**layer, "out": max(1, int(layer["out"] * width))} for layer in NATURE]
    spec = NetSpec(input_shape=[4, 84, 84], layers=layers, n_actions=6, timesteps=T, threshold=1.0,
                   current_decay=0.5, voltage_decay=0.5, input_unit=255, q_scale=1.0)
    model = SpikingQNet(spec)
    with torch.no_grad():
        for k, block in enumerate(model.blocks):
            if hasattr(block, "synapse"):  # active; pixel input drives some first-layer neurons to the 24-bit limits
                block.synapse.weight.data *= 1.0 if k == 0 else 8.0
    enc = Encoder(kind="pixels", obs_scale=(255.0,), obs_shape=(4, 84, 84))
    export_model(model, enc, path, network_meta(spec, enc, "ALE/Pong-v5", "0" * 64, {}))
    return path


def emu_ms_per_step(path: Path, T: int, batch: int, repeats: int = 3) -> tuple[float, list[float]]:
    net = read_netfile(path)
    emu = Emulator(net)
    payload = np.random.default_rng(0).integers(0, 256, (batch, 4, 84, 84))
    emu.infer(payload, T)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _, windows, _ = emu.infer(payload, T)
        times.append(time.perf_counter() - t)
    rates = [float(w.mean()) for w in windows]
    _, _, overflow = emu.infer(payload, T)
    return statistics.median(times) / (T * batch) * 1e3, rates + [f"overflow events {sum(overflow)}"]


def gemm_set(emu: Emulator, payload: np.ndarray, windows: list[np.ndarray]) -> tuple[list, list[int]]:
    """The float32 conv/linear calls one emulator inference makes (Emulator.synaptic_input through
    dsqn.layers.exact.exact_product), as closures on that inference's inputs, and their multiply-accumulates.
    payload: (C, H, W) first-layer input; windows[i]: (N_i, T) bool spikes of layer i (EmuPolicy's counters see them)."""
    calls, macs = [], []
    for i, layer in enumerate(emu.layers):
        w = emu._w_units[i]  # the weights the emulator multiplies with (integers / 64, exact)
        fan_in = int(np.prod(w.shape[1:]))
        if i == 0:
            x = torch.from_numpy(np.asarray(payload, dtype=np.float32).reshape(1, *layer.in_shape))
            parts = exact_operands(x, fan_in, False)  # past float32's exact range: two products of the 4-bit halves
            xs = [part for part, _ in parts] if parts is not None else [x.double()]
        else:
            spikes = np.ascontiguousarray(windows[i - 1].T, dtype=np.float32)  # (T, N_{i-1}), time-major
            xs = [torch.from_numpy(spikes).reshape(spikes.shape[0], *((-1,) if layer.kind == "dense" else layer.in_shape))]
        for x in xs:
            if layer.kind == "dense":
                calls.append(lambda x=x, w=w: F.linear(x, w))
            else:
                calls.append(lambda x=x, w=w, st=layer.stride, pad=layer.padding: F.conv2d(x, w, stride=st, padding=pad))
            macs.append(x.shape[0] * layer.n_neurons * fan_in)
    return calls, macs


def time_calls(calls: list) -> list[float]:
    times = []
    for call in calls:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


class Breakdown:
    """Wall time of the parts of each closed-loop step, recorded by wrapping the emulator policy's calls."""

    def __init__(self, policy) -> None:  # type: ignore[no-untyped-def]
        self.samples: dict[str, list[float]] = {}
        emu, counter = policy.emu, policy.counter
        layer = [0]
        syn, fwd, add, act, infer = emu.synaptic_input, kernel.forward, counter.add, policy.act, emu.infer

        def timed(key, fn):  # type: ignore[no-untyped-def]
            def run(*a, **k):  # type: ignore[no-untyped-def]
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    self.samples.setdefault(key() if callable(key) else key, []).append(time.perf_counter() - t)
            return run

        def syn_i(i, *a, **k):  # type: ignore[no-untyped-def]
            layer[0] = i
            return timed(f"layer {i} synaptic (GEMM/conv)", syn)(i, *a, **k)

        emu.synaptic_input = syn_i
        kernel.forward = timed(lambda: f"layer {layer[0]} neuron kernel", fwd)
        counter.add = timed("counters", add)
        emu.infer = timed("inference", infer)
        policy.act = timed("act", act)
        self._restore = lambda: setattr(kernel, "forward", fwd)

    def close(self) -> None:
        self._restore()

    def report(self, intervals: list[float]) -> None:
        """intervals[k]: the time from the end of step k's bookkeeping to step k + 1's (env step k, inference k + 1)."""
        n = len(intervals)
        part = {k: np.asarray(v[1 : n + 1]) * 1e3 for k, v in self.samples.items()}  # the inferences inside the intervals
        step = np.asarray(intervals) * 1e3
        layers = sorted(k for k in part if k.startswith("layer"))
        syn = sum(part[k] for k in layers if "synaptic" in k)
        neu = sum(part[k] for k in layers if "neuron" in k)
        rows = [(k, part[k]) for k in layers]
        rows += [("rest of the inference (copies, bool windows, readout v)", part["inference"] - syn - neu),
                 ("counters", part["counters"]),
                 ("rest of policy.act (readout decode)", part["act"] - part["inference"] - part["counters"]),
                 ("env step + encoder + loop", step - part["act"]),
                 ("= synaptic GEMM/conv calls, all layers", syn),
                 ("= neuron kernel, all layers", neu),
                 ("= everything outside the synaptic calls", step - syn),
                 ("= whole step", step)]
        print(f"closed-loop breakdown over {n} steps, ms per step (median; mean; mean as % of the mean step):")
        for k, v in rows:
            print(f"  {k:58s} {np.median(v):7.2f} {v.mean():7.2f} {100 * v.mean() / step.mean():6.1f} %")


def closed_loop(path: Path, steps: int, breakdown: bool) -> None:
    """Pong on the emulator as dsqn-deploy plays it, then the same again with the compute bound timed after every
    step (round-robin; the GEMM set runs outside the step's interval) and, with ``breakdown``, the step's parts."""
    net = read_netfile(path)
    stamps: list[float] = []
    policy = make_policy(net, "emu")
    log = run_episodes(policy, "ALE/Pong-v5", 1, 0, max_steps=steps, on_step=lambda *_: stamps.append(time.perf_counter()))
    plain, plain_step = sum(log.lengths) / log.seconds, statistics.median(np.diff(stamps))

    policy = make_policy(net, "emu")
    parts = Breakdown(policy) if breakdown else None
    intervals: list[float] = []
    gemm_s: list[list[float]] = []  # per step: each call's time
    macs: list[int] = []
    mark = [0.0]
    windows: list = [None]  # the spike windows of the inference just run (EmuPolicy hands them to its counter)
    add = policy.counter.add

    def keep(payload, spikes):  # type: ignore[no-untyped-def]
        windows[0] = spikes
        return add(payload, spikes)

    def on_step(obs, payload, action, q):  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        if mark[0]:
            intervals.append(now - mark[0])  # previous env step + encoder + this step's inference, counters, readout
        calls, macs[:] = gemm_set(policy.emu, payload, windows[0])
        gemm_s.append(time_calls(calls))
        mark[0] = time.perf_counter()

    policy.counter.add = keep
    run_episodes(policy, "ALE/Pong-v5", 1, 0, max_steps=steps, on_step=on_step)
    if parts is not None:
        parts.close()
    step = statistics.median(intervals)
    per_call = np.median(np.asarray(gemm_s), axis=0)
    gemm = statistics.median(float(sum(g)) for g in gemm_s)
    print(f"closed loop on the emulator, Pong, T={net.timesteps}, {torch.get_num_threads()} threads: {plain:.1f} env steps/s "
          f"as dsqn-deploy plays them ({sum(log.lengths)} steps, env creation and reset included; env + encoder + network "
          f"+ counters); steady state {1 / plain_step:.1f} env steps/s ({plain_step * 1e3:.2f} ms median step)")
    print(f"  compute bound: the float32 conv/linear calls of one inference alone, timed after every step of a second "
          f"run (median of {len(gemm_s)}): {gemm * 1e3:.2f} ms = {1 / gemm:.1f} env steps/s at most, env excluded; "
          f"{2 * sum(macs) / 1e9:.3f} GFLOP per inference at {2 * sum(macs) / gemm / 1e9:.1f} GFLOP/s")
    print("    per call: " + ", ".join(f"{t * 1e3:.2f} ms ({2 * m / t / 1e9:.0f} GFLOP/s)" for t, m in zip(per_call, macs)))
    print(f"  that run's steady state: {step * 1e3:.2f} ms median step = {1 / step:.1f} env steps/s; "
          f"achieved / bound = {gemm / step:.2f} (the GEMMs are {100 * gemm / step:.0f} % of a step)")
    if parts is not None:
        parts.report(intervals)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lava-steps", type=int, default=16, help="T of the file run on Lava (one warm-up and one timed inference)")
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--skip-lava", action="store_true")
    p.add_argument("--closed-loop-steps", type=int, default=300, help="Pong steps played closed-loop on the emulator at T")
    p.add_argument("--breakdown", action="store_true", help="where the time of a closed-loop step goes, per layer and part")
    p.add_argument("--skip-scaling", action="store_true", help="leave out the T and width scaling tables")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lava_ms = float("nan")
        if not args.skip_lava:
            path = build(tmp / "lava.net", args.lava_steps)
            net = read_netfile(path)
            payload = np.random.default_rng(0).integers(0, 256, (4, 84, 84))
            with LavaNetwork.from_netfile(net) as ln:
                ln.infer(payload)
                t = time.perf_counter()
                ln.infer(payload)
                lava_ms = (time.perf_counter() - t) / args.lava_steps * 1e3
        path = build(tmp / "emu.net", args.T)
        one, rates = emu_ms_per_step(path, args.T, 1)
        many, _ = emu_ms_per_step(path, args.T, args.batch)
        print("Nature-DQN 84x84x4 -> 32@8x8/4 -> 64@4x4/2 -> 64@3x3/1 -> 512 -> 6, random weights, "
              f"spike rates per layer {[round(r, 3) if isinstance(r, float) else r for r in rates]}")
        print(f"Lava fixed_pt (Loihi2SimCfg), T={args.lava_steps}: {lava_ms:.1f} ms per timestep")
        print(f"emulator, 1 inference of T={args.T}: {one:.3f} ms per timestep ({one * args.T:.1f} ms per inference, "
              f"{1e3 / (one * args.T):.1f} inferences/s) -> {lava_ms / one:.0f}x faster than Lava")
        print(f"emulator, batch of {args.batch} inferences: {many:.3f} ms per inference-timestep -> {lava_ms / many:.0f}x")
        closed_loop(path, args.closed_loop_steps, args.breakdown)
        if args.skip_scaling:
            return
        print("emulator scaling (batch 1): T -> ms per inference")
        for T in (16, 32, 64, 128):
            ms, _ = emu_ms_per_step(build(tmp / f"t{T}.net", T), T, 1, repeats=2)
            print(f"  T={T:<4d} {ms * T:8.1f} ms")
        print("emulator scaling (batch 1, T=64): channel width multiplier -> ms per inference")
        for width in (0.25, 0.5, 1.0, 2.0):
            ms, _ = emu_ms_per_step(build(tmp / f"w{width}.net", 64, width), 64, 1, repeats=2)
            print(f"  width x{width:<5} {ms * 64:8.1f} ms")


if __name__ == "__main__":
    main()
