"""Render a deployment report (the JSON of dsqn-deploy) as one self-contained HTML page of matplotlib figures.

The page inlines every figure as SVG (no scripts, no external files: it opens anywhere) and links the same figure
saved beside it as SVG, PDF and PNG (``<page>_figures/``), ready for a paper. Style, palette and units come from
``dsqn.report.figures``; every axis is linear unless its label says "log scale".

``dsqn-report report.json [-o page.html]`` renders a saved report; ``dsqn-deploy --html`` writes both;
``dsqn-report RUN_DIR`` (or ``metrics.csv``, or ``--curves PATH``) draws a training run's curves instead.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dsqn.errors import ArgumentParser, UserError, cli_entry
from dsqn.fileio import atomic_write_text, check_input_file, check_output_dir, check_output_file
from dsqn.report import figures as F

from .energy import ANN_ROWS, BASIS, PROFILE_READING, PROFILES, analyse

FIGURE_ORDER = ("activity", "synops", "energy", "ann", "raster", "score", "latency")


def _esc(x: object) -> str:
    return html.escape(str(x))


def _status(profile: dict) -> str:
    """The profile's status; reports of format_version 1 written before it had one: the built-in profile's own, else
    what their ``estimate`` flag says."""
    if profile.get("status"):
        return profile["status"]
    if profile.get("name") in PROFILES:
        return PROFILES[profile["name"]].status
    return "estimate" if profile.get("estimate") else "published"


def layer_energy_pj(layer: dict, profile: dict) -> dict[str, float]:
    """A layer's energy per inference from its counts under ``profile`` (the arithmetic of report.energy)."""
    synops, updates, spikes = (F.finite(layer[k], f"layer {layer.get('name')} {k}") for k in ("synops", "neuron_updates", "spikes"))
    return {"synops": synops * profile["synop_pj"],
            "neuron_updates": spikes * profile["neuron_update_active_pj"] + (updates - spikes) * profile["neuron_update_inactive_pj"],
            "spikes": spikes * profile["spike_pj"]}


def profile_energies(energy: dict) -> list[dict]:
    """The energy per layer under the report's profile (its own numbers) and under every other built-in profile
    (recomputed from the same counts): [{name, status, source, recomputed, layers: [{synops, neuron_updates, spikes}]}]."""
    prof = energy["profile"]
    out = [{"name": prof["name"], "status": _status(prof), "source": prof.get("source", ""), "recomputed": False,
            "layers": [{k: F.finite(x["energy_pj"][k], f"layer {x.get('name')} energy_pj.{k}")
                        for k in ("synops", "neuron_updates", "spikes")} for x in energy["layers"]]}]
    seen = {prof["name"]}
    for p in dict.fromkeys(PROFILES.values()):  # one entry per profile (aliases dropped)
        if p.name in seen:
            continue
        seen.add(p.name)
        d = {"synop_pj": p.synop_pj, "neuron_update_active_pj": p.neuron_update_active_pj,
             "neuron_update_inactive_pj": p.neuron_update_inactive_pj, "spike_pj": p.spike_pj}
        out.append({"name": p.name, "status": p.status, "source": p.source, "recomputed": True,
                    "layers": [layer_energy_pj(x, d) for x in energy["layers"]]})
    return out


def ann_bars(energy: dict) -> list[tuple[str, float, str]]:
    """(label, nJ per inference, colour key) of the SNN-versus-ANN figure, top to bottom."""
    ann = energy["ann"]
    mem = ann.get("with_memory")
    bars = [(f"SNN, {p['name']} [{p['status']}]",
             F.nj(sum(sum(x.values()) for x in p["layers"])) if p["recomputed"]
             else F.nj(F.finite(energy["snn_energy_per_inference_pj"], "snn_energy_per_inference_pj")), "snn")
            for p in profile_energies(energy)]
    bars += [("ANN fp32 (MACs)", F.nj(F.finite(ann["fp32_energy_pj"], "ann.fp32_energy_pj")), "ann_fp32"),
             ("ANN int8 (MACs)", F.nj(F.finite(ann["int8_energy_pj"], "ann.int8_energy_pj")), "ann_int8")]
    if mem:
        bars += [("ANN fp32 (MACs + memory)", F.nj(F.finite(mem["fp32"]["energy_pj"], "with_memory.fp32")), "ann_fp32"),
                 ("ANN int8 (MACs + memory)", F.nj(F.finite(mem["int8"]["energy_pj"], "with_memory.int8")), "ann_int8")]
    return bars


def _bar_labels(ax: Axes, bars: BarContainer, fmt: str) -> None:
    ax.bar_label(bars, labels=[fmt.format(v) for v in bars.datavalues], padding=2, fontsize=F.FONT_SIZE - 1)


