#!/usr/bin/env bash
# The Atari learning run of issue 12 on a lent GPU machine (the `device` tool): the spiking Q-network and the
# same-shape ANN Nature-DQN trained side by side, same game, preset and seed, then each exported network deployed on
# the bit-exact emulator over the final evaluation's 30 episodes (epsilon 0.05). That machine has python3 with torch,
# CUDA and Triton but no registry: the packages it lacks travel as wheels in .whl/ (made here first, see `wheels`).
#
#   bash scripts/device_atari.sh wheels                 here: .whl/ = this project's wheel + gymnasium, ale-py (py3.12)
#   bash scripts/device_atari.sh start GAME PRESET SEED  there: install the wheels, start both runs in their own sessions
#   bash scripts/device_atari.sh wait SECONDS            there: wait while they run, copy logs and metrics to $OUT
#   bash scripts/device_atari.sh finish                  there: export + emulator deploy with the step-by-step check, to $OUT
#
# Each `device` call may run 10 minutes and the machine goes back 30 s after a call, so `start` and the `wait`s must
# follow each other; what comes back (small files only) lies under $OUT/<net>/. Runs are written to /tmp/dsqn-atari.
# PY (default python3) and DEVICE (default cuda) may be overridden: NO_WHEELS=1 PY=.venv-core/bin/python DEVICE=cpu
# EXTRA="--total-steps 60 ..." is a dry run on this machine. `start` continues a run whose checkpoint is in $RUNS
# (its replay with it) unless FRESH=1, and leaves a finished one alone: on this 2-core CPU the 'cpu' preset runs
# over several sessions as
#   OMP_NUM_THREADS=1 RUNS=runs/atari NO_WHEELS=1 PY=.venv-core/bin/python DEVICE=cpu bash scripts/device_atari.sh start Krull cpu 1
# (the same command again after an interruption), then `... finish` with the same RUNS/PY/DEVICE and OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
RUNS=${RUNS:-/tmp/dsqn-atari}
OUT=${OUT:-/tmp/dsqn-atari-out}
NETS=${NETS:-"snn ann"}  # NETS=ann: one of the two runs only
EXTRA=${EXTRA:-}  # more dsqn-train options for both runs (a dry run's small budget)

train() { "$PY" -c 'import sys; from dsqn.train.cli import main; sys.exit(main())' "$@"; }
export_() { "$PY" -c 'import sys; from dsqn.export.cli import main; sys.exit(main())' "$@"; }
deploy() { "$PY" -c 'import sys; from dsqn.deploy.cli import main; sys.exit(main())' "$@"; }

collect() {  # the small files of each run (not model.pt or the replay) into $OUT/<net>/
    for net in $NETS; do
        mkdir -p "$OUT/$net"
        for f in config.json metrics.csv train.log model.net report.emu.json final_eval.json export.log deploy.log; do
            [ -f "$RUNS/$net/$f" ] && cp "$RUNS/$net/$f" "$OUT/$net/$f"
        done
    done
    return 0
}

