"""Render a deployment report (the JSON of dsqn-deploy) as one self-contained HTML page of SVG plots.

No scripts, no external files: the page opens anywhere and the plots can be copied into a paper.
``dsqn-report report.json [-o page.html]`` renders a saved report; ``dsqn-deploy --html`` writes both.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from dsqn.errors import ArgumentParser, UserError, cli_entry
from dsqn.fileio import atomic_write_text, check_input_file, check_output_file

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]


def _esc(x: object) -> str:
    return html.escape(str(x))


def bar_chart(chart_id: str, title: str, labels: list[str], series: dict[str, list[float]], unit: str,
              log: bool = False, stacked: bool = False) -> str:
    """Grouped or stacked vertical bars as inline SVG."""
    import math

    w, h, left, bottom, top = 640, 300, 70, 60, 30
    n = len(labels)
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(n)] if stacked else [max(series[s][i] for s in names) for i in range(n)]
    vmax = max(totals + [1e-12])
    vmin = min([v for s in names for v in series[s] if v > 0] + [vmax]) if log else 0.0

    def y(v: float) -> float:
        if log:
            lo, hi = math.log10(max(vmin, 1e-12)) - 0.3, math.log10(vmax) + 0.1
            return top + (h - top - bottom) * (1 - (math.log10(max(v, 10 ** lo)) - lo) / (hi - lo))
        return top + (h - top - bottom) * (1 - v / (vmax * 1.1))

    out = [f'<svg id="{chart_id}" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{w / 2}" y="18" text-anchor="middle" font-weight="bold">{_esc(title)}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - 10}" y2="{h - bottom}" stroke="#333"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#333"/>',
           f'<text x="14" y="{(h - bottom + top) / 2}" transform="rotate(-90 14 {(h - bottom + top) / 2})" text-anchor="middle">{_esc(unit)}</text>']
    for frac in (0.0, 0.5, 1.0):
        v = vmax * frac if not log else vmin * (vmax / vmin) ** frac
        out.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">{v:.3g}</text>')
    slot = (w - left - 20) / max(1, n)
    bw = slot * 0.7 / (1 if stacked else len(names))
    for i, lab in enumerate(labels):
        x0 = left + 10 + i * slot
        base = 0.0
        for k, s in enumerate(names):
            v = series[s][i]
            if stacked:
                y1, y0 = y(base + v), y(base)
                x = x0
                base += v
            else:
                y1, y0 = y(v), float(h - bottom)
                x = x0 + k * bw
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y1:.1f}" width="{bw:.1f}" height="{max(0.0, y0 - y1):.1f}" '
                       f'fill="{COLORS[k % len(COLORS)]}"><title>{_esc(s)} {_esc(lab)}: {v:.4g} {_esc(unit)}</title></rect>')
        out.append(f'<text x="{x0 + slot * 0.35:.1f}" y="{h - bottom + 14}" text-anchor="middle" font-size="11">{_esc(lab)}</text>')
    for k, s in enumerate(names):
        out.append(f'<rect x="{left + 10 + k * 150}" y="{h - 22}" width="10" height="10" fill="{COLORS[k % len(COLORS)]}"/>'
                   f'<text x="{left + 24 + k * 150}" y="{h - 13}" font-size="11">{_esc(s)}</text>')
    out.append("</svg>")
    return "".join(out)


def raster_chart(chart_id: str, raster: list[list[list[int]]], timesteps: int, names: list[str], max_neurons: int) -> str:
    w, row_h, left = 640, 90, 90
    h = 30 + row_h * max(1, len(raster))
    out = [f'<svg id="{chart_id}" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{w / 2}" y="18" text-anchor="middle" font-weight="bold">Spike raster of one inference '
           f'(first {max_neurons} neurons per layer, T = {timesteps})</text>']
    dx = (w - left - 10) / max(1, timesteps)
    for li, pairs in enumerate(raster):
        y0 = 28 + li * row_h
        out.append(f'<text x="4" y="{y0 + row_h / 2}" font-size="11">{_esc(names[li] if li < len(names) else li)}</text>')
        out.append(f'<rect x="{left}" y="{y0}" width="{w - left - 10}" height="{row_h - 8}" fill="none" stroke="#bbb"/>')
        dy = (row_h - 8) / max_neurons
        for neuron, t in pairs:
            out.append(f'<rect class="spike" x="{left + t * dx:.1f}" y="{y0 + neuron * dy:.1f}" width="{max(1.0, dx * 0.8):.1f}" '
                       f'height="{max(1.0, dy * 0.8):.1f}" fill="#222"/>')
    out.append("</svg>")
    return "".join(out)


def render(report: dict) -> str:
    try:
        energy = report["energy"]
        layers = energy["layers"]
        names = [layer["name"] for layer in layers]
        ann = energy["ann"]
        eps = report["episodes"]
    except (KeyError, TypeError) as exc:
        raise UserError(f"report is missing {exc}") from None
    T = int(report.get("timesteps", 1))
    mem = ann.get("with_memory")
    status = energy["profile"].get("status") or ("estimate" if energy["profile"].get("estimate") else "published")
    lat = energy.get("latency") or {}
    rates = [layer["spikes"] / max(1, (layer.get("n_neurons") or 1) * T) for layer in layers]
    charts = [
        bar_chart("activity", "Activity per layer: spike rate per neuron and timestep", names, {"spike rate": rates}, "spikes / neuron / step"),
        bar_chart("synops", "Synaptic operations and events per inference", names,
                  {"synaptic ops": [x["synops"] for x in layers], "input events": [x["in_events"] for x in layers]}, "per inference", log=True),
        bar_chart("energy", f"Energy per inference by layer ({energy['profile']['name']})", names,
                  {k: [x["energy_pj"][k] / 1e3 for x in layers] for k in ("synops", "neuron_updates", "spikes")}, "nJ", stacked=True),
        bar_chart("ann", "Spiking network versus an ANN of the same shape", ["energy per inference"],
                  {f"SNN ({energy['profile']['name']})": [energy["snn_energy_per_inference_pj"] / 1e3],
                   "ANN fp32 (MACs)": [ann["fp32_energy_pj"] / 1e3], "ANN int8 (MACs)": [ann["int8_energy_pj"] / 1e3],
                   **({"ANN fp32 (MACs + memory)": [mem["fp32"]["energy_pj"] / 1e3],
                       "ANN int8 (MACs + memory)": [mem["int8"]["energy_pj"] / 1e3]} if mem else {})}, "nJ", log=True),
        raster_chart("raster", report.get("raster", {}).get("layers", []), T, names, int(report.get("raster", {}).get("max_neurons", 64))),
        bar_chart("score", "Score: return per episode", [str(i) for i in range(len(eps["returns"]))], {"return": eps["returns"]}, "return"),
    ]
    rows = "".join(
        f"<tr><td>{_esc(x['name'])}</td><td>{x['in_events']:.1f}</td><td>{x['synops']:.1f}</td><td>{x['neuron_updates']:.0f}</td>"
        f"<td>{x['spikes']:.1f}</td><td>{x['energy_pj']['total'] / 1e3:.3f}</td><td>{x['ann_macs']}</td></tr>" for x in layers)
    est = f" under profile {_esc(energy['profile']['name'])} [status: {_esc(status)}]"
    mem_text = (f"; {mem['fp32']['energy_pj'] / 1e3:.2f} nJ (fp32) / {mem['int8']['energy_pj'] / 1e3:.2f} nJ (int8) counting "
                f"also its memory reads and writes (weights in {_esc(mem['fp32']['weights_in'])} / {_esc(mem['int8']['weights_in'])})"
                if mem else "")
    lat_text = (f" Latency: {lat['steps_per_inference']} timesteps per inference (T {lat['timesteps']} + pipeline depth "
                f"{lat['pipeline_depth']}); time per timestep: "
                + (f"{lat['time_per_step_ns']:g} ns ({_esc(lat['time_source'])})" if lat.get("time_per_step_ns") else _esc(lat.get("time_source")))
                + "." if lat.get("steps_per_inference") else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>DSQN energy report: {_esc(report.get('env_id'))}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:auto}} .chart{{display:block;margin:18px 0;border:1px solid #eee}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>{_esc(report.get('env_id'))}: energy per inference and score</h1>
<p id="summary">Backend <b>{_esc(report.get('backend'))}</b>, T = {T}, model {_esc(report.get('model', {}).get('path'))}
(sha256 {_esc(str(report.get('model', {}).get('sha256', ''))[:12])}). Score: mean return <b>{eps['mean_return']:.1f}</b>
± {eps['std_return']:.1f} over {len(eps['returns'])} episodes. Energy: <b>{energy['snn_energy_per_inference_pj'] / 1e3:.2f} nJ</b>
per inference{est} versus {ann['fp32_energy_pj'] / 1e3:.2f} nJ (fp32) / {ann['int8_energy_pj'] / 1e3:.2f} nJ (int8) for an ANN
of the same shape counting MACs only{mem_text}: ratio SNN/ANN-fp32 = {energy['ratio_snn_over_ann_fp32']:.2f}x (MACs only).{lat_text}</p>
<table id="layers"><tr><th>layer</th><th>input events</th><th>synaptic ops</th><th>neuron updates</th><th>spikes</th><th>energy nJ</th><th>ANN MACs</th></tr>{rows}</table>
{''.join(charts)}
<p>Sources: [{_esc(status)}] {_esc(energy['profile']['source'])}. {_esc(ann['source'])}. {_esc(energy['profile'].get('note', ''))}
{_esc(mem['source'] + '; assumptions: ' + mem['assumptions']) if mem else ''}</p>
</body></html>
"""


def write_html(report: dict, path: Path) -> None:
    atomic_write_text(path, render(report))


@cli_entry("dsqn-report")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="dsqn-report", description="Render a dsqn-deploy report JSON as a self-contained HTML page.")
    parser.add_argument("report", help="report JSON written by dsqn-deploy")
    parser.add_argument("-o", "--out", default="", help="HTML path (default: the report path with .html)")
    args = parser.parse_args(argv)
    src = check_input_file(args.report)
    out = check_output_file(Path(args.out) if args.out else src.with_suffix(".html"), [src], "HTML page")
    try:
        report = json.loads(src.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{src}: not a JSON file") from None
    except OSError as exc:
        raise UserError(f"{src}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    if not isinstance(report, dict) or report.get("format") != "dsqn-report":
        raise UserError(f"{src}: not a dsqn-deploy report (format marker missing)")
    try:
        page = render(report)
    except UserError as exc:
        raise UserError(f"{src}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError, OverflowError) as exc:
        raise UserError(f"{src}: malformed report ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})") from None
    atomic_write_text(out, page)
    print(f"wrote {out}")
    return 0
