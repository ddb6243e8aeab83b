"""The console scripts end to end on a tiny budget, and their answers to bad input."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import HAVE_LAVA

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def lava_children_left(pgid: int) -> list[str]:
    """Live processes of a process group (zombies, already dead and waiting to be reaped by init, are not counted)."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[1] == str(pgid) and not line.split()[2].startswith("Z")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run")
    r = run(["dsqn-train", "--env-id", "CartPole-v1", "--total-steps", "400", "--learning-starts", "100",
             "--eval-every", "200", "--eval-episodes", "2", "--final-eval-episodes", "2", "--hidden", "16", "16",
             "--out", str(d), "--no-progress"], d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (d / "model.pt").is_file()
    assert (d / "metrics.csv").read_text().count("eval_return") >= 2
    assert list((d / "tb").iterdir()), "tensorboard events written"
    return d / "model.pt"


@pytest.fixture(scope="module")
def exported(trained: Path) -> Path:
    r = run(["dsqn-export", str(trained)], trained.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "vThMant" in r.stdout and "readout" in r.stdout
    out = trained.with_suffix(".net")
    with h5py.File(out) as f:
        meta = json.loads(f.attrs["dsqn_meta"])
    assert meta["env_id"] == "CartPole-v1" and meta["n_actions"] == 2
    assert len(meta["source_checkpoint_sha256"]) == 64
    return out


@pytest.mark.lava
def test_train_export_deploy_sim_and_emu_agree(exported: Path):
    reports = {}
    for backend in ("sim", "emu"):
        rep = exported.with_name(f"{backend}.json")
        r = run(["dsqn-deploy", str(exported), "--backend", backend, "--episodes", "2", "--max-steps", "40",
                 "--report", str(rep)], exported.parent)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "energy per inference" in r.stdout
        reports[backend] = json.loads(rep.read_text())
    sim, emu = reports["sim"], reports["emu"]
    assert sim["format"] == "dsqn-report" and sim["format_version"] == 1
    assert sim["episodes"]["returns"] == emu["episodes"]["returns"]
    # the counters of the Lava run and of the emulator agree exactly, layer by layer
    for a, b in zip(sim["energy"]["layers"], emu["energy"]["layers"]):
        for key in ("in_events", "synops", "neuron_updates", "spikes"):
            assert a[key] == b[key], (key, a, b)
    assert sim["energy"]["snn_energy_per_inference_pj"] > 0
    assert sim["energy"]["ann"]["macs_per_inference"] == 8 * 16 + 16 * 16 + 16 * 2


def test_resume_continues_a_run(trained: Path, tmp_path: Path):
    r = run(["dsqn-train", "--resume", str(trained), "--total-steps", "500", "--no-progress"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = torch.load(trained, weights_only=True)
    assert ckpt["step"] == 500


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = [line for line in r.stderr.splitlines() if line.strip() and "CUDA" not in line]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_export_bad_checkpoints(tmp_path: Path, trained: Path):
    missing = tmp_path / "nope.pt"
    _one_line_error(run(["dsqn-export", str(missing)], tmp_path), "no such file")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(trained.read_bytes()[:5000])
    _one_line_error(run(["dsqn-export", str(truncated)], tmp_path), "not a readable")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    _one_line_error(run(["dsqn-export", str(other)], tmp_path), "not a dsqn-train checkpoint")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": "dsqn-checkpoint", "x": Evil()}, f)
    _one_line_error(run(["dsqn-export", str(evil)], tmp_path), "refused")
    assert not (tmp_path / "pwned").exists()
    # a checkpoint whose weights belong to another architecture
    ckpt = torch.load(trained, weights_only=True)
    spec = json.loads(ckpt["spec_json"])
    spec["layers"] = [{"type": "dense", "out": 32}]
    ckpt["spec_json"] = json.dumps(spec)
    arch = tmp_path / "arch.pt"
    torch.save(ckpt, arch)
    _one_line_error(run(["dsqn-export", str(arch)], tmp_path), "do not match")
    # a network whose first-layer threshold mantissa leaves the 17-bit field (0.5 * 2**frac_bits * 64 > 2**17)
    ckpt = torch.load(trained, weights_only=True)
    spec = json.loads(ckpt["spec_json"])
    spec["threshold"] = 40.0
    ckpt["spec_json"] = json.dumps(spec)
    big_th = tmp_path / "threshold.pt"
    torch.save(ckpt, big_th)
    _one_line_error(run(["dsqn-export", str(big_th)], tmp_path), "cannot run on Loihi", "layer 0", "threshold 2560")
    assert not list(tmp_path.glob("*.net")), "no partial output"


@pytest.mark.parametrize("flag,value,needle", [("--current-decay", "1.5", "--current-decay 1.5: must lie in [0, 1]"),
                                                ("--voltage-decay", "nan", "--voltage-decay nan: not a finite number"),
                                                ("--threshold", "3000", "threshold"),
                                                ("--algo", "td3", "TD3 needs a continuous (Box) action space"),
                                                ("--eval-every", "0", "--eval-every 0")])
def test_train_refuses_parameters_outside_loihi_ranges(tmp_path: Path, flag: str, value: str, needle: str):
    r = run(["dsqn-train", "--env-id", "CartPole-v1", "--total-steps", "10", flag, value, "--out", str(tmp_path / "r"),
             "--no-progress"], tmp_path)
    _one_line_error(r, needle)
    assert list(tmp_path.iterdir()) == [], "no run folder, no config.json"


def test_outputs_never_overwrite_inputs(tmp_path: Path, exported: Path):
    """The installed scripts refuse an output that is their input (here through a symlink and another spelling),
    in one line, before any work."""
    d = tmp_path / "d"
    d.mkdir()
    pt, net = d / "model.pt", d / "model.net"
    pt.write_bytes(exported.with_suffix(".pt").read_bytes())
    net.write_bytes(exported.read_bytes())
    (d / "alias.pt").symlink_to(pt)
    rep = d / "r.json"
    rep.write_text(json.dumps({"format": "dsqn-report"}))
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    _one_line_error(run(["dsqn-export", str(d / "alias.pt"), "-o", str(pt)], tmp_path), "would overwrite the input")
    _one_line_error(run(["dsqn-deploy", str(net), "--backend", "emu", "--html", f"{d}/../d/model.net"], tmp_path),
                    "would overwrite the input")
    _one_line_error(run(["dsqn-report", str(rep), "-o", str(rep)], tmp_path), "would overwrite the input")
    _one_line_error(run(["dsqn-deploy", str(net), "--backend", "emu", "--max-steps", "-3"], tmp_path), "--max-steps -3")
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def _copy_with(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_deploy_bad_files(tmp_path: Path, exported: Path):
    _one_line_error(run(["dsqn-deploy", str(tmp_path / "x.net"), "--backend", "emu"], tmp_path), "no such file")
    junk = tmp_path / "junk.net"
    junk.write_text("not hdf5")
    _one_line_error(run(["dsqn-deploy", str(junk), "--backend", "emu"], tmp_path), "not a readable HDF5")
    no_layer = _copy_with(exported, tmp_path / "nolayer.net", lambda f: f["layer"].__delitem__("2"))
    _one_line_error(run(["dsqn-deploy", str(no_layer), "--backend", "emu"], tmp_path), "layer")
    no_key = _copy_with(exported, tmp_path / "nokey.net", lambda f: f["layer/1/neuron"].__delitem__("vThMant"))
    _one_line_error(run(["dsqn-deploy", str(no_key), "--backend", "sim"], tmp_path), "layer 1", "vThMant")

    def nan_weight(f):  # type: ignore[no-untyped-def]
        w = f["layer/2/weight"][()].astype(np.float64)
        w[0, 0] = np.nan
        del f["layer/2/weight"]
        f["layer/2/weight"] = w

    nan = _copy_with(exported, tmp_path / "nan.net", nan_weight)
    _one_line_error(run(["dsqn-deploy", str(nan), "--backend", "emu"], tmp_path), "layer 2", "weight", "NaN")

    def big_weight(f):  # type: ignore[no-untyped-def]
        w = f["layer/1/weight"][()]
        w[0, 0] = 1000
        del f["layer/1/weight"]
        f["layer/1/weight"] = w

    big = _copy_with(exported, tmp_path / "big.net", big_weight)
    _one_line_error(run(["dsqn-deploy", str(big), "--backend", "emu"], tmp_path), "layer 1", "8-bit")

    def bad_decay(f):  # type: ignore[no-untyped-def]
        del f["layer/1/neuron/vDecay"]
        f["layer/1/neuron/vDecay"] = 5000

    decay = _copy_with(exported, tmp_path / "decay.net", bad_decay)
    _one_line_error(run(["dsqn-deploy", str(decay), "--backend", "emu"], tmp_path), "layer 1", "vDecay")

    def bad_type(f):  # type: ignore[no-untyped-def]
        del f["layer/1/type"]
        f["layer/1"].create_dataset("type", (1,), "S10", [b"pool"])

    pool = _copy_with(exported, tmp_path / "pool.net", bad_type)
    _one_line_error(run(["dsqn-deploy", str(pool), "--backend", "emu"], tmp_path), "layer 1", "pool")
    # an environment whose spaces do not match the file
    _one_line_error(run(["dsqn-deploy", str(exported), "--backend", "emu", "--env", "Acrobot-v1"], tmp_path), "Acrobot-v1")
    if HAVE_LAVA:
        _one_line_error(run(["dsqn-deploy", str(exported), "--backend", "sim", "--env", "Acrobot-v1"], tmp_path), "Acrobot-v1")
        _one_line_error(run(["dsqn-deploy", str(exported), "--backend", "loihi2"], tmp_path), "lava-loihi")
    else:  # the core lane: the Lava backends name the extra that brings them
        for backend in ("sim", "loihi2"):
            _one_line_error(run(["dsqn-deploy", str(exported), "--backend", backend], tmp_path), "lava extra", "pip install")
    assert not list(tmp_path.glob("*.json")), "no report for a failed run"


@pytest.mark.lava
def test_ctrl_c_stops_lava_cleanly(tmp_path: Path, exported: Path):
    proc = subprocess.Popen([str(BIN / "dsqn-deploy"), str(exported), "--backend", "sim", "--episodes", "500",
                             "--report", str(tmp_path / "r.json")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=ENV,
                            # A job started with '&' by a non-interactive shell (as CI may run us) ignores SIGINT,
                            # and ignored signals stay ignored across exec: give the child the default back.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Wait for the closed loop to start, then until Lava has started its processes.
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline and "Ctrl-C stops cleanly" not in seen:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert "Ctrl-C stops cleanly" in seen, seen[-2000:]
    while time.time() < deadline and len(lava_children_left(proc.pid)) < 3:
        time.sleep(0.5)
    time.sleep(2)
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    time.sleep(1)
    assert lava_children_left(proc.pid) == [], "Lava processes left behind"
    assert not (tmp_path / "r.json").exists()


def test_epsilon_greedy_deployment_replays_the_training_evaluation(tmp_path: Path, trained: Path):
    """--eval-epsilon: the final evaluation's epsilon-greedy episodes (run side by side in training) are replayed
    exactly by dsqn-deploy --epsilon from the exported file (one generator per episode, keyed by its seed)."""
    from dsqn.files.checkpoint import load_checkpoint

    r = run(["dsqn-train", "--env-id", "CartPole-v1", "--total-steps", "300", "--learning-starts", "100", "--eval-every", "300",
             "--eval-episodes", "2", "--final-eval-episodes", "6", "--eval-epsilon", "0.3", "--hidden", "16", "16",
             "--out", str(tmp_path), "--no-progress"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    final = json.loads(load_checkpoint(tmp_path / "model.pt")["final_eval_json"])
    assert final["epsilon"] == 0.3 and len(final["returns"]) == 6
    lo, hi = final["ci95"]
    assert lo <= final["mean"] <= hi and final["human_normalized"] is None
    assert run(["dsqn-export", str(tmp_path / "model.pt")], tmp_path).returncode == 0
    reports = {}
    for eps in ("0.3", "0"):
        rep = tmp_path / f"eps{eps}.json"
        r = run(["dsqn-deploy", str(tmp_path / "model.net"), "--backend", "emu", "--episodes", "6", "--seed", "20000000",
                 "--epsilon", eps, "--report", str(rep), "--compare", str(tmp_path / "model.pt")], tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        reports[eps] = json.loads(rep.read_text())["episodes"]
        # --compare: in the same pass, the trained model chose the deployed network's own action on every step
        fid = json.loads(rep.read_text())["fidelity"]
        assert fid["steps"] == sum(reports[eps]["lengths"]) and fid["same_action"] == fid["steps"]
        assert fid["first_different_step"] is None and len(fid["checkpoint"]["sha256"]) == 64
        assert f"chose the same action on {fid['steps']}/{fid['steps']} steps" in r.stdout
    assert reports["0.3"]["returns"] == final["returns"] and reports["0.3"]["epsilon"] == 0.3
    assert reports["0.3"]["score"]["ci95"] == final["ci95"]
    assert reports["0"]["returns"] != final["returns"]  # the random choices did change the episodes
    r = run(["dsqn-deploy", str(tmp_path / "model.net"), "--backend", "emu", "--epsilon", "1.5"], tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["dsqn-deploy: error: --epsilon 1.5: must lie in [0, 1]"]
    # a checkpoint the file was not exported from is refused before any episode, in one line, and writes nothing
    r = run(["dsqn-deploy", str(tmp_path / "model.net"), "--backend", "emu", "--compare", str(trained),
             "--report", str(tmp_path / "other.json")], tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"dsqn-deploy: error: --compare {trained}: the file was not exported from this checkpoint (source checkpoint "
        "SHA-256 differs)"]
    assert not (tmp_path / "other.json").exists()


def test_the_comparison_counts_the_steps_where_the_actions_differ(trained: Path, tmp_path: Path):
    """The per-step check of dsqn-deploy --compare is not vacuous: a model with the readout negated (a different
    argmax wherever Q is not tied) disagrees with the deployed network, and the first such step is recorded."""
    from dsqn.deploy.closed_loop import ActionComparison, make_policy, run_episodes
    from dsqn.files.checkpoint import load_checkpoint, model_from_checkpoint
    from dsqn.files.netfile_read import read_netfile

    # exported here: test_resume_continues_a_run continues `trained` in place, after the module's `exported`
    r = run(["dsqn-export", str(trained), "-o", str(tmp_path / "model.net")], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    net = read_netfile(tmp_path / "model.net")
    model, _, _, _ = model_from_checkpoint(load_checkpoint(trained), trained)

    def compare() -> tuple[ActionComparison, list[int]]:  # two CartPole episodes on the emulator, every step checked
        check = ActionComparison(model, trained)
        policy = make_policy(net, "emu")
        try:
            return check, run_episodes(policy, "CartPole-v1", 2, 7, on_step=check).lengths
        finally:
            policy.close()

    same, lengths = compare()
    assert same.steps == sum(lengths) and same.same == same.steps and same.first_difference is None
    with torch.no_grad():  # the readout's weights and bias negated: Q -> -Q
        for p in [*model.readout.parameters(), model.readout_bias]:
            p.neg_()
    flipped, lengths = compare()
    assert flipped.steps == sum(lengths) and flipped.same < flipped.steps and flipped.first_difference == 0
