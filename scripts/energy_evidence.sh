#!/usr/bin/env bash
# Issue 28's evidence: the same environment and seeds trained with and without --synop-penalty, each network
# exported and deployed on the emulator over fresh episodes under the Loihi 1 and Loihi 2 profiles.
#   bash scripts/energy_evidence.sh ENV_ID LAMBDA SEED [SEED ...]      (runs/e28/<env>__lam<λ><TAG>__s<seed>/)
# Environment: PY (default .venv-core/bin/python), EPISODES (default 100), RUNS (default runs/e28), EXTRA (more
# dsqn-train options, e.g. "--threshold 0.19" for a sweep's pick) with TAG (added to the run name, e.g. "__sweep").
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_ID=$1; LAM=$2; shift 2
PY=${PY:-.venv-core/bin/python}
BIN=$(dirname "$PY")
EPISODES=${EPISODES:-100}
RUNS=${RUNS:-runs/e28}
EXTRA=${EXTRA:-}
TAG=${TAG:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for SEED in "$@"; do
    RUN="$RUNS/${ENV_ID}__lam${LAM}${TAG}__s${SEED}"
    if [ ! -f "$RUN/model.pt" ] || [ ! -f "$RUN/model.net" ]; then
        "$BIN/dsqn-train" --env-id "$ENV_ID" --seed "$SEED" --synop-penalty "$LAM" $EXTRA --out "$RUN" --no-progress --overwrite
        "$BIN/dsqn-export" "$RUN/model.pt"
    fi
    # fresh episodes (seeds 30000000..), never seen by training's evaluations (10M + step, 20M..); --compare: the
    # trained model.pt plays beside the exported file and the report counts the steps where both chose the same action
    "$BIN/dsqn-deploy" "$RUN/model.net" --backend emu --episodes "$EPISODES" --seed 30000000 --no-progress \
        --compare "$RUN/model.pt" --report "$RUN/report.emu.json" > "$RUN/deploy.emu.txt"
    "$BIN/dsqn-deploy" "$RUN/model.net" --backend emu --episodes "$EPISODES" --seed 30000000 --no-progress \
        --profile loihi2-halapoint-estimate --report "$RUN/report.emu.loihi2.json" > "$RUN/deploy.emu.loihi2.txt"
done
