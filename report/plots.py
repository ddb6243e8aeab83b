"""The report page's figures, one function each, from a report dict (matplotlib; style from ``report.figures``)."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dsqn.errors import UserError
from dsqn.report import figures as F

from .profiles import PROFILES


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
    out = [{"name": prof["name"], "status": profile_status(prof), "source": prof.get("source", ""), "recomputed": False,
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
    """Each layer's window on the inference (steps i + 1 .. T + i, dsqn.kernels.timing.window) and the next inference's."""
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


def profile_status(profile: dict) -> str:
    """The profile's status; reports of format_version 1 written before it had one: the built-in profile's own, else
    what their ``estimate`` flag says."""
    if profile.get("status"):
        return profile["status"]
    if profile.get("name") in PROFILES:
        return PROFILES[profile["name"]].status
    return "estimate" if profile.get("estimate") else "published"
