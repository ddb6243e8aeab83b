#!/usr/bin/env bash
# A finished TD3 run's evidence into results/<name>/: the exported actor (model.net), the emulator replay of the
# final evaluation's 20 episodes (report.emu.json: returns, per-layer activity, energy beside the ANN), a bounded
# run on the Lava simulator (report.sim.json), both with the step-by-step check against model.pt (--compare: the
# reports' "fidelity"), config and metrics.
#   bash scripts/td3_results.sh runs/targets/HalfCheetah-v5__seed1 results/HalfCheetah-v5__td3__seed1 [SIM_STEPS]
# Needs .venv (the lava extra: the stock-netx re-read at export, the simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?run folder}; OUT=${2:?results folder}; SIM_STEPS=${3:-100}
PY=.venv/bin/python
mkdir -p "$OUT"
cp "$RUN/config.json" "$RUN/metrics.csv" "$OUT/"
.venv/bin/dsqn-export "$RUN/model.pt" -o "$OUT/model.net"
# the final evaluation's own episodes: train/runner.py seeds them from 20,000,000; their count is in the checkpoint
SEED=20000000
EPISODES=$("$PY" -c 'import json, sys, torch; print(json.loads(torch.load(sys.argv[1], weights_only=True, map_location="cpu")["final_eval_json"])["episodes"])' "$RUN/model.pt")
# the emulator replay in the venv that trained (.venv-core): MuJoCo 4.0 there, 3.x in .venv; the physics differ between
# them, so only the training's own MuJoCo replays its episodes (the per-step action check below holds in either)
EMU=.venv-core/bin/dsqn-deploy; [ -x "$EMU" ] || EMU=.venv/bin/dsqn-deploy
# --compare: in the same pass, the trained model's action beside the deployed network's on every step (report "fidelity")
"$EMU" "$OUT/model.net" --backend emu --episodes "$EPISODES" --seed "$SEED" --compare "$RUN/model.pt" --report "$OUT/report.emu.json"
.venv/bin/dsqn-deploy "$OUT/model.net" --backend sim --episodes 1 --seed "$SEED" --max-steps "$SIM_STEPS" \
    --compare "$RUN/model.pt" --report "$OUT/report.sim.json"
