"""Render a deployment report (the JSON of dsqn-deploy) as one self-contained HTML page of matplotlib figures.

The page inlines every figure as SVG (no scripts, no external files: it opens anywhere) and links the same figure
saved beside it as SVG, PDF and PNG (``<page>_figures/``), ready for a paper. Style, palette and units come from
``dsqn.report.figures``; every axis is linear unless its label says "log scale".

``dsqn-report report.json [-o page.html]`` renders a saved report; ``dsqn-deploy --html`` writes both;
``dsqn-report RUN_DIR`` (or ``metrics.csv``, or ``--curves PATH``) draws a training run's curves instead.
"""

from __future__ import annotations

import html
from pathlib import Path

from dsqn.errors import UserError
from dsqn.files.fileio import atomic_write_text
from dsqn.report import figures as F

from .analysis import ANN_ROWS, BASIS, PROFILE_READING, analyse
from .plots import profile_energies, profile_status, report_figures

FIGURE_ORDER = ("activity", "synops", "energy", "ann", "raster", "score", "latency")


def _esc(x: object) -> str:
    return html.escape(str(x))




def _captions(report: dict) -> dict[str, str]:
    energy = report["energy"]
    profiles = profile_energies(energy)
    lat = energy.get("latency") or {}
    return {
        "activity": "Per-layer activity: spikes per neuron and timestep, averaged over every inference of the run.",
        "synops": "Input events reaching each layer and the synaptic operations they cause (events × fan-out), per inference.",
        "energy": "Energy per inference by layer under each profile: "
                  + "; ".join(f"<b>{_esc(p['name'])}</b> [status: {_esc(p['status'])}]"
                              + (" (recomputed from this run's counts)" if p["recomputed"] else " (this report's profile)")
                              + f": {_esc(p['source'].rstrip('. '))}" for p in profiles) + ".",
        "ann": "Linear axis: bar lengths compare as the energies do. The ANN of the same shape is priced at Horowitz (ISSCC 2014): "
               "MACs only, and MACs plus memory traffic (hatched; ANN fp32 (MACs + memory), ANN int8 (MACs + memory)). "
               f"SNN / this: the SNN under the report's profile ({_esc(energy['profile']['name'])}, top bar) divided by the bar; "
               "the other SNN bars are recomputed from this run's counts under the other built-in profiles. All bars are "
               "modelled, none measured; " + "; ".join(f"{_esc(name)}: {_esc(text)}" for name, text in PROFILE_READING.items()
                                                      if any(p["name"] == name for p in profiles)) + ".",
        "raster": "Spikes of the first inference; each layer over its own T-step window.",
        "score": "Return of each episode of this deployment.",
        "latency": (f"Each layer works on an inference from step i + 1 to step T + i (one step of synaptic delay per layer). "
                    f"Time per timestep: {_esc(lat.get('time_source'))}." if lat else ""),
    }


def _x(r: float) -> str:
    return f"{r:.3g}×"