case "${1:-}" in
wheels)
    # Run here (where pip reaches the registry). Versions: those this project's core lane resolves.
    mkdir -p .whl
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    rm -f .whl/*.whl
    "${PIP:-.venv-core/bin/pip}" wheel --no-deps --no-build-isolation -q -w .whl .
    for pkg in gymnasium farama-notifications ale-py; do
        ver=$(.venv-core/bin/python -c "import importlib.metadata as m; print(m.version('$pkg'))")
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d .whl "$pkg==$ver"
    done
    ls -la .whl
    ;;
start)
    GAME=${2:?game}; PRESET=${3:-data-efficient}; SEED=${4:-1}
    if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl > /dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    mkdir -p "$RUNS"
    started=""
    for net in $NETS; do
        ckpt="$RUNS/$net/run/model.pt"
        pid=$(cat "$RUNS/$net/pid" 2> /dev/null || true)
        if [ -n "$pid" ] && grep -q "dsqn.train.cli" "/proc/$pid/cmdline" 2> /dev/null; then
            echo "$net: still running (pid $pid), left alone"; continue  # a second writer would corrupt the run
        fi
        if [ -z "${FRESH:-}" ] && [ -f "$ckpt" ]; then  # a run cut off earlier continues with its replay
            state=$("$PY" -c "import json, sys, torch; c = torch.load(sys.argv[1], weights_only=True, map_location='cpu'); \
print('finished' if json.loads(c['final_eval_json']) else 'step %d' % c['step'])" "$ckpt")
            if [ "$state" = finished ]; then echo "$net: finished earlier ($ckpt)"; continue; fi
            echo "$net: resuming $ckpt at $state"
            args=(--resume "$ckpt" --device "$DEVICE" --no-progress)
        else
            rm -rf "${RUNS:?}/$net"
            mkdir -p "$RUNS/$net"
            # shellcheck disable=SC2206
            args=(--env-id "$GAME" --preset "$PRESET" --seed "$SEED" --qnet "$net" --device "$DEVICE" --out "$RUNS/$net/run"
                  --no-progress $EXTRA)
        fi
        # own process session: it outlives this call while the machine is held
        PYTHONPATH=${PYTHONPATH:-} PYTHONUNBUFFERED=1 setsid nohup "$PY" -c \
            'import sys; from dsqn.train.cli import main; sys.exit(main())' "${args[@]}" \
            >> "$RUNS/$net/train.log" 2>&1 < /dev/null &
        echo "$!" > "$RUNS/$net/pid"
        started="$started $net"
    done
    if [ -n "$started" ]; then echo "started$started on $GAME ($PRESET, seed $SEED, device $DEVICE) in $RUNS"; fi
    ;;
wait)
    trap collect EXIT
    LIMIT=${2:-540}
    t0=$(date +%s)
    while [ $(( $(date +%s) - t0 )) -lt "$LIMIT" ]; do
        alive=0
        for net in $NETS; do kill -0 "$(cat "$RUNS/$net/pid")" 2> /dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 10
    done
    for net in $NETS; do
        cp "$RUNS/$net/run/metrics.csv" "$RUNS/$net/metrics.csv" 2> /dev/null || true
        cp "$RUNS/$net/run/config.json" "$RUNS/$net/config.json" 2> /dev/null || true
        state=finished; kill -0 "$(cat "$RUNS/$net/pid")" 2> /dev/null && state=running
        echo "$net: $state; $(grep -c eval_return "$RUNS/$net/metrics.csv" 2> /dev/null || echo 0) evaluations;" \
             "last log line: $(tail -n 1 "$RUNS/$net/train.log" 2> /dev/null)"
    done
    collect
    ;;
finish)
    trap collect EXIT  # the logs come back even when a step fails
    [ -d /tmp/site ] && export PYTHONPATH=/tmp/site
    for net in $NETS; do
        run="$RUNS/$net/run"
        "$PY" - "$run/model.pt" "$RUNS/$net/final_eval.json" <<'EOF'
import json, sys, torch
ckpt = torch.load(sys.argv[1], weights_only=True, map_location="cpu")
with open(sys.argv[2], "w") as f:
    json.dump({"step": ckpt["step"], "final_eval": json.loads(ckpt["final_eval_json"])}, f, indent=1)
EOF
        cp "$run/metrics.csv" "$run/config.json" "$RUNS/$net/"
        [ "$net" = ann ] && continue  # the ANN baseline has no spiking network to export
        export_ "$run/model.pt" --out "$RUNS/$net/model.net" > "$RUNS/$net/export.log" 2>&1
        # the final evaluation's own episodes: its seeds, epsilon, episode count and step cap
        read -r n eps cap < <("$PY" -c "import json; c = json.load(open('$run/config.json')); \
print(c['final_eval_episodes'], c['eval_epsilon'], c['eval_max_steps'])")
        # in the same pass, the deployed network's own action compared with the trained model's at every step
        # (--compare: the report's "fidelity" and the line "the trained model ... chose the same action on N/N steps")
        deploy "$RUNS/$net/model.net" --backend emu --episodes "$n" --seed 20000000 --epsilon "$eps" --max-steps "$cap" \
            --compare "$run/model.pt" --report "$RUNS/$net/report.emu.json" > "$RUNS/$net/deploy.log" 2>&1
        tail -n 12 "$RUNS/$net/deploy.log"
    done
    collect
    ls -R "$OUT"
    ;;
*)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
