"""Figures (dsqn.report.figures, the report page's figures): linear axes unless labelled log, bars equal to the report's
numbers, every figure in SVG + PDF + PNG, training curves exactly from metrics.csv, bad input as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from support import captured_call

from dsqn.errors import UserError
from dsqn.report import figures as F
from dsqn.report.cli import main
from dsqn.report.html import render
from dsqn.report.plots import ann_bars, layer_energy_pj, report_figures
from dsqn.report.profiles import LOIHI1, LOIHI2_HALA_POINT

ROOT = Path(__file__).resolve().parents[1]
REPORTS = sorted((ROOT / "results").glob("*/report.*.json"))
CARTPOLE = ROOT / "results" / "CartPole-v1__seed1" / "report.emu.json"  # a report with every field (latency, memory)
BIN = Path(sys.executable).parent

METRICS = """step,kind,value,extra
12,episodic_return,12.0,
30,episodic_return,18.0,
45,episodic_return,15.0,
50,td_loss,0.5,sps=100.0
50,eval_return,9.5,std=0.5
80,episodic_return,35.0,
100,td_loss,0.25,sps=101.0
100,eval_return,42.25,std=3.1
150,eval_return,17.0,std=0.0
150,final_eval_return,40.0,std=2.0
"""


def call(argv: list[str]) -> tuple[int, str, str]:
    return captured_call(main, argv)[:3]


def one_line_error(result: tuple[int, str, str], *needles: str) -> None:
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("dsqn-report: error: "), (code, err)
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(CARTPOLE.read_text())


@pytest.fixture(scope="module")
def figs(report: dict) -> dict[str, Figure]:
    return report_figures(report)


def test_committed_reports_are_there():
    assert CARTPOLE in REPORTS and len(REPORTS) >= 4


def test_snn_versus_ann_is_linear_and_its_bars_are_the_reports_numbers(report: dict, figs: dict[str, Figure]):
    (ax,) = figs["ann"].axes
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"
    assert ax.get_xlim()[0] == 0  # bars start at zero: lengths compare as the numbers do
    energy = report["energy"]
    mem = energy["ann"]["with_memory"]
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]  # drawn bottom-up
    widths = [p.get_width() for p in ax.patches][::-1]
    expected = {
        "SNN, loihi1-davies2018 [pre-silicon]": energy["snn_energy_per_inference_pj"] / 1e3,
        "ANN fp32 (MACs)": energy["ann"]["fp32_energy_pj"] / 1e3,
        "ANN int8 (MACs)": energy["ann"]["int8_energy_pj"] / 1e3,
        "ANN fp32 (MACs + memory)": mem["fp32"]["energy_pj"] / 1e3,
        "ANN int8 (MACs + memory)": mem["int8"]["energy_pj"] / 1e3,
    }
    got = dict(zip(labels, widths))
    for label, value in expected.items():
        assert got[label] == pytest.approx(value, rel=1e-12), label
    assert labels[0].startswith("SNN, loihi1-davies2018")  # the report's own profile on top
    # the other built-in profile, recomputed from the counts
    halapoint = sum(sum(layer_energy_pj(x, asdict(LOIHI2_HALA_POINT)).values()) for x in energy["layers"]) / 1e3
    assert got["SNN, loihi2-halapoint-estimate [estimate]"] == pytest.approx(halapoint)
    assert [b[1] for b in ann_bars(energy)] == pytest.approx(widths)
    # the ratio printed beside the fp32 bar is the report's
    texts = " ".join(t.get_text() for t in ax.texts)
    assert f"SNN / this = {energy['ratio_snn_over_ann_fp32']:.1f}×" in texts


def test_recomputed_energy_equals_the_report_energy(report: dict):
    # the page recomputes other profiles from the counts with report.energy's arithmetic: under the report's own
    # profile that gives the report's numbers
    for layer in report["energy"]["layers"]:
        mine = layer_energy_pj(layer, asdict(LOIHI1))
        for k, v in mine.items():
            assert v == pytest.approx(layer["energy_pj"][k], rel=1e-12, abs=1e-9), (layer["name"], k)


def test_energy_bars_stack_to_the_reports_per_layer_numbers(report: dict, figs: dict[str, Figure]):
    ax = figs["energy"].axes[0]  # the report's profile
    assert "loihi1-davies2018" in ax.get_title() and "pre-silicon" in ax.get_title()
    assert all(a.get_yscale() == "linear" for a in figs["energy"].axes)
    layers = report["energy"]["layers"]
    by_part = {}
    for container in ax.containers:
        by_part[container.get_label()] = [p.get_height() for p in container.patches]
    for part, label in (("synops", "synaptic ops"), ("neuron_updates", "neuron updates"), ("spikes", "spikes")):
        assert by_part[label] == pytest.approx([x["energy_pj"][part] / 1e3 for x in layers], rel=1e-12)
    tops = [sum(v) for v in zip(*by_part.values())]
    assert tops == pytest.approx([x["energy_pj"]["total"] / 1e3 for x in layers])
    assert "spikes per neuron per timestep" in figs["activity"].axes[0].get_ylabel()
    rates = [p.get_height() for p in figs["activity"].axes[0].patches]
    assert rates == pytest.approx([x["spikes"] / (x["n_neurons"] * report["timesteps"]) for x in layers])


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_axis_of_every_committed_report_is_linear_unless_labelled_log(path: Path):
    rep = json.loads(path.read_text())
    figs = report_figures(rep)
    assert {"activity", "synops", "energy", "ann", "raster", "score"} <= set(figs)
    for name, fig in figs.items():
        for ax in fig.axes:
            for scale, label in ((ax.get_xscale(), ax.get_xlabel()), (ax.get_yscale(), ax.get_ylabel())):
                assert scale == "linear" or F.LOG_LABEL in label, (name, scale, label)
        F.check_log_axes_labelled(fig)


def test_an_unlabelled_log_axis_is_refused(tmp_path: Path):
    with F.style():
        fig = F.new_figure(2)
        ax = fig.subplots()
        ax.bar(["SNN", "ANN"], [332.0, 19.0])
        ax.set_yscale("log")
        ax.set_ylabel("energy (nJ)")
    with pytest.raises(ValueError, match="log scale"):
        F.save_figure(fig, tmp_path, "bad")
    assert list(tmp_path.iterdir()) == []
    F.log_scale(ax, "y", "energy (nJ)")
    assert ax.get_ylabel() == "energy (nJ) (log scale)"
    F.save_figure(fig, tmp_path, "ok")  # labelled: accepted


def test_each_figure_is_written_as_svg_pdf_png_reproducibly(figs: dict[str, Figure], tmp_path: Path):
    paths = F.save_figure(figs["ann"], tmp_path, "ann")
    assert set(paths) == {"svg", "pdf", "png"}
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    svg = paths["svg"].read_text()
    assert "<svg" in svg and "nJ, linear" in svg and "log scale" not in svg  # text stays text (svg.fonttype none)
    assert "ANN fp32 (MACs + memory)" in svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.pdf", "ann.png", "ann.svg"]  # no temp files left
    again = F.render_figure(figs["ann"], "ann")
    assert again["svg"] == paths["svg"].read_bytes() and again["pdf"] == paths["pdf"].read_bytes()  # no dates inside
    # ids are salted per figure: two figures inlined into one page share no clip-path ids
    inline = F.inline_svg(paths["svg"].read_bytes(), "ann")
    assert inline.startswith('<svg id="ann" class="chart"') and 'id="ann-' in inline and "<?xml" not in inline


def test_report_cli_writes_page_and_figures_beside_it(tmp_path: Path):
    code, out, err = call([str(CARTPOLE), "-o", str(tmp_path / "page.html")])
    assert code == 0, err
    page = (tmp_path / "page.html").read_text()
    fig_dir = tmp_path / "page_figures"
    for name in ("activity", "synops", "energy", "ann", "raster", "score", "latency"):
        for fmt in F.FORMATS:
            assert (fig_dir / f"{name}.{fmt}").stat().st_size > 1000, (name, fmt)
            assert f'href="page_figures/{name}.{fmt}"' in page
        assert f'<svg id="{name}" class="chart"' in page
    assert "loihi2-halapoint-estimate" in page and "[status: pre-silicon]" in page
    assert json.loads(CARTPOLE.read_text())["format"] == "dsqn-report"  # the input is untouched
    # render() (used by tests and tools) gives the same figures without writing anything
    assert render(json.loads(CARTPOLE.read_text())).count('class="chart"') == 7


def write_metrics(folder: Path, text: str = METRICS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.csv").write_text(text)
    return folder


def test_training_curves_plot_exactly_the_csvs_points(tmp_path: Path):
    run = write_metrics(tmp_path / "run")
    paths = F.training_curves(run, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["training_curves.pdf", "training_curves.png", "training_curves.svg"]
    assert paths["svg"].read_text().count("greedy evaluation") >= 1
    fig = F.training_curves_figure(F.read_metrics(run / "metrics.csv"))
    ax, ax_loss = fig.axes
    lines = {line.get_gid(): line for line in ax.get_lines()}
    assert lines["eval_return"].get_xydata().tolist() == [[50, 9.5], [100, 42.25], [150, 17.0]]
    assert lines["episodic_return"].get_xydata().tolist() == [[12, 12.0], [30, 18.0], [45, 15.0], [80, 35.0]]
    final = [c for c in ax.containers if c.get_label() == "final evaluation, kept weights"][0]
    assert final.lines[0].get_xydata().tolist() == [[150, 40.0]]
    assert ax.get_yscale() == "linear" and ax_loss.get_yscale() == "log" and "log scale" in ax_loss.get_ylabel()
    assert ax_loss.get_lines()[0].get_xydata().tolist() == [[50, 0.5], [100, 0.25]]
    assert ax_loss.get_xlabel() == "environment steps"
    # the ±std band is the CSV's std
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(42.25 + 3.1) and band[:, 1].min() == pytest.approx(9.0)


def test_training_curves_without_loss_rows_and_default_out_dir(tmp_path: Path):
    text = "\n".join(line for line in METRICS.splitlines() if "td_loss" not in line) + "\n"
    run = write_metrics(tmp_path / "run", text)
    paths = F.training_curves(run / "metrics.csv")
    assert paths["png"].parent == run and len(F.training_curves_figure(F.read_metrics(run / "metrics.csv")).axes) == 1


def test_report_command_draws_curves_of_a_run_folder(tmp_path: Path):
    run = write_metrics(tmp_path / "run")
    r = subprocess.run([str(BIN / "dsqn-report"), str(run)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (run / "training_curves.svg").exists() and (run / "training_curves.pdf").exists() and (run / "training_curves.png").exists()
    code, out, err = call(["--curves", str(run / "metrics.csv"), "-o", str(tmp_path)])
    assert code == 0 and (tmp_path / "training_curves.pdf").exists(), err


OTHER = """step,kind,value,extra
20,episodic_return,3.0,
60,episodic_return,5.0,
50,eval_return,2.0,std=1.0
100,eval_return,4.5,std=0.5
100,final_eval_return,6.0,std=2.0
"""


def test_comparison_curves_put_each_runs_points_on_one_axis(tmp_path: Path):
    a, b = write_metrics(tmp_path / "snn"), write_metrics(tmp_path / "ann", OTHER)
    code, out, err = call([str(a), str(b / "metrics.csv"), "--labels", "SNN", "ANN", "--reference", "random=1.5",
                           "--reference", "human=30", "-o", str(tmp_path / "fig"), "--name", "krull"])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["krull.pdf", "krull.png", "krull.svg"]
    fig = F.comparison_curves_figure([("SNN", F.read_metrics(a / "metrics.csv")), ("ANN", F.read_metrics(b / "metrics.csv"))],
                                     [("random", 1.5), ("human", 30.0)])
    (ax,) = fig.axes
    lines = {line.get_gid(): line for line in ax.get_lines()}
    assert lines["SNN/eval_return"].get_xydata().tolist() == [[50, 9.5], [100, 42.25], [150, 17.0]]
    assert lines["ANN/eval_return"].get_xydata().tolist() == [[50, 2.0], [100, 4.5]]
    assert lines["ANN/episodic_mean"].get_xydata().tolist() == [[20, 3.0], [60, 5.0]]  # window 1 for two episodes
    assert lines["SNN/eval_return"].get_color() == F.COLORS["snn"] and lines["ANN/eval_return"].get_color() == F.COLORS["ann_fp32"]
    assert lines["reference/random"].get_ydata()[0] == 1.5 and lines["reference/human"].get_ydata()[0] == 30.0
    finals = {c.get_label(): c.lines[0].get_xydata().tolist() for c in ax.containers}
    assert finals == {"SNN: final evaluation": [[150, 40.0]], "ANN: final evaluation": [[100, 6.0]]}


@pytest.mark.parametrize("argv, needle", [
    (["--labels", "SNN"], "2 runs but 1 labels"),
    (["--labels", "A", "A"], "its own label"),
    (["--labels", "A", "B", "--reference", "random"], "NAME=VALUE"),
    (["--labels", "A", "B", "--reference", "random=abc"], "NAME=VALUE"),
    (["--labels", "A", "B", "--reference", "random=nan"], "not a finite number"),
])
def test_comparison_curves_bad_input_is_one_line(tmp_path: Path, argv: list[str], needle: str):
    a, b = write_metrics(tmp_path / "snn"), write_metrics(tmp_path / "ann", OTHER)
    code, out, err = call([str(a), str(b), "-o", str(tmp_path / "fig"), *argv])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "fig").exists()
    code, out, err = call([str(a), str(b), "--labels", "A", "B"])
    assert code == 2 and "-o" in err


@pytest.mark.parametrize("text, needle", [
    ("", "not a metrics.csv"),
    ("a,b,c\n1,2,3\n", "not a metrics.csv"),
    ("step,kind,value,extra\n10,eval_return,abc,\n", "line 2"),
    ("step,kind,value,extra\nten,eval_return,1.0,\n", "not a number"),
    ("step,kind,value,extra\n10,eval_return\n", "columns"),
    ("step,kind,value,extra\n10,td_loss,1.0,\n", "no episodic_return or eval_return"),
    ("step,kind,value,extra\n-5,eval_return,1.0,\n", "negative step"),
])
def test_garbled_metrics_are_one_line_errors(tmp_path: Path, text: str, needle: str):
    run = write_metrics(tmp_path / "run", text)
    one_line_error(call([str(run)]), needle)
    assert sorted(p.name for p in run.iterdir()) == ["metrics.csv"]
    with pytest.raises(UserError):
        F.training_curves(run)


def test_bad_curve_inputs(tmp_path: Path):
    one_line_error(call([str(tmp_path)]), "is a directory with no metrics.csv")
    one_line_error(call([str(tmp_path / "nope.csv")]), "no such file")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01" * 100)
    one_line_error(call([str(tmp_path / "bin.csv")]), "not a text file")
    # an input named like an output is never overwritten
    shadow = tmp_path / "training_curves.svg"
    shadow.write_text(METRICS)
    one_line_error(call(["--curves", str(shadow)]), "would overwrite the input")
    assert shadow.read_text() == METRICS
    code, _, err = call([str(write_metrics(tmp_path / "run")), "-o", str(tmp_path / "new" / "folder")])
    assert code == 0 and (tmp_path / "new" / "folder" / "training_curves.png").exists(), err  # made as dsqn-train makes its run folder
    (tmp_path / "file").write_text("")
    one_line_error(call([str(tmp_path / "run"), "-o", str(tmp_path / "file")]), "not a folder")


def test_bad_reports_are_one_line_errors(tmp_path: Path, report: dict):
    bad = tmp_path / "truncated.json"
    bad.write_text(CARTPOLE.read_text()[:500])
    one_line_error(call([str(bad)]), "not a JSON file")
    for mutate, needle in (
        (lambda r: r["energy"].pop("layers"), "missing 'layers'"),
        (lambda r: r["energy"]["layers"][0].update(synops="many"), "not a finite number"),
        (lambda r: r["energy"]["ann"].update(fp32_energy_pj=None), "not a finite number"),
        (lambda r: r["episodes"].update(returns="x"), "episode return"),
        (lambda r: r["raster"].update(layers=[[["a", 1]]]), "raster neuron"),
    ):
        rep = json.loads(json.dumps(report))
        mutate(rep)
        path = tmp_path / "r.json"
        path.write_text(json.dumps(rep))
        one_line_error(call([str(path), "-o", str(tmp_path / "p.html")]), str(path), needle)
        assert not (tmp_path / "p.html").exists() and not (tmp_path / "p_figures").exists()
