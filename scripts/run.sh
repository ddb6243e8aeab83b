#!/usr/bin/env bash
# Set up the environment if it is missing, then run the demo or the tests.
#   bash scripts/run.sh demo   train a CartPole DSQN (small budget), export it, deploy it on the Lava simulator
#   bash scripts/run.sh test   ruff, then the test suite in two lanes:
#                              lava lane: Python 3.10 + the lava extra (.venv), every test, Lava required
#                              core lane: Python 3.11 + a current CPU torch, no lava (.venv-core), the core tests
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
CORE_VENV="$ROOT/.venv-core"
CORE_TORCH=${CORE_TORCH:-torch==2.13.0}

find_python310() {
    for cand in python3.10 /root/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
            command -v "$cand"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        pyenv install -s 3.10 >&2 && for p in "$(pyenv root)"/versions/3.10*/bin/python3.10; do echo "$p"; return 0; done
    fi
    echo "error: Python 3.10 is required (lava-nc 0.10 and lava-dl 0.6 support only 3.10); install python3.10" >&2
    return 1
}

ensure_env() {
    local stamp="$VENV/.dsqn-installed"
    local want
    want=$(sha256sum pyproject.toml | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import dsqn, lava.lib.dl.netx' 2>/dev/null; then
        return 0
    fi
    local py
    py=$(find_python310)
    echo "setting up $VENV with $py (lava-dl pins torch 2.3: several GB of CUDA wheels, a few minutes)" >&2
    [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev,lava]"
    echo "$want" > "$stamp"
}

find_python311() {
    for cand in python3.11 /root/.pyenv/versions/3.11*/bin/python3.11 /usr/local/bin/python3.11 /usr/bin/python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] >= (3, 11)' 2>/dev/null; then
            command -v "$cand"; return 0
        fi
    done
    echo "error: the core lane needs Python >= 3.11" >&2
    return 1
}

ensure_core_env() {
    # The core without lava, on a current interpreter and torch (a CPU build of torch 2.13 lies on this disk).
    local stamp="$CORE_VENV/.dsqn-installed"
    local want
    want=$( (sha256sum pyproject.toml; echo "$CORE_TORCH triton") | sha256sum | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$CORE_VENV/bin/python" -c 'import dsqn, numba, torch' 2>/dev/null; then
        return 0
    fi
    local py
    py=$(find_python311)
    echo "setting up $CORE_VENV with $py and $CORE_TORCH (core lane, no lava)" >&2
    [ -x "$CORE_VENV/bin/python" ] || "$py" -m venv "$CORE_VENV"
    "$CORE_VENV/bin/python" -m pip install -q --upgrade pip
    "$CORE_VENV/bin/python" -m pip install -q "$CORE_TORCH"
    "$CORE_VENV/bin/python" -m pip install -q -e ".[dev]"
    # Triton's interpreter runs the CUDA kernels on the CPU in a test (CPU builds of torch do not bring Triton)
    "$CORE_VENV/bin/python" -m pip install -q triton || echo "warning: triton did not install; its interpreter test is skipped" >&2
    echo "$want" > "$stamp"
}

ensure_chromium() {
    # The HTML report is checked in a real headless browser: Debian's chromium.
    command -v chromium >/dev/null 2>&1 && return 0
    echo "installing Debian's chromium for the browser test" >&2
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true
    elif command -v sudo >/dev/null 2>&1; then
        (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true
    fi
    command -v chromium >/dev/null 2>&1 || echo "warning: chromium is not installed; the browser test will be skipped" >&2
}

ensure_postgres() {
    # tests/test_sweep.py runs two dsqn-sweep workers on one study in a throwaway PostgreSQL cluster (initdb + pg_ctl
    # in a temp dir on a loopback port, started and stopped by the test): Debian's postgresql, no cluster of its own.
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
    echo "installing Debian's postgresql for the sweep test" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "warning: postgresql is not installed; the PostgreSQL sweep test will be skipped" >&2; return 0; }
        sudo="sudo"
    fi
    $sudo mkdir -p /etc/postgresql-common/createcluster.d || true
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/dsqn-no-main.conf >/dev/null || true
    ($sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || true
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo "warning: postgresql is not installed; the PostgreSQL sweep test will be skipped" >&2
}

cmd=${1:-}
shift || true
case "$cmd" in
    demo)
        ensure_env
        OUT=${DEMO_DIR:-demo}
        mkdir -p "$OUT"
        export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
        "$VENV/bin/dsqn-train" --env-id CartPole-v1 --total-timesteps "${DEMO_STEPS:-15000}" --out "$OUT" "$@"
        "$VENV/bin/dsqn-export" "$OUT/model.pt"
        "$VENV/bin/dsqn-deploy" "$OUT/model.net" --backend sim --episodes 2 --max-steps 200 --report "$OUT/report.sim.json"
        ;;
    test)
        ensure_env
        ensure_core_env
        ensure_chromium
        ensure_postgres
        export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
        "$VENV/bin/ruff" check dsqn train export deploy hw_sim report tests benchmarks sweep scripts
        echo "== lava lane: Python 3.10, lava-nc 0.10, lava-dl 0.6, torch 2.3 (all tests)" >&2
        DSQN_REQUIRE_LAVA=1 "$VENV/bin/python" -m pytest "$@"
        echo "== core lane: $("$CORE_VENV/bin/python" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}")'), no lava" >&2
        "$CORE_VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: bash scripts/run.sh demo|test [extra args]" >&2
        exit 2
        ;;
esac
