"""Atari through the same chain: a tiny Breakout DSQN (Nature-DQN layout) is trained, exported, and
played from the exported file on the emulator and the Lava simulator, which agree exactly."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dsqn.deploy.closed_loop import make_policy, run_episodes
from dsqn.files.checkpoint import load_checkpoint, model_from_checkpoint
from dsqn.files.netfile_read import read_netfile
from dsqn.stats import human_normalized
from dsqn.train.config import make_config

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_paper_hyperparameters_are_the_atari_default():
    cfg = make_config(env_id="Pong")
    assert (cfg.arch, cfg.snn_steps, cfg.lr, cfg.batch_size, cfg.buffer_size) == ("nature", 64, 1e-4, 32, 1_000_000)
    assert (cfg.learning_starts, cfg.target_update, cfg.train_freq, cfg.eps_end, cfg.eval_epsilon) == (50_000, 10_000, 4, 0.1, 0.05)
    assert cfg.eps_decay_steps == 1_000_000  # epsilon 1 -> 0.1 over 1M steps, whatever the budget
    assert make_config(env_id="Pong", snn_steps=16).snn_steps == 16
    assert human_normalized("ALE/Breakout-v5", 30.5) == pytest.approx(1.0)
    assert human_normalized("Pong", -20.7) == pytest.approx(0.0)


def test_data_efficient_preset_and_reference_scores():
    from dsqn.envs import PAPER_GAMES
    from dsqn.errors import UserError
    from dsqn.stats import HUMAN_RANDOM

    cfg = make_config(env_id="Krull", preset="data-efficient")
    assert (cfg.preset, cfg.snn_steps, cfg.total_timesteps, cfg.learning_starts, cfg.train_freq, cfg.target_update) == \
        ("data-efficient", 8, 100_000, 1_600, 1, 2_000)
    assert (cfg.n_step, cfg.eps_end, cfg.eps_decay_steps, cfg.final_eval_episodes, cfg.eval_epsilon) == \
        (10, 0.01, 5_000, 30, 0.05)
    assert make_config(env_id="Krull", preset="data-efficient", snn_steps=16).snn_steps == 16
    cpu = make_config(env_id="Krull", preset="cpu")
    assert dataclasses.replace(cpu, preset="data-efficient", train_freq=1, out=cfg.out) == cfg  # only the replay ratio differs
    short = make_config(env_id="Krull", preset="cpu-session")
    assert short.total_timesteps == 40_000 and short.eps_decay_steps == 5_000
    assert dataclasses.replace(short, preset="cpu", total_timesteps=100_000, eval_episodes=10, out=cpu.out) == cpu
    assert {make_config(env_id="Krull", preset=p).eval_max_steps
            for p in ("paper", "data-efficient", "cpu", "cpu-session")} == {4_500}  # 5 minutes of play (Mnih et al. 2015)
    assert make_config(env_id="Krull").preset == "paper"
    with pytest.raises(UserError, match="--preset fast: unknown"):
        make_config(env_id="Krull", preset="fast")
    with pytest.raises(UserError, match="--preset paper: presets are Atari"):
        make_config(env_id="CartPole-v1", preset="paper")
    assert set(HUMAN_RANDOM) == set(PAPER_GAMES) and len(PAPER_GAMES) == 17
    assert human_normalized("Krull", 2665.5) == pytest.approx(1.0) and human_normalized("VideoPinball", 16256.9) == 0.0


def test_calibrated_init_wakes_the_nature_networks_deeper_layers():
    """The plain init of the 8-bit Nature network leaves its last hidden layer silent (Q equal for every frame);
    the Atari presets' --init-rate 0.1 scales each layer's initial weights to fire at ~0.1 on a seeded random rollout."""
    import numpy as np
    import torch

    from dsqn.envs import make_env
    from dsqn.layers.qnet import SpikingQNet
    from dsqn.train.dqn import build, calibrate

    cfg = make_config(env_id="Krull", preset="cpu-session")
    assert cfg.init_rate == 0.1 and make_config(env_id="CartPole-v1").init_rate == 0.0
    torch.manual_seed(3)
    _, spec, encoder = build(dataclasses.replace(cfg, init_rate=0.0))
    plain = SpikingQNet(spec)
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    env = make_env("Krull")
    frames, rng = [], np.random.default_rng(0)
    obs, _ = env.reset(seed=5)
    for t in range(96):
        obs, *_ = env.step(int(rng.integers(env.action_space.n)))
        if t % 6 == 0:
            frames.append(np.asarray(obs))
    x = torch.from_numpy(np.stack(frames).astype(np.float32))  # other frames than the calibration's own
    with torch.no_grad():
        q, spikes, _ = plain(x, return_spikes=True)
    assert spikes[-1].sum().item() == 0 and torch.equal(q, q[:1].expand_as(q))  # silent: Q ignores the frame
    gains = calibrate(plain, cfg, env, encoder)
    env.close()
    assert len(gains) == 4 and all(g > 1.0 for g in gains)
    with torch.no_grad():
        q, spikes, _ = plain(x, return_spikes=True)
    rates = [s.float().mean().item() for s in spikes]
    assert all(0.05 < r < 0.2 for r in rates), rates
    assert q.std(dim=0).min().item() > 0  # Q now depends on the frame for every action
    for (name, before), after in zip(state.items(), plain.state_dict().values()):
        if "synapse.weight" in name and "readout" not in name:
            assert not torch.equal(before, after)  # scaled ...
            ratio = after[before != 0] / before[before != 0]
            assert torch.allclose(ratio, ratio[0].expand_as(ratio))  # ... by one gain per layer
        else:
            assert torch.equal(before, after), name
    with pytest.raises(Exception, match="--init-rate 1.0"):
        make_config(env_id="Krull", init_rate=1.0)


def test_unknown_game_lists_the_papers_games(tmp_path: Path):
    r = _train("--env-id", "ALE/Breakot-v5", "--out", str(tmp_path / "x"))
    line = error_line(r)
    assert r.returncode == 2 and "ALE/Breakot-v5" in line and "Atlantis, BeamRider" in line and "VideoPinball" in line
    r = _train("--env-id", "Brekout", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "did you mean Breakout?" in error_line(r)
    assert not (tmp_path / "x").exists()


@pytest.mark.lava
def test_breakout_train_export_deploy(tmp_path: Path):
    r = subprocess.run([str(BIN / "dsqn-train"), "--env-id", "Breakout", "--total-steps", "60", "--learning-starts", "30",
                        "--batch-size", "2", "--snn-steps", "8", "--eval-every", "60", "--eval-episodes", "1",
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

    # the evaluation protocol's epsilon-greedy episodes: at every step the deployed network's own action (before
    # epsilon-greedy replaces it) is the trained model's argmax, and some executed actions are the random ones
    model = model_from_checkpoint(load_checkpoint(tmp_path / "model.pt"), tmp_path / "model.pt")[0]
    own, trained = [], []

    def on_step(obs, payload, action, q):  # type: ignore[no-untyped-def]
        own.append(int(action))
        trained.append(int(model.policy_actions(torch.from_numpy(payload.astype(np.float32))[None])[0]))

    policy = make_policy(read_netfile(tmp_path / "model.net"), "emu")
    try:
        log = run_episodes(policy, "Breakout", 1, 20_000_000, max_steps=12, record_actions=True, on_step=on_step,
                           epsilon=0.5)
    finally:
        policy.close()
    assert own == trained and len(own) == 12
    assert log.actions[0] != own


TINY_ATARI = ["--env-id", "Breakout", "--learning-starts", "30", "--batch-size", "2", "--snn-steps", "8", "--eval-every", "1000",
              "--eval-episodes", "1", "--final-eval-episodes", "1", "--eval-max-steps", "20", "--buffer-size", "1000",
              "--checkpoint-every", "40", "--n-step", "3", "--no-progress"]


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dsqn-train"), *args], capture_output=True, text=True, timeout=600, env=ENV)


def error_line(r: subprocess.CompletedProcess) -> str:
    """The one error line (ALE prints its banner to stderr first)."""
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("A.L.E:", "[Powered by Stella]"))]
    assert len(lines) == 1 and lines[0].startswith("dsqn-train: error: "), r.stderr
    return lines[0]


def test_sigkilled_atari_run_resumes_with_its_frame_replay(tmp_path: Path):
    """A Breakout run is SIGKILLed after a checkpoint; --resume refills the frame store from the file model.pt names
    (the frames stored before the kill are the first frames of the resumed run's memory), and a replay file that
    is missing or belongs to another run is refused in one line."""
    import signal
    import time

    import numpy as np
    import torch

    run = tmp_path / "run"
    proc = subprocess.Popen([str(BIN / "dsqn-train"), *TINY_ATARI, "--total-steps", "100000", "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 300
        while not (run / "model.pt").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = torch.load(run / "model.pt", weights_only=True)
    rec, step = ckpt["replay"], ckpt["step"]
    assert step % 40 == 0 and step >= 40 and rec["file"] == f"replay-{step}-{rec['token']}.npz"
    # the file model.pt names; at most one other: a newer one whose model.pt the kill prevented (removed on resume)
    files = sorted(p.name for p in run.glob("replay-*.npz"))
    assert rec["file"] in files and len(files) <= 2 and all(int(f.split("-")[1]) >= step for f in files), files
    with np.load(run / rec["file"]) as z:
        before = {k: z[k].copy() for k in ("frames", "actions", "rewards", "dones")}
    n0 = len(before["frames"])
    assert n0 == rec["transitions"] and n0 > step  # each frame once, plus one reset frame per episode

    # another run's replay under the named file: refused, nothing written
    other = tmp_path / "other"
    r = _train(*TINY_ATARI, "--env-id", "Pong", "--total-steps", "40", "--out", str(other))
    assert r.returncode == 0, r.stderr[-2000:]
    saved = (run / rec["file"]).read_bytes()
    (run / rec["file"]).write_bytes(next(other.glob("replay-*.npz")).read_bytes())
    r = _train("--resume", str(run / "model.pt"), "--total-steps", str(step + 40), "--no-progress")
    assert r.returncode == 2 and "replay memory does not match" in error_line(r) and "env_id 'Pong'" in error_line(r)
    (run / rec["file"]).unlink()
    r = _train("--resume", str(run / "model.pt"), "--total-steps", str(step + 40), "--no-progress")
    assert r.returncode == 2 and "is missing" in error_line(r)
    assert torch.load(run / "model.pt", weights_only=True)["step"] == step  # refusals leave the checkpoint alone

    (run / rec["file"]).write_bytes(saved)
    r = _train("--resume", str(run / "model.pt"), "--total-steps", str(step + 40), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    end = torch.load(run / "model.pt", weights_only=True)
    assert end["step"] == step + 40
    files = sorted(p.name for p in run.glob("replay-*.npz"))
    assert files == [end["replay"]["file"]] and not list(run.glob(".*.tmp*"))
    with np.load(run / files[0]) as z:
        for k, v in before.items():
            assert np.array_equal(z[k][:n0], v), k  # the replay carried over the kill
        assert len(z["frames"]) > n0 + 40


def test_ann_nature_dqn_baseline_trains_in_the_same_loop_and_is_not_exported(tmp_path: Path):
    """--qnet ann: Mnih et al.'s Nature-DQN of the same shape, trained by the same loop and settings (its replay,
    n-step targets and checkpoints); export refuses it in one line."""
    import torch

    from dsqn.train.dqn import AnnQNet, build

    run = tmp_path / "ann"
    r = _train(*TINY_ATARI, "--total-steps", "60", "--qnet", "ann", "--out", str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = torch.load(run / "model.pt", weights_only=True)
    shapes = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
    assert shapes == {"convs.0.weight": (32, 4, 8, 8), "convs.0.bias": (32,), "convs.2.weight": (64, 32, 4, 4),
                      "convs.2.bias": (64,), "convs.4.weight": (64, 64, 3, 3), "convs.4.bias": (64,),
                      "head.0.weight": (512, 3136), "head.0.bias": (512,), "head.2.weight": (4, 512), "head.2.bias": (4,)}
    assert ckpt["step"] == 60 and ckpt["replay"]["file"].startswith("replay-60-")
    _, spec, _ = build(make_config(env_id="Breakout"))
    q = AnnQNet(spec)(torch.zeros(2, 4, 84, 84))
    assert q.shape == (2, 4)
    r = subprocess.run([str(BIN / "dsqn-export"), str(run / "model.pt")], capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "ANN baseline (dsqn-train --qnet ann)" in r.stderr, r.stderr
    assert not (run / "model.net").exists()


def test_score_summary_names_the_reference_scores_and_the_interval():
    from dsqn.stats import mean_ci95, score_summary

    rets = [1598.0 + 100.0 * k for k in range(10)]  # Krull: random 1598, human 2665.5
    s = score_summary("Krull", rets)
    assert s["mean"] == 2048.0 and s["human_normalized"] == pytest.approx(450.0 / 1067.5)
    assert s["ci95"] == list(mean_ci95(rets)) and s["ci95"][0] > 1598.0 and s["ci_excludes_random"] is True
    assert s["random_score"] == 1598.0 and s["human_score"] == 2665.5 and "dqn_zoo" in s["reference_source"]
    near = score_summary("Krull", [1500.0, 1700.0] * 5)
    assert near["ci_excludes_random"] is False  # mean 1600, the interval straddles the random score
    assert mean_ci95([5.0]) == (5.0, 5.0) and mean_ci95(rets) == mean_ci95(list(rets))
