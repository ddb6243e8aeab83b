"""One trial as subprocesses of the console scripts: dsqn-train (polled, prunable), dsqn-export, dsqn-deploy --backend emu.

Decoupled from train/ internals: what a trial reads back is the run folder's metrics.csv (rows ``eval_return`` are
the periodic greedy evaluations, ``final_eval_return`` the final one), its config.json and the deploy report JSON.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# dsqn-train's final evaluation runs episodes seeded 20_000_000, 20_000_001, ... (train/dqn.py); deploying over the
# same seeds makes the emulator play exactly the episodes the final greedy return was measured on.
FINAL_EVAL_SEED = 20_000_000
_PR_SET_PDEATHSIG = 1


def script(name: str) -> list[str]:
    """The console script beside this interpreter (works in either venv), else the module through this python."""
    sib = Path(sys.executable).with_name(name)
    if sib.exists():
        return [str(sib)]
    module = {"dsqn-train": "dsqn.train.cli", "dsqn-export": "dsqn.export.cli", "dsqn-deploy": "dsqn.deploy.cli"}[name]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def _child_setup() -> None:
    # Own process group (a prune signals the whole group), and die with the worker: a SIGKILLed worker leaves no
    # orphan training run behind (Linux PR_SET_PDEATHSIG; elsewhere the child just runs to its end).
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def read_metrics(path: Path) -> tuple[list[tuple[int, float]], float | None]:
    """(eval curve [(step, mean return)], final greedy return or None) from a run's metrics.csv so far."""
    curve: list[tuple[int, float]] = []
    final = None
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    kind, step, value = row["kind"], int(row["step"]), float(row["value"])
                except (KeyError, TypeError, ValueError):
                    continue  # a row still being written
                if kind == "eval_return":
                    curve.append((step, value))
                elif kind == "final_eval_return":
                    final = value
    except FileNotFoundError:
        pass
    return curve, final


@dataclass
class TrialResult:
    state: str  # "complete", "pruned", "fail"
    curve: list[tuple[int, float]] = field(default_factory=list)
    final_return: float | None = None
    energy_nj: float | None = None
    emu_return: float | None = None
    inferences: int | None = None
    error: str = ""
    seconds: float = 0.0


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _run_step(argv: list[str], log: Path, what: str) -> str:
    """Run one of export/deploy to completion; '' on success, else the one-line reason."""
    with open(log, "ab") as fh:
        fh.write(("$ " + shlex.join(argv) + "\n").encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        try:
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return "" if rc == 0 else f"{what} exited {rc}: {_last_line(log)}"


class TrialLog:
    """The trial's sweep.log. dsqn-train refuses a non-empty run folder, so the log starts beside the trial folder
    (``trial_NNNN.sweep.log``) and moves in once dsqn-train has made the folder (its check is behind it then); the
    open file goes on being written through the rename."""

    def __init__(self, trial_dir: Path) -> None:
        self.trial_dir = trial_dir
        self.path = trial_dir.with_name(f"{trial_dir.name}.sweep.log")

    def settle(self, make: bool = False) -> None:
        """Move the log into the trial folder once it exists (``make``: make it first: the run is over)."""
        if make:
            self.trial_dir.mkdir(parents=True, exist_ok=True)
        if self.path.parent != self.trial_dir and self.trial_dir.is_dir():
            os.replace(self.path, self.trial_dir / "sweep.log")
            self.path = self.trial_dir / "sweep.log"


def run_trial(train_argv: list[str], trial_dir: Path, profile: str,
              on_eval: Callable[[list[tuple[int, float]]], bool], poll_s: float = 1.0) -> TrialResult:
    """Train (``train_argv`` are dsqn-train's options, with --out trial_dir), calling ``on_eval(curve)`` after each
    new periodic evaluation; when it returns True the run's process group gets SIGTERM (pruned). A completed run
    is exported and deployed on the emulator over its final evaluation's episodes for the energy per inference."""
    t0 = time.time()
    trial_log = TrialLog(trial_dir)
    argv = script("dsqn-train") + train_argv
    metrics = trial_dir / "metrics.csv"
    seen = 0
    pruned = False
    with open(trial_log.path, "ab") as fh:
        fh.write(("$ " + shlex.join(argv) + "\n").encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_child_setup, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            while True:
                try:
                    rc = proc.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    pass
                trial_log.settle()
                curve, _ = read_metrics(metrics)
                if len(curve) > seen and not pruned:
                    seen = len(curve)
                    if on_eval(curve):
                        pruned = True
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGTERM)
        except BaseException:
            # the worker itself is stopping (Ctrl-C, SIGTERM): stop the run first
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
        finally:
            trial_log.settle(make=True)
    log = trial_log.path
    curve, final = read_metrics(metrics)
    if pruned:
        return TrialResult("pruned", curve, seconds=time.time() - t0)
    if rc != 0 or final is None:
        return TrialResult("fail", curve, error=f"dsqn-train exited {rc}: {_last_line(log)}", seconds=time.time() - t0)
    err = _run_step(script("dsqn-export") + [str(trial_dir / "model.pt")], log, "dsqn-export")
    if err:
        return TrialResult("fail", curve, final, error=err, seconds=time.time() - t0)
    try:
        cfg = json.loads((trial_dir / "config.json").read_text())
        episodes, max_steps = int(cfg["final_eval_episodes"]), int(cfg.get("eval_max_steps", 0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return TrialResult("fail", curve, final, error=f"config.json unreadable: {exc}", seconds=time.time() - t0)
    report = trial_dir / "report.emu.json"
    err = _run_step(script("dsqn-deploy") + [str(trial_dir / "model.net"), "--backend", "emu", "--episodes", str(episodes),
                                             "--seed", str(FINAL_EVAL_SEED), "--max-steps", str(max_steps),
                                             "--epsilon", repr(float(cfg.get("eval_epsilon", 0.0))),
                                             "--profile", profile, "--report", str(report)], log, "dsqn-deploy")
    if err:
        return TrialResult("fail", curve, final, error=err, seconds=time.time() - t0)
    try:
        rep = json.loads(report.read_text())
        energy_nj = float(rep["energy"]["snn_energy_per_inference_pj"]) / 1000.0
        emu_return = float(rep["episodes"]["mean_return"])
        inferences = int(rep["energy"]["inferences"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return TrialResult("fail", curve, final, error=f"{report}: unreadable report: {exc}", seconds=time.time() - t0)
    return TrialResult("complete", curve, final, energy_nj, emu_return, inferences, seconds=time.time() - t0)
