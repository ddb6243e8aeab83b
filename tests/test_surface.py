"""What a new user meets first (issue 26): the config resolves before parsing and explicit values always win; the
field's names; run folders are never silently reused; runs that cannot learn and truncated evaluations say so;
deploy shows progress and plays the training's final-evaluation episodes by default; missing extras are one line."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from support import REPO, call

from dsqn.deploy.cli import main as deploy_main
from dsqn.train.cli import main as train_main

TINY = ["--env-id", "CartPole-v1", "--total-timesteps", "200", "--learning-starts", "100", "--eval-every", "100",
        "--eval-episodes", "2", "--final-eval-episodes", "2", "--no-progress"]
CARTPOLE_NET = REPO / "results" / "CartPole-v1__seed1" / "model.net"


def printed_config(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    capsys.readouterr()
    assert call(train_main, [*argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys: pytest.CaptureFixture, code: int, prog: str, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"{prog}: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_an_explicit_value_wins_even_when_it_equals_the_dataclass_default(capsys):
    assert printed_config(capsys, "--env-id", "CartPole-v1")["eval_every"] == 500  # CartPole's own value
    assert printed_config(capsys, "--env-id", "CartPole-v1", "--eval-every", "1000")["eval_every"] == 1000
    assert printed_config(capsys, "--env-id", "Pendulum-v1")["lr"] == 1e-3
    assert printed_config(capsys, "--env-id", "Pendulum-v1", "--lr", "5e-4")["lr"] == 5e-4


def test_help_shows_what_runs_and_lists_choices(capsys):
    with pytest.raises(SystemExit):
        train_main(["--env-id", "CartPole-v1", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--total-timesteps TOTAL_TIMESTEPS, --total-steps TOTAL_TIMESTEPS" in text
    assert re.search(r"the training budget; alias --total-steps\)\. \(default: 30000\)", text)
    assert re.search(r"evaluated weights become model\.pt\)\. \(default: 500\)", text)
    assert text.count("Double DQN targets (False: vanilla DQN). (default: True)") == 1
    assert "(default: True) (default: True)" not in text
    for choices in ("--algo {dqn,td3}", "--preset {paper,data-efficient,cpu,cpu-session}", "--encoding {two_neuron,direct}"):
        assert choices in text, choices
    with pytest.raises(SystemExit):
        deploy_main(["--help"])
    assert "--backend {sim,emu,loihi2}" in " ".join(capsys.readouterr().out.split())


def test_print_config_then_config_reproduces_config_json_byte_for_byte(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert call(train_main, [*TINY, "--seed", "3", "--out", "run", "--print-config"]) == 0
    Path("c.json").write_text(capsys.readouterr().out)
    assert call(train_main, ["--config", "c.json"]) == 0
    assert Path("run/config.json").read_bytes() == Path("c.json").read_bytes()
    # the run's own config.json rebuilds the same config; a given option still wins over the file
    capsys.readouterr()
    assert call(train_main, ["--config", "run/config.json", "--print-config"]) == 0
    assert capsys.readouterr().out == Path("c.json").read_text()
    assert printed_config(capsys, "--config", "run/config.json", "--seed", "4")["seed"] == 4
    one_line_error(capsys, call(train_main, ["--config", "c.json", "--print-config", "--nope", "1"]), "dsqn-train",
                   "unrecognized arguments: --nope")
    Path("bad.yaml").write_text("lr: 1e-3\nlearning_rate: 2\n")
    one_line_error(capsys, call(train_main, ["--config", "bad.yaml"]), "dsqn-train", "unknown option(s) learning_rate")


def test_names_of_the_field_and_t_as_a_power_of_two(capsys):
    one_line_error(capsys, call(train_main, [*TINY, "--timesteps", "3000"]), "dsqn-train", "ambiguous",
                   "--total-timesteps", "--snn-steps")
    one_line_error(capsys, call(train_main, [*TINY, "--snn-steps", "3000"]), "dsqn-train", "power of 2")
    one_line_error(capsys, call(train_main, [*TINY, "--T", "6"]), "dsqn-train", "--snn-steps 6", "power of 2")
    a = printed_config(capsys, "--env-id", "CartPole-v1", "--total-steps", "1234", "--T", "16", "--out", "x")
    b = printed_config(capsys, "--env-id", "CartPole-v1", "--total-timesteps", "1234", "--snn-steps", "16", "--out", "x")
    assert a == b and (a["total_timesteps"], a["snn_steps"]) == (1234, 16)
    assert printed_config(capsys, "--env-id", "CartPole-v1", "--exp-name", "probe", "--seed", "7")["out"].startswith(
        "runs/CartPole-v1__probe__7__")


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_finished_run_folder_is_never_reused_silently(tmp_path, capsys):
    run = tmp_path / "run"
    assert call(train_main, [*TINY, "--out", str(run)]) == 0
    before = _digest(run)
    one_line_error(capsys, call(train_main, [*TINY, "--seed", "2", "--out", str(run)]), "dsqn-train",
                   "not empty", "--resume", "--overwrite")
    assert _digest(run) == before and len(list((run / "tb").iterdir())) == 1
    assert call(train_main, [*TINY, "--seed", "2", "--out", str(run), "--overwrite"]) == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and _digest(aside[0]) == before  # moved, not deleted
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    steps = [int(r.split(",")[0]) for r in rows]
    assert steps == sorted(steps) and json.loads((run / "config.json").read_text())["seed"] == 2


def test_a_run_that_cannot_learn_warns_first_and_in_config_json(tmp_path, capsys):
    out = tmp_path / "run"
    capsys.readouterr()
    assert call(train_main, ["--env-id", "CartPole-v1", "--total-timesteps", "50", "--final-eval-episodes", "1",
                             "--no-progress", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.out.splitlines()[0] == f"dsqn-train: CartPole-v1, dqn, 50 steps -> run folder {out}"
    assert cap.err.splitlines()[0].startswith("dsqn-train: warning: no gradient update will happen: learning starts at "
                                              "step 1000, the budget is 50 steps")
    assert json.loads((out / "config.json").read_text())["warnings"] == [cap.err.splitlines()[0][len("dsqn-train: warning: "):]]


def test_an_evaluation_cut_short_is_marked_truncated_and_not_human_normalised(tmp_path, capsys):
    pytest.importorskip("ale_py")
    from dsqn.files.checkpoint import load_checkpoint
    from dsqn.stats import score_summary, truncated_episodes

    assert truncated_episodes("Pong", 3, 100) == 3 and truncated_episodes("Pong", 3, 4500) == 0
    assert truncated_episodes("CartPole-v1", 2, 20) == 2
    s = score_summary("Pong", [-5.0, -3.0], truncated=2)
    assert s["human_normalized"] is None and s["truncated"] == 2 and "human_normalized_ci95" not in s
    out = tmp_path / "pong"
    argv = ["--env-id", "Pong", "--total-timesteps", "40", "--learning-starts", "30", "--batch-size", "2",
            "--snn-steps", "8", "--eval-every", "1000", "--final-eval-episodes", "1", "--eval-max-steps", "100",
            "--buffer-size", "64", "--init-rate", "0", "--no-progress", "--out", str(out)]
    capsys.readouterr()
    assert call(train_main, argv) == 0
    printed = capsys.readouterr().out
    final = json.loads(load_checkpoint(out / "model.pt")["final_eval_json"])
    assert final["truncated"] == 1 and final["human_normalized"] is None and final["lengths"] == [100]
    assert "truncated: 1 of 1 episodes cut at --eval-max-steps 100; not a score" in printed
    assert "human-normalised" not in printed


def test_deploy_plays_the_final_evaluation_episodes_by_default_and_shows_progress(tmp_path, capsys, monkeypatch):
    import dsqn.progress

    real = dsqn.progress.LineProgress
    monkeypatch.setattr(dsqn.progress.sys.stderr, "isatty", lambda: False)
    monkeypatch.setattr(dsqn.progress, "LineProgress", lambda *a, **kw: real(*a, **{**kw, "interval": 0.0}))
    rep = tmp_path / "r.json"
    capsys.readouterr()
    assert call(deploy_main, [str(CARTPOLE_NET), "--backend", "emu", "--episodes", "2", "--max-steps", "30",
                              "--report", str(rep)]) == 0
    cap = capsys.readouterr()
    lines = [ln for ln in cap.err.splitlines() if "episodes" in ln]
    assert [ln.split(": ")[1].split(" (")[0] for ln in lines] == ["1/2 episodes", "2/2 episodes"], cap.err
    assert cap.out.splitlines()[0].startswith("dsqn-deploy: 2 episode(s) of CartPole-v1 on backend emu, seeds 20000000..")
    report = json.loads(rep.read_text())
    assert report["episodes"]["seed"] == 20_000_000 and report["episodes"]["score"]["truncated"] == 2
    assert "truncated: 2 of 2 episodes cut at --max-steps 30, not a score" in cap.out
    # no cap: the very episodes (and returns) of the training's final evaluation stored in the file
    assert call(deploy_main, [str(CARTPOLE_NET), "--backend", "emu", "--episodes", "2", "--env-id", "CartPole-v1",
                              "--no-progress", "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["episodes"]["returns"] == report["train_final_eval"]["returns"][:2]
    assert "truncated" not in report["episodes"]["score"]


def test_a_missing_extra_is_one_line_naming_the_pip_command(capsys, monkeypatch):
    import importlib.util

    from dsqn.envs import make_env
    from dsqn.errors import UserError
    from dsqn.extras import EXTRAS

    pyproject = (REPO / "pyproject.toml").read_text()
    for extra, command in EXTRAS.items():
        listed = re.search(rf"^{extra} = \[(.*)\]", pyproject, re.M).group(1)
        wanted = {p.strip().strip('"') for p in listed.split(",")}
        assert wanted == {w.strip("'") for w in command.split(" (")[0].split()[2:]}, extra
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ale_py" else real(name, *a))
    with pytest.raises(UserError, match=re.escape("the Atari game Pong needs the atari extra: pip install 'ale-py>=0.9' "
                                                  "opencv-python-headless (in a clone: pip install -e '.[atari]')")):
        make_env("Pong")
    from dsqn.sweep.cli import main as sweep_main

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("optuna", "ale_py") else real(name, *a))
    capsys.readouterr()
    one_line_error(capsys, call(sweep_main, ["space.yaml"]), "dsqn-sweep",
                   "dsqn-sweep needs the sweep extra: pip install 'optuna>=4.5' (in a clone: pip install -e '.[sweep]')")


def test_track_and_capture_video(tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        one_line_error(capsys, call(train_main, [*TINY, "--track", "--out", str(tmp_path / "t")]), "dsqn-train",
                       "--track needs Weights & Biases: pip install wandb")
        assert not (tmp_path / "t").exists()
    pytest.importorskip("moviepy")
    out = tmp_path / "v"
    assert call(train_main, [*TINY, "--capture-video", "--out", str(out)]) == 0
    videos = sorted((out / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["eval-seed20000000-episode-0.mp4"] and videos[0].stat().st_size > 1000