def activity_figure(layers: list[dict], names: list[str], T: int) -> Figure:
    rates = [F.finite(x["spikes"], f"layer {x.get('name')} spikes") / max(1, int(x.get("n_neurons") or 1) * T) for x in layers]
    per_step = [x.get("spikes_per_step") for x in layers]
    has_steps = all(isinstance(s, list) and s for s in per_step)
    with F.style():
        fig = F.new_figure(2.8)
        axes = fig.subplots(1, 2, width_ratios=[1, 1.4]) if has_steps else [fig.subplots(1, 1)]
        ax = axes[0]
        bars = ax.bar(names, rates, color=F.COLORS["snn"], width=0.6)
        _bar_labels(ax, bars, "{:.3f}")
        ax.set_ylabel("spikes per neuron per timestep")
        ax.set_title("Spike rate per layer")
        ax.set_ylim(0, max(rates + [1e-3]) * 1.2)
        if has_steps:
            ax = axes[1]
            for i, (x, steps) in enumerate(zip(layers, per_step)):
                n = max(1, int(x.get("n_neurons") or 1))
                if any(steps):
                    ax.plot(range(len(steps)), [F.finite(s, "spikes_per_step") / n for s in steps], marker="o", markersize=3,
                            color=F.PALETTE[i % len(F.PALETTE)], label=names[i])
            ax.set_xlabel("timestep within the layer's window")
            ax.set_ylabel("spikes per neuron")
            ax.set_title("Spike rate per timestep")
            ax.set_ylim(bottom=0)
            ax.legend()
    return fig


def synops_figure(layers: list[dict], names: list[str]) -> Figure:
    with F.style():
        fig = F.new_figure(2.6)
        for ax, key, title, color in zip(fig.subplots(1, 2), ("in_events", "synops"),
                                         ("Input events per inference", "Synaptic operations per inference"),
                                         (F.COLORS["events"], F.COLORS["synops"])):
            values = [F.finite(x[key], f"layer {x.get('name')} {key}") for x in layers]
            bars = ax.bar(names, values, color=color, width=0.6)
            _bar_labels(ax, bars, "{:,.0f}")
            ax.set_ylim(0, max(values + [1.0]) * 1.18)
            ax.set_ylabel("per inference")
            ax.set_title(title)
    return fig


def energy_figure(energy: dict, names: list[str]) -> Figure:
    """Stacked energy per layer (synaptic ops, neuron updates, spikes), one panel per profile, one linear nJ axis."""
    profiles = profile_energies(energy)
    with F.style():
        fig = F.new_figure(3.0)
        axes = fig.subplots(1, len(profiles), sharey=True, squeeze=False)[0]
        for ax, prof in zip(axes, profiles):
            base = [0.0] * len(names)
            for part, label in (("synops", "synaptic ops"), ("neuron_updates", "neuron updates"), ("spikes", "spikes")):
                values = [F.nj(x[part]) for x in prof["layers"]]
                ax.bar(names, values, bottom=base, color=F.COLORS[part], width=0.6, label=label)
                base = [b + v for b, v in zip(base, values)]
            for i, total in enumerate(base):
                ax.annotate(f"{total:.1f}", (i, total), textcoords="offset points", xytext=(0, 2), ha="center",
                            fontsize=F.FONT_SIZE - 1)
            ax.set_title(f"{prof['name']}\n[{prof['status']}]" + (", recomputed" if prof["recomputed"] else ""),
                         fontsize=F.FONT_SIZE)
            ax.tick_params(axis="x", labelrotation=20 if len(names) > 4 else 0)
        axes[0].set_ylabel(f"energy per inference ({F.ENERGY_UNIT})")
        highest = max(F.nj(sum(x.values())) for prof in profiles for x in prof["layers"])
        axes[0].set_ylim(0, max(highest, 1e-9) * 1.15)
        axes[-1].legend(loc="upper right")
        fig.suptitle("Energy per inference by layer, under each energy profile")
    return fig


