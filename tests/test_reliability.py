"""Nothing lost, nothing left behind: outputs never replace inputs, resume continues the saved run where it was,
bad options and damaged files are one-line errors (exit 2) before anything is written, and a fuzz of damaged
checkpoints and networks through dsqn-export and dsqn-deploy.

The console scripts' ``main(argv)`` run in this process (they exit through ``cli_entry``: SystemExit 2 with one
line on stderr for a UserError); the subprocess checks of the installed scripts live in test_cli.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from support import captured_call as call

from dsqn.deploy.cli import main as deploy_main
from dsqn.export.cli import main as export_main
from dsqn.files import fileio
from dsqn.files.netfile_read import read_netfile
from dsqn.report.cli import main as report_main
from dsqn.train import runner
from dsqn.train.cli import main as train_main

TINY = ["--env-id", "CartPole-v1", "--learning-starts", "100", "--eval-every", "100", "--checkpoint-every", "100",
        "--eval-episodes", "1", "--final-eval-episodes", "1", "--hidden", "8", "8", "--batch-size", "16", "--no-progress"]


def one_line_error(result: tuple, prog: str, *needles: str) -> str:
    code, _, err, caught = result
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "CUDA" not in line]  # lava-dl's import notice
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not [w for w in caught if not issubclass(w.category, DeprecationWarning)], [str(w.message) for w in caught]
    return lines[0]


def train(argv: list[str]) -> int:
    code, _, err, _ = call(train_main, argv)
    assert code == 0, err[-2000:]
    return code


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """A tiny trained run, its export and a deployment report (all in this process)."""
    d = tmp_path_factory.mktemp("run")
    train([*TINY, "--total-steps", "200", "--out", str(d)])
    pt = d / "model.pt"
    code, _, err, _ = call(export_main, [str(pt)])
    assert code == 0, err
    net = d / "model.net"
    rep = d / "report.json"
    code, _, err, _ = call(deploy_main, [str(net), "--backend", "emu", "--episodes", "1", "--max-steps", "5", "--report", str(rep)])
    assert code == 0, err
    return {"dir": d, "pt": pt, "net": net, "report": rep}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------------- outputs


def test_export_never_overwrites_its_checkpoint(run, tmp_path: Path):
    d = tmp_path / "d"
    d.mkdir()
    pt = d / "model.pt"
    pt.write_bytes(run["pt"].read_bytes())
    (d / "link.pt").symlink_to(pt)
    os.link(pt, d / "hard.pt")
    before = snapshot(d)
    cases = [
        [str(pt), "-o", str(pt)],
        [str(pt), "-o", str(d / ".." / "d" / "model.pt")],  # another spelling
        [str(pt), "-o", f"{d}//./model.pt"],
        [str(d / "link.pt"), "-o", str(pt)],  # the input is a symlink to the output
        [str(pt), "-o", str(d / "link.pt")],  # the output is a symlink to the input
        [str(d / "hard.pt"), "-o", str(pt)],  # hard links: one file
    ]
    for argv in cases:
        one_line_error(call(export_main, argv), "dsqn-export", "would overwrite the input")
    # a checkpoint named .net: its default output is itself
    net_named = d / "ckpt.net"
    net_named.write_bytes(pt.read_bytes())
    before["ckpt.net"] = net_named.read_bytes()
    one_line_error(call(export_main, [str(net_named)]), "dsqn-export", "ckpt.net", "would overwrite the input")
    assert snapshot(d) == before


def test_deploy_never_overwrites_its_inputs(run, tmp_path: Path):
    d = tmp_path / "d"
    d.mkdir()
    net = d / "m.net"
    net.write_bytes(run["net"].read_bytes())
    (d / "alias.net").symlink_to(net)
    profile = d / "profile.json"
    profile.write_text(json.dumps({"name": "p", "synop_pj": 1.0, "neuron_update_active_pj": 1.0,
                                   "neuron_update_inactive_pj": 1.0, "spike_pj": 1.0, "source": "test"}))
    before = snapshot(d)
    emu = ["--backend", "emu", "--episodes", "1", "--max-steps", "3"]
    cases = [
        ([str(net), *emu, "--report", str(net)], "would overwrite the input"),
        ([str(net), *emu, "--html", str(net)], "would overwrite the input"),
        ([str(net), *emu, "--report", str(d / "alias.net")], "would overwrite the input"),
        ([str(d / "alias.net"), *emu, "--html", f"{d}/../d/m.net"], "would overwrite the input"),
        ([str(net), *emu, "--profile", str(profile), "--report", str(profile)], "would overwrite the input"),
        ([str(net), *emu, "--report", str(d / "r.json"), "--html", f"{d}/./r.json"], "--report and --html name the same file"),
    ]
    for argv, needle in cases:
        one_line_error(call(deploy_main, argv), "dsqn-deploy", needle)
    assert snapshot(d) == before
    # the same profile as input and distinct outputs: runs
    code, _, err, _ = call(deploy_main, [str(net), *emu, "--profile", str(profile), "--report", str(d / "r.json"),
                                         "--html", str(d / "r.html")])
    assert code == 0, err
    assert json.loads((d / "r.json").read_text())["format"] == "dsqn-report" and (d / "r.html").stat().st_size > 0


def test_report_never_overwrites_its_input(run, tmp_path: Path):
    rep = tmp_path / "r.json"
    rep.write_bytes(run["report"].read_bytes())
    one_line_error(call(report_main, [str(rep), "-o", str(rep)]), "dsqn-report", "would overwrite the input")
    one_line_error(call(report_main, [str(rep), "-o", f"{tmp_path}/../{tmp_path.name}/r.json"]), "dsqn-report", "would overwrite")
    page_named = tmp_path / "r.html"  # a report named .html: its default output is itself
    page_named.write_bytes(rep.read_bytes())
    one_line_error(call(report_main, [str(page_named)]), "dsqn-report", "would overwrite the input")
    assert page_named.read_bytes() == rep.read_bytes() == run["report"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]


def test_outputs_in_a_missing_folder_fail_before_any_work(run, tmp_path: Path):
    missing = tmp_path / "missing"
    emu = ["--backend", "emu", "--episodes", "1"]
    one_line_error(call(export_main, [str(run["pt"]), "-o", str(missing / "m.net")]), "dsqn-export", "missing", "does not exist")
    one_line_error(call(deploy_main, [str(run["net"]), *emu, "--report", str(missing / "r.json")]), "dsqn-deploy", "does not exist")
    one_line_error(call(deploy_main, [str(run["net"]), *emu, "--report", str(tmp_path / "r.json"), "--html", str(missing / "p.html")]),
                   "dsqn-deploy", "does not exist")
    one_line_error(call(report_main, [str(run["report"]), "-o", str(missing / "p.html")]), "dsqn-report", "does not exist")
    # an output path that is a folder
    one_line_error(call(export_main, [str(run["pt"]), "-o", str(tmp_path)]), "dsqn-export", "is a directory")
    one_line_error(call(deploy_main, [str(run["net"]), *emu, "--report", str(tmp_path)]), "dsqn-deploy", "is a directory")
    assert list(tmp_path.iterdir()) == []


def test_outputs_in_a_read_only_folder_fail_before_any_work(run, tmp_path: Path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: let os.access answer as it would for a user
        real_access = os.access

        def access(path, mode, *a, **k):  # type: ignore[no-untyped-def]
            if os.path.realpath(path) == str(ro.resolve()) and mode & os.W_OK:
                return False
            return real_access(path, mode, *a, **k)

        monkeypatch.setattr(fileio.os, "access", access)
    try:
        emu = ["--backend", "emu", "--episodes", "1"]
        one_line_error(call(export_main, [str(run["pt"]), "-o", str(ro / "m.net")]), "dsqn-export", "not writable")
        one_line_error(call(deploy_main, [str(run["net"]), *emu, "--report", str(ro / "r.json")]), "dsqn-deploy", "not writable")
        one_line_error(call(report_main, [str(run["report"]), "-o", str(ro / "p.html")]), "dsqn-report", "not writable")
        one_line_error(call(train_main, [*TINY, "--total-steps", "10", "--out", str(ro / "run")]), "dsqn-train", "not writable")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_a_directory_is_named_as_one(run, tmp_path: Path):
    one_line_error(call(export_main, [str(tmp_path)]), "dsqn-export", "is a directory")
    one_line_error(call(deploy_main, [str(tmp_path), "--backend", "emu"]), "dsqn-deploy", "is a directory")
    one_line_error(call(deploy_main, [str(run["net"]), "--backend", "emu", "--profile", str(tmp_path),
                                      "--report", str(tmp_path / "r.json")]), "dsqn-deploy", "is a directory")
    one_line_error(call(report_main, [str(tmp_path)]), "dsqn-report", "is a directory")
    one_line_error(call(train_main, [*TINY, "--resume", str(tmp_path), "--out", str(tmp_path / "r")]), "dsqn-train", "is a directory")
    for argv, prog, main in (([str(tmp_path / "no.pt")], "dsqn-export", export_main),
                             ([str(tmp_path / "no.net"), "--backend", "emu"], "dsqn-deploy", deploy_main)):
        one_line_error(call(main, argv), prog, "no such file")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------- resume


def test_interrupted_run_resumes_its_own_budget_in_its_own_folder(tmp_path: Path, monkeypatch):
    """Ctrl-C at step 200 of 300 (checkpoint at 100); a killed writer's temp file; resume from another folder
    without --total-steps: the run ends at its saved 300 steps (not the environment's 30 000), in its own folder."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.chdir(a)
    real_evaluate = runner.evaluate

    def interrupted(*args, seed: int, **kw):  # type: ignore[no-untyped-def]
        if seed == 10_000_000 + 200:  # the greedy evaluation at step 200
            raise KeyboardInterrupt
        return real_evaluate(*args, seed=seed, **kw)

    monkeypatch.setattr(runner, "evaluate", interrupted)
    code, _, err, _ = call(train_main, [*TINY, "--total-steps", "300", "--out", "run"])  # a relative --out
    assert code == 130 and "interrupted" in err, err
    ckpt_path = a / "run" / "model.pt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["step"] == 100 and json.loads(ckpt["config_json"])["total_timesteps"] == 300
    monkeypatch.setattr(runner, "evaluate", real_evaluate)
    stale = a / "run" / f".model.pt.tmp{dead_pid()}"  # what a SIGKILL during torch.save leaves
    stale.write_bytes(b"half a checkpoint")
    live = a / "run" / f".model.pt.tmp{os.getppid()}"  # another live process's write in progress: not ours to delete
    live.write_bytes(b"being written")

    monkeypatch.chdir(b)
    code, out, err, _ = call(train_main, ["--resume", str(ckpt_path), "--no-progress"])
    assert code == 0, err
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["step"] == 300 and json.loads(ckpt["config_json"])["total_timesteps"] == 300
    assert not stale.exists() and live.exists()
    assert list(b.iterdir()) == [], "nothing written where the resumed run was started"
    assert json.loads((a / "run" / "config.json").read_text())["total_timesteps"] == 300
    live.unlink()

    # an explicit --out (relative to the new cwd) and budget: written there; the original run is left as it was
    before = snapshot(a / "run")
    code, out, err, _ = call(train_main, ["--resume", str(ckpt_path), "--total-steps", "400", "--out", "more", "--no-progress"])
    assert code == 0, err
    assert torch.load(b / "more" / "model.pt", weights_only=True)["step"] == 400
    assert sorted(p.name for p in (b / "more").iterdir()) == ["config.json", "metrics.csv", "model.pt", "tb"]
    assert snapshot(a / "run") == before
    assert sorted(p.name for p in b.iterdir()) == ["more"]


def test_resume_refusals_write_nothing(run, tmp_path: Path):
    d = tmp_path / "d"
    d.mkdir()
    pt = d / "model.pt"
    pt.write_bytes(run["pt"].read_bytes())
    before = snapshot(d)
    out = ["--out", str(tmp_path / "new")]
    one_line_error(call(train_main, ["--resume", str(pt), "--lr", "0.1", *out]), "dsqn-train", "--lr", "saved config")
    one_line_error(call(train_main, ["--resume", str(pt), "--total-steps", "50", *out]), "dsqn-train", "already at step 200")
    one_line_error(call(train_main, ["--resume", str(pt), "--total-steps", "-5", *out]), "dsqn-train")
    ckpt = torch.load(pt, weights_only=True)
    del ckpt["optimizer"]
    torch.save(ckpt, d / "noopt.pt")
    one_line_error(call(train_main, ["--resume", str(d / "noopt.pt"), *out]), "dsqn-train", "'optimizer'", "cannot resume")
    ckpt = torch.load(pt, weights_only=True)
    ckpt["replay"]["obs"] = torch.zeros(3, 5, dtype=torch.int16)  # a training state that does not fit the network
    torch.save(ckpt, d / "badreplay.pt")
    one_line_error(call(train_main, ["--resume", str(d / "badreplay.pt"), *out]), "dsqn-train", "cannot resume")
    (d / "text.pt").write_text("model weights, honest\n")
    one_line_error(call(train_main, ["--resume", str(d / "text.pt"), *out]), "dsqn-train", "not a PyTorch checkpoint")
    assert not (tmp_path / "new").exists()
    snap = snapshot(d)
    assert {k: snap[k] for k in before} == before


# ------------------------------------------------------------------------------------------ options and files


@pytest.mark.parametrize("args,needles", [
    (["--lr", "nan"], ["--lr nan", "not a finite number"]),
    (["--lr=-1e-3"], ["--lr -0.001", "positive"]),
    (["--eval-every", "0"], ["--eval-every 0", "at least 1"]),
    (["--checkpoint-every", "0"], ["--checkpoint-every 0"]),
    (["--target-update", "-1"], ["--target-update -1"]),
    (["--train-freq", "0"], ["--train-freq 0"]),
    (["--gradient-steps", "0"], ["--gradient-steps 0"]),
    (["--eval-episodes", "0"], ["--eval-episodes 0"]),
    (["--hidden", "0"], ["--hidden 0", "positive"]),
    (["--hidden", "16", "0"], ["--hidden 16 0"]),
    (["--current-decay", "nan"], ["--current-decay nan", "not a finite number"]),
    (["--voltage-decay", "nan"], ["--voltage-decay nan"]),
    (["--current-decay", "1.5"], ["--current-decay 1.5", "[0, 1]"]),
    (["--voltage-decay", "-0.25"], ["--voltage-decay -0.25", "[0, 1]"]),
    (["--threshold", "inf"], ["--threshold inf"]),
    (["--seed", "-1"], ["--seed -1"]),
    (["--obs-scale", "1", "0", "1", "1"], ["--obs-scale"]),
    (["--lr", "fast"], ["--lr", "invalid float value"]),
    (["--env-id", "Pendulum-v1", "--algo", "dqn"], ["Pendulum-v1", "DQN needs a discrete action space", "--algo td3"]),
    (["--env-id", "CartPole-v1", "--algo", "td3"], ["CartPole-v1", "TD3 needs a continuous (Box) action space", "--algo dqn"]),
    (["--env-id", "Breakout", "--algo", "td3"], ["--algo td3", "TD3 needs a continuous"]),
    (["--algo", "sac"], ["--algo 'sac'", "expected dqn or td3"]),
    (["--env-id", "Pendulum-v1", "--policy-delay", "0"], ["--policy-delay 0", "at least 1"]),
    (["--env-id", "Pendulum-v1", "--exploration-noise", "-0.1"], ["--exploration-noise -0.1", "must not be negative"]),
    (["--env-id", "Pendulum-v1", "--critic-hidden", "0"], ["--critic-hidden", "positive"]),
    (["--env-id", "NoSuchEnv-v0"], ["NoSuchEnv-v0"]),
])
def test_bad_training_options_are_one_line_errors_before_any_folder(tmp_path: Path, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    one_line_error(call(train_main, [*TINY, "--total-steps", "10", "--out", str(tmp_path / "r"), *args]), "dsqn-train", *needles)
    assert list(tmp_path.iterdir()) == [], "no run folder, no config.json"


def test_train_out_that_is_a_file(tmp_path: Path):
    f = tmp_path / "f"
    f.write_text("x")
    one_line_error(call(train_main, [*TINY, "--total-steps", "10", "--out", str(f)]), "dsqn-train", "not a folder")
    one_line_error(call(train_main, [*TINY, "--total-steps", "10", "--out", str(f / "sub")]), "dsqn-train", "not a folder")
    assert f.read_text() == "x"


def test_deploy_refuses_a_negative_step_cap(run, tmp_path: Path):
    rep = tmp_path / "r.json"
    base = [str(run["net"]), "--backend", "emu", "--report", str(rep)]
    one_line_error(call(deploy_main, [*base, "--max-steps", "-3"]), "dsqn-deploy", "--max-steps -3")
    one_line_error(call(deploy_main, [*base, "--episodes", "0"]), "dsqn-deploy", "--episodes")
    one_line_error(call(deploy_main, [*base, "--seed", "-2"]), "dsqn-deploy", "--seed -2")
    one_line_error(call(deploy_main, [*base, "--env", "Pendulum-v1"]), "dsqn-deploy", "Pendulum-v1", "not discrete")
    assert list(tmp_path.iterdir()) == []


def test_files_that_are_not_checkpoints_or_networks(run, tmp_path: Path):
    text = tmp_path / "text.pt"
    text.write_text("these are not weights\n")
    blob = tmp_path / "blob.pt"
    blob.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(b"\x80\x04" + bytes(range(200)))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for f in (text, blob, pickled, empty):
        line = one_line_error(call(export_main, [str(f), "-o", str(tmp_path / "x.net")]), "dsqn-export", str(f))
        assert "weights_only" not in line and "trusted" not in line
        one_line_error(call(deploy_main, [str(f), "--backend", "emu", "--report", str(tmp_path / "r.json")]), "dsqn-deploy", str(f))
    one_line_error(call(deploy_main, [str(run["pt"]), "--backend", "emu", "--report", str(tmp_path / "r.json")]),
                   "dsqn-deploy", "PyTorch checkpoint", "dsqn-export")
    one_line_error(call(export_main, [str(run["net"]), "-o", str(tmp_path / "x.net")]), "dsqn-export", "not a PyTorch checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.pt", "empty.pt", "pickled.pt", "text.pt"]


def test_a_failed_export_keeps_the_previous_one(run, tmp_path: Path, monkeypatch):
    """The network is checked under a temporary name: a file that fails the check never replaces a good export."""
    from dsqn.export import exporter

    out = tmp_path / "m.net"
    out.write_bytes(run["net"].read_bytes())

    def broken(path):  # type: ignore[no-untyped-def]
        raise exporter.UserError(f"{path}: stock netx could not load the exported file (test)")

    monkeypatch.setattr(exporter, "verify_with_netx", broken)
    line = one_line_error(call(export_main, [str(run["pt"]), "-o", str(out)]), "dsqn-export", "could not load")
    assert str(out) in line and ".tmp" not in line
    assert out.read_bytes() == run["net"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.net"]


def test_stale_temp_files_are_removed_only_for_dead_processes(tmp_path: Path):
    dead, live = dead_pid(), os.getppid()
    for name in (f".model.pt.tmp{dead}", f".config.json.tmp{dead}", f".model.pt.tmp{live}", "model.pt", ".hidden", "x.tmp1"):
        (tmp_path / name).write_text("x")
    removed = fileio.remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted([f".model.pt.tmp{dead}", f".config.json.tmp{dead}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".model.pt.tmp{live}", "model.pt", ".hidden", "x.tmp1"])


# ---------------------------------------------------------------------------------------------------- fuzz


def _mutations(base: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        b = bytearray(base)
        kind = i % 4
        if kind == 0:  # a few random bytes changed
            for _ in range(int(rng.integers(1, 8))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        elif kind == 1:  # truncated
            b = b[: int(rng.integers(0, len(b)))]
        elif kind == 2:  # a random blob
            b = bytearray(rng.integers(0, 256, int(rng.integers(0, 4000)), dtype=np.uint8).tobytes())
        else:  # a run of bytes overwritten
            at, k = int(rng.integers(0, len(b))), int(rng.integers(1, 64))
            b[at:at + k] = rng.integers(0, 256, k, dtype=np.uint8).tobytes()[: len(b[at:at + k])]
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("kind", ["export", "deploy"])
def test_fuzz_damaged_files(run, tmp_path: Path, kind: str):
    """Hundreds of damaged checkpoints (export) and networks (deploy): each is a one-line error with exit 2 and
    leaves nothing behind, or -- a harmless mutation -- succeeds with a valid output."""
    rng = np.random.default_rng(14 if kind == "export" else 41)
    base = (run["pt"] if kind == "export" else run["net"]).read_bytes()
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    failed = succeeded = 0
    for i, data in enumerate(_mutations(base, rng, 250)):
        src = src_dir / (f"f{i}.pt" if kind == "export" else f"f{i}.net")
        src.write_bytes(data)
        out = out_dir / ("m.net" if kind == "export" else "r.json")
        if kind == "export":
            result = call(export_main, [str(src), "-o", str(out)])
        else:
            result = call(deploy_main, [str(src), "--backend", "emu", "--episodes", "1", "--max-steps", "5", "--report", str(out)])
        code, _, err, _ = result
        if code == 0:
            succeeded += 1
            if kind == "export":
                read_netfile(out)
            else:
                assert json.loads(out.read_text())["format"] == "dsqn-report"
            out.unlink()
        else:
            failed += 1
            line = one_line_error(result, f"dsqn-{kind}")
            assert "weights_only" not in line, line
        assert list(out_dir.iterdir()) == [], f"case {i}: left behind {list(out_dir.iterdir())}"
        assert sorted(p.name for p in src_dir.iterdir()) == [src.name], "nothing written beside the input"
        src.unlink()
    assert failed >= 120, (failed, succeeded)
    print(kind, "failed", failed, "succeeded", succeeded)


def test_a_reader_that_crashes_the_process_is_a_one_line_error(tmp_path: Path):
    """Files from the user (.net, .nir) are read once in a forked child first: a reader killed by a signal (libhdf5
    on a damaged file) becomes a UserError naming it; a reader that raises or returns is left to the caller."""
    import signal as sig

    from dsqn.errors import UserError
    from dsqn.files.netfile import check_read_in_child

    path = tmp_path / "model.nir"
    with pytest.raises(UserError, match=r"model\.nir: damaged HDF5 file \(the HDF5 library crashed reading it: SIGSEGV\)"):
        check_read_in_child(path, lambda: os.kill(os.getpid(), sig.SIGSEGV))
    check_read_in_child(path, lambda: 1 / 0)
    check_read_in_child(path, lambda: None)
