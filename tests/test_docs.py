"""Every command in README.md and docs/ runs, so the docs cannot rot.

Each page's commands run in order in a fresh folder (with a copy of results/ and sweep/spaces/ where the page names
them), so a page may train into runs/x and export runs/x/model.pt. What runs and how:
- ``dsqn-train`` / ``dsqn-export`` / ``dsqn-deploy`` / ``dsqn-sweep`` / ``dsqn-report`` and ``python -m dsqn...``: executed,
  with tiny budgets appended (later options win in argparse); ``--backend sim`` needs Lava (the lava lane),
  ``--backend loihi2`` must fail in one line (no Loihi here); a sweep's space file is replaced by a one-trial copy;
- ``python -c``-free Python blocks (```python): executed as a script;
- ``python benchmarks/X.py`` / ``python scripts/X.py``: ``--help`` runs and lists every flag the command uses;
- ``bash scripts/run.sh demo``: executed in the lava lane with a tiny budget; ``bash scripts/run.sh test`` is .ci/run's;
  any other ``bash scripts/X.sh`` (a training campaign): it exists and ``bash -n`` parses it;
- ``pip install``: every extra it names exists in pyproject.toml.
Commands come from fenced ```bash blocks and from inline code in table rows that starts with one of the programs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import REPO, call

pytestmark = pytest.mark.filterwarnings("ignore")

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PROGRAMS = ("dsqn-train", "dsqn-export", "dsqn-deploy", "dsqn-sweep", "dsqn-report", "python", "bash", "pip")
TINY_TRAIN = ["--total-timesteps", "64", "--learning-starts", "32", "--eval-every", "64", "--eval-episodes", "1",
              "--final-eval-episodes", "1", "--eval-max-steps", "20", "--batch-size", "8", "--buffer-size", "64",
              "--checkpoint-every", "64", "--no-progress"]
TINY_DEPLOY = ["--episodes", "1", "--max-steps", "20", "--no-progress"]
FENCE = re.compile(r"^```(\w*)\s*$")


def page_commands(text: str) -> list[tuple[str, str]]:
    """(kind, text) in page order: kind 'bash' for one command line, 'python' for a whole block."""
    out: list[tuple[str, str]] = []
    lang, block = None, []
    for line in text.splitlines():
        m = FENCE.match(line.strip())
        if m and lang is None:
            lang, block = m.group(1), []
            continue
        if line.strip() == "```" and lang is not None:
            if lang == "python":
                out.append(("python", "\n".join(block)))
            elif lang == "bash":
                joined = "\n".join(block).replace("\\\n", " ")
                out += [("bash", c) for c in (ln.strip() for ln in joined.splitlines()) if c and not c.startswith("#")]
            lang = None
            continue
        if lang is not None:
            block.append(line)
        elif line.lstrip().startswith("|"):
            out += [("bash", code) for code in re.findall(r"`([^`]+)`", line)
                    if code.split()[0] in PROGRAMS[:5] and len(code.split()) > 1]  # a command, not a program's name
    return out


def test_pages_have_commands_and_the_readout_is_short():
    assert len((REPO / "README.md").read_bytes()) <= 12 * 1024
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    readme = page_commands((REPO / "README.md").read_text())
    assert [shlex.split(c, comments=True) for _, c in readme[:2]] == [["bash", "scripts/run.sh", d] for d in ("demo", "test")]
    assert "bash scripts/run.sh test" in (REPO / ".ci" / "run").read_text()
    tasks = " ".join(c for _, c in readme)
    for needle in ("--env-id CartPole-v1", "--preset cpu-session", "--env-id Pendulum-v1", "--env-id HalfCheetah-v5",
                   "dsqn-export", "--backend emu", "--backend sim", "--backend loihi2", "dsqn-report", "dsqn-sweep",
                   "--format nir"):
        assert needle in tasks, needle
    for page in PAGES:
        assert page_commands(page.read_text()) or page.name in ("README.md", "energy.md", "limits.md", "architecture.md") or \
            "results" in page.parts, f"{page} shows no command"


def test_every_relative_link_resolves():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)}: broken link {target}"


def _tiny_space(src: Path, dst: Path) -> Path:
    data = yaml.safe_load(src.read_text())
    data["fixed"] = {**data.get("fixed", {}), "total_timesteps": 64, "learning_starts": 32, "eval_every": 32,
                     "eval_episodes": 1, "final_eval_episodes": 1, "eval_max_steps": 20, "batch_size": 8,
                     "buffer_size": 64, "checkpoint_every": 64}
    data["n_trials"] = 1
    data.pop("pruner", None)
    dst.write_text(yaml.safe_dump(data))
    return dst


def _flags(argv: list[str]) -> list[str]:
    return [a.split("=")[0] for a in argv if a.startswith("--")]


def run_command(cmd: str, cwd: Path) -> str | None:
    """Run (or check) one command; the reason it cannot run in this lane, or None."""
    argv = shlex.split(cmd, comments=True)
    prog, args = argv[0], argv[1:]
    if prog == "pip":
        extras = set(re.findall(r"^(\w+) = \[", (REPO / "pyproject.toml").read_text(), re.M))
        for spec in args:
            for name in re.findall(r"\[([\w,]+)\]", spec):
                assert set(name.split(",")) <= extras, f"{cmd}: unknown extra"
        return None
    if prog == "bash":
        script = REPO / args[0]
        assert script.is_file(), cmd
        if args[1:] == ["test"]:
            return None  # what .ci/run runs (checked above); running it here would recurse
        if args[1:] == ["demo"]:
            if not _lava():
                return "the demo deploys on the Lava simulator: lava lane"
            env = {**os.environ, "DEMO_STEPS": "64", "DEMO_DIR": str(cwd / "demo"), "OMP_NUM_THREADS": "1"}
            r = subprocess.run(["bash", str(script), "demo", "--learning-starts", "32", "--eval-every", "64",
                                "--eval-episodes", "1", "--final-eval-episodes", "1", "--no-progress"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, r.stderr[-2000:]
            assert "SNN total" in r.stdout and (cwd / "demo" / "model.net").is_file()
            return None
        # a long-running script (a training campaign): it exists and bash parses it
        r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd}: {r.stderr}"
        return None
    if prog == "python" and args[:1] != ["-m"]:
        r = subprocess.run([sys.executable, str(REPO / args[0]), "--help"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"{cmd}: --help failed: {r.stderr[-500:]}"
        for flag in _flags(args[1:]):
            assert flag in r.stdout, f"{cmd}: {flag} is not an option of {args[0]}"
        return None
    if prog == "python":  # python -m dsqn.<module> ...
        module = args[1]
        if module == "dsqn.export.nir_check":
            if importlib.util.find_spec("snntorch") is None:
                return "needs snntorch"
            args = [*args, "--episodes", "1", "--max-steps", "20"]
        r = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, f"{cmd}: {r.stderr[-1500:]}"
        return None
    from dsqn.deploy.cli import main as deploy_main
    from dsqn.export.cli import main as export_main
    from dsqn.report.cli import main as report_main
    from dsqn.sweep.cli import main as sweep_main
    from dsqn.train.cli import main as train_main

    expect = 0
    if prog == "dsqn-train":
        if "--help" in args or "--print-config" in args:
            pass
        elif "--resume" in args:
            args = [*args, "--total-timesteps", "128", "--no-progress"]
        else:
            args = [*args, *TINY_TRAIN, *(["--snn-steps", "8"] if "--preset" in args else [])]
    elif prog == "dsqn-deploy":
        args = [*args, *TINY_DEPLOY]
        backend = args[args.index("--backend") + 1] if "--backend" in args else "sim"
        if backend == "sim" and not _lava():
            return "--backend sim needs Lava: lava lane"
        if backend == "loihi2":
            expect = 2  # no lava-loihi and no Loihi here: one line naming what is missing
    elif prog == "dsqn-sweep" and importlib.util.find_spec("optuna") is None:
        return "needs optuna"
    elif prog == "dsqn-sweep" and args[0] != "report":
        args = [str(_tiny_space(cwd / args[0], cwd / "tiny-space.yaml")), *args[1:], "--n-trials", "1"]
    main = {"dsqn-train": train_main, "dsqn-export": export_main, "dsqn-deploy": deploy_main, "dsqn-sweep": sweep_main,
            "dsqn-report": report_main}[prog]
    code = call(main, args)
    assert code == expect, f"{cmd}: exit {code}"
    return None


def _lava() -> bool:
    from dsqn.extras import lava_available

    return lava_available()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_page_commands_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    commands = page_commands(page.read_text())
    if not commands:
        pytest.skip("no commands")
    text = page.read_text()
    if "results/" in text:
        shutil.copytree(REPO / "results", tmp_path / "results", ignore=shutil.ignore_patterns("trial_*", "*.db", "*.gz"))
    if "sweep/spaces" in text:
        shutil.copytree(REPO / "sweep" / "spaces", tmp_path / "sweep" / "spaces")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    skipped = []
    for kind, cmd in commands:
        if kind == "python":
            script = tmp_path / "block.py"
            script.write_text(cmd)
            r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, f"{page.name}: python block failed: {r.stderr[-2000:]}"
            continue
        if "> " in cmd:  # one redirection of stdout, as in `dsqn-train ... --print-config > file.json`
            cmd, target = cmd.split("> ")
            capsys.readouterr()
            run_command(cmd, tmp_path)
            (tmp_path / target.strip()).write_text(capsys.readouterr().out)
            continue
        why = run_command(cmd, tmp_path)
        if why:  # the rest of the page still runs; a later command that needs this one's output fails loudly
            skipped.append(f"{cmd}: {why}")
    if skipped:
        pytest.skip("; ".join(skipped))  # reported as skipped (after every other command ran and passed)
