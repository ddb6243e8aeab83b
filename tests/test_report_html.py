"""The HTML report renders in a real headless browser (Debian's chromium) with all its plots."""

import json
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
    r = subprocess.run([str(BIN / "dsqn-deploy"), str(net), "--backend", "emu", "--episodes", "2", "--report", str(d / "r.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(BIN / "dsqn-report"), str(d / "r.json"), "-o", str(d / "page.html")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return d / "page.html"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by scripts/run.sh test; not on this machine")
def test_page_renders_with_all_plots(page: Path, tmp_path: Path):
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'u1'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for chart in ("activity", "synops", "energy", "ann", "raster", "score"):
        m = re.search(rf'<svg id="{chart}".*?</svg>', dom, re.S)
        assert m, f"plot {chart} missing from the rendered page"
        assert "<rect" in m.group(0)
    assert len(re.findall(r'class="spike"', dom)) > 5, "the raster shows spikes"
    assert "energy per inference" in dom
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'u2'}", "--window-size=1000,2400", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000, "the screenshot is not blank"


def test_report_cli_rejects_bad_input(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    r = subprocess.run([str(BIN / "dsqn-report"), str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a dsqn-deploy report" in r.stderr
    assert not (tmp_path / "bad.html").exists()
