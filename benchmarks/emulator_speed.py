"""hw_sim emulator versus the Lava CPU simulator on the same NetX file (Nature-DQN size by default).

Prints, measured in this one run: Lava fixed_pt time per timestep, emulator time per timestep for one
inference (batch 1) and for a batch of independent inferences, their ratio, and how emulator time
grows with T and with network width. Both run the file exported from the same random network.

    .venv/bin/python benchmarks/emulator_speed.py [--lava-steps 16] [--T 64] [--batch 8]
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

with contextlib.redirect_stdout(io.StringIO()):
    from dsqn.deploy.closed_loop import make_policy, run_episodes
    from dsqn.deploy.lava_backend import LavaNetwork
    from dsqn.encoding import Encoder
    from dsqn.export.exporter import export_model, network_meta
    from dsqn.hw_sim.emulator import Emulator
    from dsqn.netfile import read_netfile
    from dsqn.qnet import NetSpec, SpikingQNet

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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lava-steps", type=int, default=16, help="T of the file run on Lava (one warm-up and one timed inference)")
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--skip-lava", action="store_true")
    p.add_argument("--closed-loop-steps", type=int, default=300, help="Pong steps played closed-loop on the emulator at T")
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
        policy = make_policy(read_netfile(path), "emu")
        log = run_episodes(policy, "ALE/Pong-v5", 1, 0, max_steps=args.closed_loop_steps)
        print(f"closed loop on the emulator, Pong, T={args.T}: {sum(log.lengths) / log.seconds:.1f} env steps/s "
              f"({sum(log.lengths)} steps, env + encoder + network + counters)")
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