def ann_figure(energy: dict) -> Figure:
    """The spiking network's energy per inference beside the ANN of the same shape: horizontal bars on a linear nJ
    axis, each bar labelled with its value and the ratio SNN / bar."""
    bars = ann_bars(energy)
    snn = bars[0][1]
    with F.style():
        fig = F.new_figure(0.45 * len(bars) + 1.0)
        ax = fig.subplots(1, 1)
        labels = [b[0] for b in bars][::-1]
        values = [b[1] for b in bars][::-1]
        container = ax.barh(labels, values, color=[F.COLORS[b[2]] for b in bars][::-1], height=0.6)
        for patch, (label, _, _) in zip(container.patches, bars[::-1]):
            if "memory" in label:
                patch.set_hatch("///")
                patch.set_edgecolor("white")
        texts = [f"{v:.1f} nJ" if v >= 1 else f"{v:.2f} nJ" for v in values]
        texts = [t if lab.startswith("SNN") or v <= 0 else f"{t}   (SNN / this = {snn / v:.1f}×)"
                 for t, lab, v in zip(texts, labels, values)]
        ax.bar_label(container, labels=texts, padding=3, fontsize=F.FONT_SIZE - 1)
        ax.set_xlim(0, max(values + [1e-9]) * 1.6)
        ax.set_xlabel(f"energy per inference ({F.ENERGY_UNIT}, linear)")
        ax.grid(axis="y", visible=False)
        ax.grid(axis="x", visible=True)
        fig.suptitle("Spiking network versus an ANN of the same shape: energy per inference")
    return fig


def raster_figure(raster: list, T: int, names: list[str], max_neurons: int) -> Figure:
    rows = max(1, len(raster))
    with F.style():
        fig = F.new_figure(0.35 + 1.15 * rows)
        axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
        for li, ax in enumerate(axes):
            pairs = raster[li] if li < len(raster) else []
            neurons = [int(F.finite(p[0], "raster neuron")) for p in pairs]
            steps = [int(F.finite(p[1], "raster timestep")) for p in pairs]
            ax.scatter(steps, neurons, marker="|", s=30, linewidths=1.2, color=F.COLORS["spike_raster"], gid=f"spikes-L{li}")
            name = names[li] if li < len(names) else f"L{li}"
            ax.set_ylabel(f"{name}\nneuron", fontsize=F.FONT_SIZE - 1)
            ax.set_ylim(-1, max_neurons)
            if not pairs:
                ax.text(0.5, 0.5, "no spikes" + (" (non-spiking readout)" if li == len(names) - 1 else ""), transform=ax.transAxes,
                        ha="center", va="center", color=F.COLORS["faint"])
        axes[-1].set_xlim(-0.5, T - 0.5)
        axes[-1].set_xlabel("timestep within the layer's window")
        axes[0].set_title(f"Spike raster of one inference (first {max_neurons} neurons per layer, T = {T})")
    return fig