def reviewer_html(energy: dict) -> str:
    """Modelled/measured, spikes per synapse, break-even and sensitivity tables (report.energy.analyse; recomputed from
    the counts for a report written before them)."""
    a = energy if "break_even" in energy else {**energy, **analyse(energy)}
    basis, tot, be, sens = a.get("basis") or BASIS, a["totals"], a["break_even"], a["sensitivity"]
    ref = a["reference"]["break_even_spikes_per_synapse"]
    rows = "".join(
        f"<tr><td style='text-align:left'>{_esc(r['label'])}</td><td>{r['ann_energy_pj'] / 1e3:.3g}</td>"
        f"<td>{_x(r['ratio_snn_over_ann'])}</td><td>" + (f"{r['spikes_per_synapse_per_inference']:.3g}</td><td>{r['scale']:.3g}"
                                                         if r["reachable"] else "none</td><td>–")
        + f"</td><td style='text-align:left'>{_esc(r['reason'])}</td></tr>" for r in be["rows"])
    cols = [k for k, _ in ANN_ROWS if k in sens["nominal"]]
    head = "".join(f"<th>{_esc(dict(ANN_ROWS)[k])}: low / high</th>" for k in cols)
    srows = "".join(
        f"<tr><td style='text-align:left'>{_esc(r['label'])}</td><td>{' / '.join(f'{v:.3g}' for v in r['nominal_pj'].values())}</td>"
        f"<td>{' / '.join(f'{v:.3g}' for v in r['low_pj'].values())} to {' / '.join(f'{v:.3g}' for v in r['high_pj'].values())}</td>"
        f"<td style='text-align:left'>{_esc(r['basis'])}</td>"
        + ("".join(f"<td>{_x(r['ratio_low'][k])} / {_x(r['ratio_high'][k])}</td>" for k in cols) if r["used"]
           else f"<td colspan='{len(cols)}'>not used by this network's ANN</td>") + "</tr>" for r in sens["rows"])
    ext = sens["extremes"]
    srows += ("<tr><td style='text-align:left'>all at once: most / least favourable to the SNN</td><td></td><td></td><td></td>"
              + "".join(f"<td>{_x(ext['favourable_to_snn']['ratios'][k])} / {_x(ext['unfavourable_to_snn']['ratios'][k])}</td>"
                        for k in cols) + "</tr>")
    flips = [dict(ANN_ROWS)[k] for k in sens["flips"]]
    verdict = ("the verdict flips within the ranges against " + ", ".join(flips) if flips
               else "the verdict is the same at every end of every range")
    sources = "".join(f"<li>{_esc(r['label'])}: {_esc(r['source'])}</li>" for r in sens["rows"])
    return f"""<p id="basis"><b>Modelled, not measured.</b> Every energy on this page is modelled: {_esc(basis['modelled'])}.
Measured: {_esc(basis['measured_note'])}. Reading of this profile: {_esc(a.get('profile_reading') or '')}.</p>
<h2>Against an ANN of the same shape: break-even activity</h2>
<p>Spikes per synapse per inference (synops / synapses, counted): <b>{tot['spikes_per_synapse_per_inference']:.3g}</b>
({tot['synops']:.1f} synops over {tot['synapses']} synapses); spike rate {tot['spike_rate']:.3g} per neuron per timestep.
Dampfhoffer et al. (IEEE TETCI 2023) find spiking networks competitive only below about {ref[0]:g}–{ref[1]:g} spikes per
synapse per inference. Break-even: every event count scaled by one factor k, the neuron updates fixed
({be['fixed_pj'] / 1e3:.3g} nJ at zero events, modelled); the rate at which the SNN's modelled energy equals each row.</p>
<table id="break-even"><tr><th>ANN row (modelled)</th><th>ANN nJ</th><th>SNN / ANN now</th><th>break-even spikes/synapse/inference
(now {be['current_spikes_per_synapse_per_inference']:.3g})</th><th>k</th><th>note</th></tr>{rows}</table>
<h2>Sensitivity to the energy constants</h2>
<p>SNN / ANN with one constant at the low and the high end of its range, the others nominal (nominal:
{' | '.join(_x(sens['nominal'][k]) for k in cols)}); {verdict}. Ranges: published where a source publishes one, else a
documented factor, labelled "factor".</p>
<table id="sensitivity"><tr><th>constant</th><th>nominal pJ</th><th>range pJ</th><th>basis</th>{head}</tr>{srows}</table>
<ul id="range-sources">{sources}</ul>
"""


