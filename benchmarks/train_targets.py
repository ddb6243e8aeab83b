"""The issue's training targets: dsqn-train with its default config, several seeds, wall-clock per run.

Runs ``dsqn-train --env-id ENV --seed S`` (nothing else on the command line, so the per-environment
defaults of ``train/config.py`` apply) for every env and seed, ``--parallel`` runs at a time with one torch
thread each, and prints per run the best periodic evaluation, the final greedy evaluation of the best
weights (``--final-eval-episodes``, 20 by default) and the minutes it took; then, per env, how many
seeds reached the target.

    .venv/bin/python benchmarks/train_targets.py [--envs CartPole-v1 Acrobot-v1] [--seeds 1 2 3] [--parallel 2]
    .venv/bin/python benchmarks/train_targets.py --envs Pendulum-v1 --tag ann -- --actor ann   # TD3's ANN-actor baseline

A run folder that already holds an unfinished checkpoint (a run cut off by the end of a session) is resumed
(``dsqn-train --resume``) instead of restarted, and a finished one is only reported: the same command, run again,
completes the set. Minutes and env steps/s are those of the last invocation that trained it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

TARGETS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "Pendulum-v1": -200.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(TARGETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--out", default="runs/targets")
    ap.add_argument("--tag", default="", help="name part of the run folders (<env>__<tag>__seed<s>), e.g. ann")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="further dsqn-train arguments (after --)")
    args = ap.parse_args()
    extra = [a for a in args.extra if a != "--"]
    exe = str(Path(sys.executable).with_name("dsqn-train"))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    jobs = [(e, s) for s in args.seeds for e in args.envs]
    running: list[tuple[str, int, subprocess.Popen, float, Path, object]] = []
    results = []
    while jobs or running:
        while jobs and len(running) < args.parallel:
            e, s = jobs.pop(0)
            out = Path(args.out) / (f"{e}__{args.tag}__seed{s}" if args.tag else f"{e}__seed{s}")
            cmd = [exe, "--env-id", e, "--seed", str(s), "--out", str(out), "--no-progress", *extra]
            if (out / "model.pt").is_file():
                final = json.loads(torch.load(out / "model.pt", weights_only=True)["final_eval_json"])
                if final:  # finished by an earlier invocation: only reported
                    ok = final["mean"] >= TARGETS.get(e, float("inf"))
                    results.append((e, s, final["mean"], float("nan"), ok))
                    print(f"{e} seed {s}: finished earlier: final eval over {final['episodes']} episodes "
                          f"{final['mean']:.1f} +- {final['std']:.1f} in {final['seconds'] / 60:.1f} min of its last "
                          f"invocation{'  [target met]' if ok else ''}", flush=True)
                    continue
                cmd = [exe, "--resume", str(out / "model.pt"), "--no-progress"]
                print(f"{e} seed {s}: resuming {out / 'model.pt'}", flush=True)
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "train.log", "a")
            running.append((e, s, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), time.time(), out, log))
        time.sleep(2)
        for job in list(running):
            e, s, proc, t0, out, log = job
            if proc.poll() is None:
                continue
            running.remove(job)
            log.close()
            minutes = (time.time() - t0) / 60
            if proc.returncode != 0:
                print(f"{e} seed {s}: dsqn-train failed (exit {proc.returncode}), see {out / 'train.log'}", flush=True)
                continue
            ck = torch.load(out / "model.pt", weights_only=True)
            final = json.loads(ck["final_eval_json"])
            best = float(ck["best_eval"])
            ok = final["mean"] >= TARGETS.get(e, float("inf"))
            results.append((e, s, final["mean"], minutes, ok))
            sps = final["env_steps"] / max(1e-9, minutes * 60)
            print(f"{e} seed {s}: best periodic eval {best:.1f}, final eval over {final['episodes']} episodes "
                  f"{final['mean']:.1f} +- {final['std']:.1f}, {minutes:.1f} min ({sps:.0f} env steps/s)"
                  f"{'  [target met]' if ok else ''}", flush=True)
    for e in args.envs:
        rs = [r for r in results if r[0] == e]
        print(f"{e}: {sum(r[4] for r in rs)}/{len(rs)} seeds at or above {TARGETS.get(e)}; "
              f"minutes per run {', '.join(f'{r[3]:.1f}' for r in rs)}")


if __name__ == "__main__":
    main()