def score_figure(report: dict) -> Figure:
    eps = report["episodes"]
    returns = [F.finite(r, "episode return") for r in eps["returns"]]
    mean = F.finite(eps["mean_return"], "mean_return")
    with F.style():
        fig = F.new_figure(2.4)
        ax = fig.subplots(1, 1)
        ax.bar(range(len(returns)), returns, color=F.COLORS["eval"], width=0.7)
        ax.axhline(mean, color="black", linestyle="--", linewidth=1,
                   label=f"mean {mean:.1f} ± {F.finite(eps['std_return'], 'std_return'):.1f} ({report.get('backend')})")
        train = (report.get("train_final_eval") or {}).get("mean")
        if isinstance(train, (int, float)):
            ax.axhline(train, color=F.COLORS["final"], linestyle=":", linewidth=1.4, label=f"training's final evaluation {train:.1f}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("episode")
        ax.set_ylabel("return")
        ax.set_title("Score: return per episode")
        ax.legend(loc="lower right")
    return fig


def latency_figure(lat: dict, names: list[str]) -> Figure:
    """Each layer's window on the inference (steps i + 1 .. T + i, dsqn.timing.window) and the next inference's."""
    T, depth, steps = int(lat["timesteps"]), int(lat["pipeline_depth"]), int(lat["steps_per_inference"])
    every = int(lat.get("new_inference_every_steps") or T)
    with F.style():
        fig = F.new_figure(1.2 + 0.32 * depth)
        ax = fig.subplots(1, 1)
        labels = [names[i] if i < len(names) else f"L{i}" for i in range(depth)]
        for k, (alpha, lab) in enumerate(((1.0, "this inference"), (0.35, "the next one"))):
            ax.barh(labels, [T] * depth, left=[k * every + i + 1 for i in range(depth)], color=F.COLORS["snn"], alpha=alpha,
                    height=0.6, label=lab)
        ax.axvline(steps, color="black", linestyle="--", linewidth=1, label=f"last layer done: T + L = {T} + {depth} = {steps}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.invert_yaxis()
        ax.set_xlim(0, every + steps + 1)
        ax.set_xlabel("timestep from presenting the observation")
        ax.grid(axis="y", visible=False)
        ax.grid(axis="x", visible=True)
        ax.set_title(f"Latency: {steps} timesteps per inference, a new inference every {every}")
        fig.legend(loc="outside lower center", ncols=3)
    return fig



def report_figures(report: dict) -> dict[str, Figure]:
    """Every figure of the page, by name (the page's element ids). Bad or missing fields: UserError."""
    try:
        energy = report["energy"]
        layers = energy["layers"]
        names = [str(layer["name"]) for layer in layers]
        _ = energy["ann"], report["episodes"]["returns"]  # the ANN figure and the score need them
    except (KeyError, TypeError) as exc:
        raise UserError(f"report is missing {exc}") from None
    T = int(report.get("timesteps") or 1)
    raster = report.get("raster") or {}
    figs = {
        "activity": activity_figure(layers, names, T),
        "synops": synops_figure(layers, names),
        "energy": energy_figure(energy, names),
        "ann": ann_figure(energy),
        "raster": raster_figure(raster.get("layers") or [], T, names, int(raster.get("max_neurons", 64))),
        "score": score_figure(report),
    }
    lat = energy.get("latency") or {}
    if lat.get("steps_per_inference"):
        figs["latency"] = latency_figure(lat, names)
    return figs


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
    status = _status(energy["profile"])
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


def _read_report(src: Path) -> dict:
    try:
        report = json.loads(src.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{src}: not a JSON file") from None
    except OSError as exc:
        raise UserError(f"{src}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    if not isinstance(report, dict) or report.get("format") != "dsqn-report":
        raise UserError(f"{src}: not a dsqn-deploy report (format marker missing)")
    return report


def _curves(source: str, out: str) -> int:
    metrics = F.metrics_path(source)
    out_dir = check_output_dir(out) if out else metrics.parent
    paths = F.training_curves(metrics, out_dir)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _comparison(args) -> int:  # type: ignore[no-untyped-def]
    if not args.out:
        raise UserError("several runs: give the output folder with -o")
    refs = []
    for item in args.reference:
        name, _, value = item.partition("=")
        try:
            if not name.strip():
                raise ValueError
            refs.append((name.strip(), float(value)))
        except ValueError:
            raise UserError(f"--reference {item!r}: expected NAME=VALUE with a number") from None
    labels = args.labels or [Path(s).name for s in args.source]
    paths = F.comparison_curves(args.source, labels, check_output_dir(args.out), refs, args.name, args.title)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


@cli_entry("dsqn-report")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="dsqn-report", allow_abbrev=False,
        description="Render a dsqn-deploy report JSON as a self-contained HTML page (figures inlined, and saved beside it as "
                    "SVG, PDF and PNG); or, given a run folder or its metrics.csv, draw the run's training curves.")
    parser.add_argument("source", nargs="+",
                        help="report JSON written by dsqn-deploy, or a training run folder / its metrics.csv; several run "
                             "folders (with --labels) are drawn on one axis")
    parser.add_argument("-o", "--out", default="",
                        help="report: the HTML path (default: the report path with .html); curves: the output folder "
                             "(default: the run folder)")
    parser.add_argument("--figures", default="", help="report: folder for the figure files (default: <page stem>_figures beside the page)")
    parser.add_argument("--curves", action="store_true", help="draw training curves from SOURCE (implied by a folder or a .csv file)")
    parser.add_argument("--labels", nargs="+", default=[], help="several runs: one label per run, in order (e.g. SNN ANN)")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=VALUE",
                        help="several runs: a horizontal line at VALUE named NAME (e.g. 'random=1598'); repeatable")
    parser.add_argument("--name", default="comparison_curves", help="several runs: the figure's file name stem")
    parser.add_argument("--title", default="", help="several runs: the figure's title")
    args = parser.parse_args(argv)
    if len(args.source) > 1 or args.labels:
        return _comparison(args)
    args.source = args.source[0]
    if args.curves or Path(args.source).is_dir() or args.source.endswith(".csv"):
        return _curves(args.source, args.out)
    src = check_input_file(args.source)
    out = check_output_file(Path(args.out) if args.out else src.with_suffix(".html"), [src], "HTML page")
    fig_dir = check_output_dir(args.figures) if args.figures else figure_dir_for(out)
    if fig_dir.exists() and not fig_dir.is_dir():
        raise UserError(f"{fig_dir}: exists and is not a folder (the page's figures go there)")
    report = _read_report(src)
    try:
        saved = write_html(report, out, fig_dir, inputs=(src,))
    except UserError as exc:
        raise UserError(f"{src}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError, OverflowError) as exc:
        raise UserError(f"{src}: malformed report ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})") from None
    print(f"wrote {out} and {len(saved)} figures (SVG, PDF, PNG) in {fig_dir}")
    return 0