def render_page(report: dict, svgs: dict[str, bytes], figure_dir: str | None = None) -> str:
    """The HTML page around already rendered SVG figures; ``figure_dir`` (relative to the page) adds download links."""
    try:
        energy = report["energy"]
        layers = energy["layers"]
        ann = energy["ann"]
        eps = report["episodes"]
    except (KeyError, TypeError) as exc:
        raise UserError(f"report is missing {exc}") from None
    T = int(report.get("timesteps") or 1)
    mem = ann.get("with_memory")
    status = profile_status(energy["profile"])
    lat = energy.get("latency") or {}
    captions = _captions(report)
    blocks = []
    for name in FIGURE_ORDER:
        if name not in svgs:
            continue
        links = (" " + " ".join(f'<a href="{_esc(figure_dir)}/{name}.{fmt}">{fmt.upper()}</a>' for fmt in F.FORMATS)
                 if figure_dir is not None else "")
        blocks.append(f'<figure id="fig-{name}">{F.inline_svg(svgs[name], name)}<figcaption>{captions[name]}{links}</figcaption></figure>')
    reviewer = reviewer_html(energy)
    tot = energy.get("totals") or analyse(energy)["totals"]
    total_row = {"name": "total", "in_events": tot["in_events"], "synops": tot["synops"], "synapses": tot["synapses"],
                 "neuron_updates": tot["neuron_updates"], "spikes": tot["spikes"],
                 "energy_pj": {"total": energy["snn_energy_per_inference_pj"]}, "ann_macs": ann["macs_per_inference"]}
    rows = "".join(
        f"<tr><td>{_esc(x['name'])}</td><td>{x['in_events']:.1f}</td><td>{x['synops']:.1f}</td>"
        f"<td>{x.get('synapses') or x['ann_macs']}</td><td>{x['synops'] / max(1, x.get('synapses') or x['ann_macs']):.3f}</td>"
        f"<td>{x['neuron_updates']:.0f}</td><td>{x['spikes']:.1f}</td><td>{x['energy_pj']['total'] / 1e3:.3f}</td>"
        f"<td>{x['ann_macs']}</td></tr>" for x in [*layers, total_row])
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
<style>body{{font-family:"DejaVu Sans",Arial,sans-serif;max-width:980px;margin:auto;padding:0 12px;line-height:1.4}}
svg.chart{{display:block;width:100%;max-width:820px;height:auto;margin:0 auto}} figure{{margin:22px 0;border-top:1px solid #ddd;padding-top:8px}}
figcaption{{font-size:0.85em;color:#333;margin-top:4px}} figcaption a{{margin-left:6px}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>{_esc(report.get('env_id'))}: energy per inference and score</h1>
<p id="summary">Backend <b>{_esc(report.get('backend'))}</b>, T = {T}, model {_esc(report.get('model', {}).get('path'))}
(sha256 {_esc(str(report.get('model', {}).get('sha256', ''))[:12])}). Score: mean return <b>{eps['mean_return']:.1f}</b>
± {eps['std_return']:.1f} over {len(eps['returns'])} episodes. Energy: <b>{energy['snn_energy_per_inference_pj'] / 1e3:.2f} nJ</b>
per inference{est} versus {ann['fp32_energy_pj'] / 1e3:.2f} nJ (fp32) / {ann['int8_energy_pj'] / 1e3:.2f} nJ (int8) for an ANN
of the same shape counting MACs only{mem_text}: ratio SNN/ANN-fp32 = {energy['ratio_snn_over_ann_fp32']:.2f}x (MACs only).{lat_text}</p>
<table id="layers"><tr><th>layer</th><th>input events</th><th>synaptic ops</th><th>synapses</th><th>spikes per synapse per inference</th><th>neuron updates</th><th>spikes</th><th>energy nJ (modelled)</th><th>ANN MACs</th></tr>{rows}</table>
{reviewer}
{''.join(blocks)}
<p>Sources: [{_esc(status)}] {_esc(energy['profile']['source'])}. {_esc(ann['source'])}. {_esc(energy['profile'].get('note', ''))}
{_esc(mem['source'] + '; assumptions: ' + mem['assumptions']) if mem else ''}</p>
</body></html>
"""


def render(report: dict) -> str:
    """The page with its figures inlined (nothing written)."""
    svgs = {name: F.render_figure(fig, name, formats=("svg",))["svg"] for name, fig in report_figures(report).items()}
    return render_page(report, svgs)


def figure_dir_for(page: Path) -> Path:
    """Where the page's figures are saved: ``<page stem>_figures/`` beside it."""
    return page.with_name(f"{page.stem}_figures")


def write_html(report: dict, path: Path, figure_dir: Path | None = None, inputs: tuple[Path, ...] = ()) -> dict[str, dict[str, Path]]:
    """Save every figure as SVG/PDF/PNG in ``figure_dir`` (default: beside the page) and the page inlining the SVGs.
    Returns the figure paths by name and format."""
    path = Path(path)
    figure_dir = Path(figure_dir) if figure_dir is not None else figure_dir_for(path)
    saved, svgs = {}, {}
    for name, fig in report_figures(report).items():
        saved[name] = F.save_figure(fig, figure_dir, name, inputs=[*inputs, path])
        svgs[name] = saved[name]["svg"].read_bytes()
    try:
        rel = figure_dir.resolve().relative_to(path.resolve().parent).as_posix()
    except ValueError:
        rel = figure_dir.resolve().as_uri()
    atomic_write_text(path, render_page(report, svgs, figure_dir=rel))
    return saved
