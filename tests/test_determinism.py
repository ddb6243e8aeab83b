"""Determinism, stated and tested: the same seed gives the same model.pt weights, the same training metrics and the
same evaluation returns; two exports of one checkpoint differ only in their creation time; the exported network
returns the training model's returns on the emulator (and, in the lava lane, Lava's actions equal the emulator's).

Two training runs of one seed are bitwise equal on one machine and one torch build: the kernels are exact
integers, the float parts (GEMMs, Adam) run the same operations in the same order. Across machines or torch
versions, BLAS may order float sums differently, so weights can differ in the last bits and DQN trajectories then
diverge (README, training results)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dsqn.deploy.cli import main as deploy_main
from dsqn.export.cli import main as export_main
from dsqn.files.format import ATTR_META
from dsqn.train.cli import main as train_main

TINY = ["--env-id", "CartPole-v1", "--total-steps", "300", "--learning-starts", "100", "--eval-every", "100",
        "--eval-episodes", "2", "--final-eval-episodes", "3", "--hidden", "16", "16", "--batch-size", "16",
        "--no-progress", "--seed", "5"]


def _run(argv: list[str]) -> None:
    try:
        code = train_main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    threads = torch.get_num_threads()
    try:
        _run([*TINY, "--out", str(a)])
        torch.set_num_threads(threads)
        _run([*TINY, "--out", str(b)])
    finally:
        torch.set_num_threads(threads)
    return a, b


def test_same_seed_same_weights_metrics_and_returns(two_runs):
    a, b = two_runs
    ca, cb = (torch.load(p / "model.pt", weights_only=True) for p in (a, b))
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert json.loads(ca["evals_json"]) == json.loads(cb["evals_json"])
    fa, fb = json.loads(ca["final_eval_json"]), json.loads(cb["final_eval_json"])
    assert fa["returns"] == fb["returns"] and len(fa["returns"]) == 3
    # every logged value but the wall-clock speed (the 4th column holds "sps=..." on loss rows)
    rows = [[r.split(",")[:3] for r in (p / "metrics.csv").read_text().splitlines()] for p in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) > 5
    assert len(json.loads(ca["evals_json"])) == 3


def test_two_exports_of_one_checkpoint_differ_only_in_creation_time(two_runs, tmp_path):
    a, _ = two_runs
    outs = [tmp_path / "x.net", tmp_path / "y.net"]
    for out in outs:
        try:
            code = export_main([str(a / "model.pt"), "-o", str(out)])
        except SystemExit as exc:
            code = exc.code
        assert code in (0, None)

    def content(path: Path) -> tuple[dict, dict]:
        data = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
            meta = json.loads(f.attrs[ATTR_META])
        return data, meta

    (d1, m1), (d2, m2) = content(outs[0]), content(outs[1])
    assert d1.keys() == d2.keys() and len(d1) > 5
    for k in d1:
        assert np.array_equal(d1[k], d2[k]), k
    m1.pop("created"), m2.pop("created")
    assert m1 == m2


def test_exported_network_returns_the_training_returns_on_the_emulator(two_runs, tmp_path):
    """The final evaluation of training (20 000 000 + episode seeds) replayed from model.net on the emulator."""
    a, _ = two_runs
    ck = torch.load(a / "model.pt", weights_only=True)
    final = json.loads(ck["final_eval_json"])
    net = tmp_path / "m.net"
    try:
        export_main([str(a / "model.pt"), "-o", str(net)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    report = tmp_path / "r.json"
    try:
        code = deploy_main([str(net), "--backend", "emu", "--episodes", str(final["episodes"]), "--seed", "20000000",
                            "--report", str(report)])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    rep = json.loads(report.read_text())
    assert rep["episodes"]["returns"] == final["returns"]
