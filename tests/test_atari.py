"""Atari through the same chain: a tiny Breakout DSQN (Nature-DQN layout) is trained, exported, and
played from the exported file on the emulator and the Lava simulator, which agree exactly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from dsqn.envs import human_normalized
from dsqn.train.config import TrainConfig, resolve

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_paper_hyperparameters_are_the_atari_default():
    cfg = resolve(TrainConfig(env_id="Pong"), set())
    assert (cfg.arch, cfg.timesteps, cfg.lr, cfg.batch_size, cfg.buffer_size) == ("nature", 64, 1e-4, 32, 1_000_000)
    assert (cfg.learning_starts, cfg.target_update, cfg.train_freq, cfg.eps_end, cfg.eval_epsilon) == (50_000, 10_000, 4, 0.1, 0.05)
    assert cfg.eps_fraction * cfg.total_steps == pytest.approx(1_000_000)
    assert resolve(TrainConfig(env_id="Pong", timesteps=16), {"timesteps"}).timesteps == 16
    assert human_normalized("ALE/Breakout-v5", 30.5) == pytest.approx(1.0)
    assert human_normalized("Pong", -20.7) == pytest.approx(0.0)


@pytest.mark.lava
def test_breakout_train_export_deploy(tmp_path: Path):
    r = subprocess.run([str(BIN / "dsqn-train"), "--env-id", "Breakout", "--total-steps", "60", "--learning-starts", "30",
                        "--batch-size", "2", "--timesteps", "8", "--eval-every", "60", "--eval-episodes", "1",
                        "--final-eval-episodes", "1", "--eval-max-steps", "20", "--buffer-size", "200", "--out", str(tmp_path),
                        "--no-progress"], capture_output=True, text=True, timeout=900, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(BIN / "dsqn-export"), str(tmp_path / "model.pt")], capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    with h5py.File(tmp_path / "model.net") as f:
        kinds = [f[f"layer/{i}/type"][0].decode() for i in range(len(f["layer"]))]
        assert kinds == ["input", "conv", "conv", "conv", "flatten", "dense", "dense"]
        assert json.loads(f.attrs["dsqn_meta"])["encoder"]["kind"] == "pixels"
    reports = {}
    for backend in ("emu", "sim"):
        rep = tmp_path / f"{backend}.json"
        r = subprocess.run([str(BIN / "dsqn-deploy"), str(tmp_path / "model.net"), "--backend", backend, "--episodes", "1",
                            "--max-steps", "3", "--report", str(rep)], capture_output=True, text=True, timeout=600, env=ENV)
        assert r.returncode == 0, r.stderr[-2000:]
        reports[backend] = json.loads(rep.read_text())
    for a, b in zip(reports["sim"]["energy"]["layers"], reports["emu"]["energy"]["layers"]):
        assert (a["synops"], a["spikes"]) == (b["synops"], b["spikes"])
    assert reports["sim"]["energy"]["ann"]["macs_per_inference"] > 3_000_000
