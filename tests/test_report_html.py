"""The HTML report renders in a real headless browser (Debian's chromium) with all its figures (matplotlib SVGs inlined,
the same figures saved beside the page as SVG, PDF and PNG), written by dsqn-report and by dsqn-deploy --html."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import export, make_net

BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    net = export(make_net(seed=1, bias=[0.1, -0.1], n_actions=2), d / "m.net")
    r = subprocess.run([str(BIN / "dsqn-deploy"), str(net), "--backend", "emu", "--episodes", "2", "--report", str(d / "r.json"),
                        "--html", str(d / "deployed.html")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(BIN / "dsqn-report"), str(d / "r.json"), "-o", str(d / "page.html")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return d / "page.html"


FIGURES = ("activity", "synops", "energy", "ann", "raster", "score", "latency")


def test_figures_saved_beside_both_pages(page: Path):
    for html, folder in ((page, page.parent / "page_figures"), (page.parent / "deployed.html", page.parent / "deployed_figures")):
        text = html.read_text()
        for name in FIGURES:
            for fmt in ("svg", "pdf", "png"):
                assert (folder / f"{name}.{fmt}").stat().st_size > 1000, (folder, name, fmt)
                assert f'href="{folder.name}/{name}.{fmt}"' in text
        # self-contained: no scripts, no stylesheets or images fetched, links only to the figure files
        assert "<script" not in text and "<link" not in text and " src=" not in text
        assert {h.split("/")[0] for h in re.findall(r'href="([^"#][^"]*)"', text)} == {folder.name}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by scripts/run.sh test; not on this machine")
def test_page_renders_with_all_plots(page: Path, tmp_path: Path):
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'u1'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    svgs = {}
    for chart in FIGURES:
        m = re.search(rf'<svg id="{chart}" class="chart".*?</svg>', dom, re.S)
        assert m, f"figure {chart} missing from the rendered page"
        svgs[chart] = m.group(0)
        assert "<path" in svgs[chart] and "<text" in svgs[chart]
    # the SNN-versus-ANN axis is linear and says so; no axis of the page is logarithmic without saying so
    assert "nJ, linear" in svgs["ann"] and "log" not in svgs["ann"]
    assert "ANN fp32 (MACs)" in svgs["ann"] and "SNN / this" in svgs["ann"]
    # ids were made unique per figure: the raster's spike markers are in its own group
    spikes = re.search(r'<g id="raster-spikes-L0">.*?</g>', svgs["raster"], re.S)
    assert spikes and spikes.group(0).count("<use") > 5, "the raster shows spikes"
    ids = re.findall(r' id="([^"]+)"', dom)
    assert len(ids) == len(set(ids)), "element ids repeat across the inlined figures"
    assert "energy per inference" in dom and "[status: " in dom
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'u2'}", "--window-size=1000,5200", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 100_000, "the screenshot is not blank"
    keep = os.environ.get("DSQN_KEEP_SCREENSHOT")
    if keep:  # look at it: DSQN_KEEP_SCREENSHOT=/tmp/page.png pytest tests/test_report_html.py
        shutil.copyfile(shot, keep)


def test_report_cli_rejects_bad_input(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    r = subprocess.run([str(BIN / "dsqn-report"), str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a dsqn-deploy report" in r.stderr
    assert not (tmp_path / "bad.html").exists()
