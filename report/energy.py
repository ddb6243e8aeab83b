"""Energy per inference from activity counts, under named and sourced energy profiles.

Every profile names its source and a status: ``published`` (measured on silicon and published),
``pre-silicon`` (published by the designers before or without silicon measurement) or ``estimate``
(derived here from figures that do not price single operations; the arithmetic is in its note).
The ANN of the same shape is priced twice from Horowitz (ISSCC 2014, 45 nm): MACs only, and MACs plus
the memory reads and writes an inference cannot avoid (each weight read once, each activation read once
and written once).

Every energy here is MODELLED: activity counted exactly on the simulated network times per-operation constants from the
sources named below. None is MEASURED: no neuromorphic hardware or power meter is used. Beyond the totals, the report
gives what a hardware reviewer checks (``analyse``): spikes per synapse per inference, the break-even activity at which
the spiking network's modelled energy would equal each ANN row, and the SNN/ANN ratio at both ends of every constant's
range (published where a range is published, else a documented factor, labelled as such). docs/energy.md explains it.
"""

from __future__ import annotations

from dataclasses import asdict

from dsqn.errors import UserError
from dsqn.files.netfile import Layer
from dsqn.hw_sim.counters import Totals, synapse_counts

from .analysis import (
    ANN_ROWS,
    BASIS,
    DAMPFHOFFER_BREAK_EVEN_SPIKES_PER_SYNAPSE,
    DAMPFHOFFER_SOURCE,
    ENERGY_VERSION,
    PROFILE_READING,
    activity_totals,
    analyse,
    layer_synapses,
)
from .profiles import ANN_FP32_MAC_PJ, ANN_INT8_MAC_PJ, ANN_SOURCE, Profile, ann_memory_energy, latency


def energy_report(totals: Totals, profile: Profile, ann_macs: list[int], layer_names: list[str],
                  spikes_per_step: list | None = None, n_neurons: list[int] | None = None,
                  layers: list[Layer] | None = None, timesteps: int | None = None,
                  synapses: list[int] | None = None) -> dict:
    """Per-layer and total energy per inference (pJ), beside an ANN of the same shape (MACs only and, given the
    layers, MACs plus memory), the latency in timesteps (T from ``timesteps``, else the spike windows' length), and
    ``analyse``'s break-even and sensitivity.

    Spikes per synapse per inference (Dampfhoffer et al. 2023): a layer's input events times their fan-out, i.e. its
    synops, divided by its number of synapses (``synapses``, default: counted from ``layers``, else its ANN MACs) = the
    events each synapse carries per inference. For a dense layer it equals the mean number of events each source neuron
    sends per inference; the first layer's events are the encoder's graded input events (non-zero payloads x T).
    """
    if synapses is None:
        synapses = synapse_counts(layers) if layers is not None else list(ann_macs)
    if len(synapses) != len(layer_names):
        raise UserError(f"energy report: {len(synapses)} synapse counts for {len(layer_names)} layers")
    per = totals.per_inference()
    rows = []
    total = 0.0
    for i, name in enumerate(layer_names):
        syn = per["synops"][i] * profile.synop_pj
        spikes = per["spikes"][i]
        upd = spikes * profile.neuron_update_active_pj + (per["updates"][i] - spikes) * profile.neuron_update_inactive_pj
        spk = spikes * profile.spike_pj
        e = syn + upd + spk
        total += e
        rows.append({
            "layer": i, "name": name, "in_events": per["in_events"][i], "synops": per["synops"][i],
            "neuron_updates": per["updates"][i], "spikes": spikes,
            "energy_pj": {"synops": syn, "neuron_updates": upd, "spikes": spk, "total": e},
            "ann_macs": ann_macs[i],
            "synapses": int(synapses[i]),
            "spikes_per_synapse_per_inference": per["synops"][i] / max(1, synapses[i]),
            "spike_rate": spikes / max(1.0, per["updates"][i]),  # spikes per neuron update = per neuron per timestep
            "n_neurons": None if n_neurons is None else n_neurons[i],
            "spikes_per_step": None if spikes_per_step is None else [x / max(1, totals.inferences) for x in spikes_per_step[i]],
        })
    macs = sum(ann_macs)
    if timesteps is None and spikes_per_step:
        timesteps = len(spikes_per_step[0])
    ann = {
        "macs_per_inference": macs,
        "fp32_energy_pj": macs * ANN_FP32_MAC_PJ,
        "int8_energy_pj": macs * ANN_INT8_MAC_PJ,
        "source": ANN_SOURCE,
        "label": "ANN same shape, MACs only",
        "with_memory": None if layers is None else ann_memory_energy(layers),
    }
    rep = {
        "profile": asdict(profile),
        "inferences": totals.inferences,
        "layers": rows,
        "snn_energy_per_inference_pj": total,
        "ann": ann,
        "ratio_snn_over_ann_fp32": total / max(1e-12, macs * ANN_FP32_MAC_PJ),
        "ratio_snn_over_ann_int8": total / max(1e-12, macs * ANN_INT8_MAC_PJ),
        "latency": latency(profile, timesteps, len(layer_names)),
    }
    if ann["with_memory"] is not None:
        rep["ratio_snn_over_ann_fp32_with_memory"] = total / max(1e-12, ann["with_memory"]["fp32"]["energy_pj"])
        rep["ratio_snn_over_ann_int8_with_memory"] = total / max(1e-12, ann["with_memory"]["int8"]["energy_pj"])
    rep["energy_version"] = ENERGY_VERSION
    rep.update(analyse(rep))
    return rep


def _x(r: float) -> str:
    return f"{r:.3g}x"


def _pj_text(values: dict[str, float]) -> str:
    return " / ".join(f"{v:.3g}" for v in values.values()) + " pJ"


def format_reviewer_lines(rep: dict) -> list[str]:
    """Spikes per synapse, break-even and sensitivity lines (``analyse``; recomputed for a report written before them)."""
    a = rep if "break_even" in rep else {**rep, **analyse(rep)}
    tot, be, sens = a["totals"], a["break_even"], a["sensitivity"]
    lo, hi = DAMPFHOFFER_BREAK_EVEN_SPIKES_PER_SYNAPSE
    per_layer = ", ".join(f"{x['name']} {x['synops'] / max(1, layer_synapses(x)):.3g}" for x in rep["layers"])
    lines = [f"spikes per synapse per inference (counted, not modelled: synops / synapses): "
             f"{tot['spikes_per_synapse_per_inference']:.3g} total ({per_layer}); Dampfhoffer et al. 2023 find SNNs "
             f"competitive only below ~{lo:g}-{hi:g}",
             f"break-even (modelled): the activity at which the SNN would cost what each ANN row costs; every event count "
             f"scaled by k, the neuron updates fixed ({be['fixed_pj'] / 1e3:.3g} nJ at zero events); SNN now "
             f"{be['current_spikes_per_synapse_per_inference']:.3g} spikes/synapse/inference"]
    for row in be["rows"]:
        where = (f"at {row['spikes_per_synapse_per_inference']:.3g} spikes/synapse/inference (k = {row['scale']:.3g}; "
                 f"{row['reason']})" if row["reachable"] else f"none ({row['reason']})")
        lines.append(f"  {row['label']}: {row['ann_energy_pj'] / 1e3:.3g} nJ, SNN/ANN {_x(row['ratio_snn_over_ann'])} -> "
                     f"break-even {where}")
    cols = [k for k in ("int8_with_memory", "fp32_with_memory") if k in sens["nominal"]] or ["int8_macs", "fp32_macs"]
    names = " | ".join(dict(ANN_ROWS)[k] for k in cols)
    lines.append(f"sensitivity (modelled): SNN/ANN with one constant at the low / high end of its range, the others "
                 f"nominal; against {names}: nominal {' | '.join(_x(sens['nominal'][k]) for k in cols)}")
    for r in sens["rows"]:
        span = " | ".join(f"{_x(r['ratio_low'][k])} / {_x(r['ratio_high'][k])}" for k in cols)
        lines.append(f"  {r['label']} {_pj_text(r['nominal_pj'])}, range {_pj_text(r['low_pj'])} to {_pj_text(r['high_pj'])} "
                     f"[{r['basis']}]: " + (span if r["used"] else "not used by this network's ANN (memory elsewhere)"))
    ext = sens["extremes"]
    fav, unf = ext["favourable_to_snn"]["ratios"], ext["unfavourable_to_snn"]["ratios"]
    lines.append("  all constants at the end most / least favourable to the SNN: "
                 + " | ".join(f"{_x(fav[k])} / {_x(unf[k])}" for k in cols))
    flips = [dict(ANN_ROWS)[k] for k in sens["flips"]]
    lines.append("  verdict: " + ("flips within the ranges against " + ", ".join(flips) if flips else
                                  "the same at every end of every range (SNN " + ("costs more" if sens["nominal"][cols[0]] > 1
                                                                                  else "costs less") + ")"))
    return lines


def format_energy(rep: dict) -> str:
    prof = rep["profile"]
    status = prof.get("status") or ("estimate" if prof.get("estimate") else "published")
    basis = rep.get("basis") or BASIS
    lines = [f"energy per inference, profile {prof['name']} [status: {status.upper() if status == 'estimate' else status}], "
             f"mean over {rep['inferences']} inferences",
             f"every energy below is MODELLED ({basis['modelled']}); MEASURED: {basis['measured_note']}"]
    head = (f"{'layer':<10} {'in events':>10} {'synops':>11} {'synapses':>9} {'spk/syn/inf':>11} {'updates':>9} {'spikes':>9} "
            f"{'rate':>6} {'energy nJ':>10} {'ANN MACs':>10}")
    lines += [head, "-" * len(head)]
    tot = rep.get("totals") or activity_totals(rep)
    for r in rep["layers"] + [{"name": "total", "in_events": tot["in_events"], "synops": tot["synops"],
                               "neuron_updates": tot["neuron_updates"], "spikes": tot["spikes"], "synapses": tot["synapses"],
                               "energy_pj": {"total": rep["snn_energy_per_inference_pj"]},
                               "ann_macs": rep["ann"]["macs_per_inference"]}]:
        syn = layer_synapses(r)
        lines.append(f"{r['name']:<10} {r['in_events']:>10.1f} {r['synops']:>11.1f} {syn:>9d} {r['synops'] / max(1, syn):>11.3f} "
                     f"{r['neuron_updates']:>9.0f} {r['spikes']:>9.1f} {r['spikes'] / max(1.0, r['neuron_updates']):>6.3f} "
                     f"{r['energy_pj']['total'] / 1e3:>10.2f} {r['ann_macs']:>10d}")
    lines.append("(spk/syn/inf: spikes per synapse per inference = synops / synapses; rate: spikes per neuron per timestep; "
                 "in events of the first layer: graded input events)")
    ann = rep["ann"]
    reading = rep.get("profile_reading") or PROFILE_READING.get(prof["name"], "user profile: as given")
    lines.append(f"SNN total {rep['snn_energy_per_inference_pj'] / 1e3:.2f} nJ ({prof['name']}, {status}; modelled; {reading})")
    lines.append(f"ANN same shape, MACs only: {ann['macs_per_inference']} MACs = "
                 f"{ann['fp32_energy_pj'] / 1e3:.2f} nJ fp32, {ann['int8_energy_pj'] / 1e3:.2f} nJ int8 | "
                 f"SNN/ANN-fp32 = {rep['ratio_snn_over_ann_fp32']:.2f}x, SNN/ANN-int8 = {rep['ratio_snn_over_ann_int8']:.2f}x")
    mem = ann.get("with_memory")
    if mem:
        f32, i8 = mem["fp32"], mem["int8"]
        lines.append(f"ANN same shape, MACs + memory ({mem['weight_reads']} weight reads, {mem['activation_reads']} activation "
                     f"reads, {mem['activation_writes']} writes): {f32['energy_pj'] / 1e3:.2f} nJ fp32 (weights in "
                     f"{f32['weights_in']}, activations in {f32['activations_in']}), {i8['energy_pj'] / 1e3:.2f} nJ int8 "
                     f"(weights in {i8['weights_in']}, activations in {i8['activations_in']}) | "
                     f"SNN/ANN-fp32 = {rep['ratio_snn_over_ann_fp32_with_memory']:.2f}x, "
                     f"SNN/ANN-int8 = {rep['ratio_snn_over_ann_int8_with_memory']:.2f}x")
    lines += format_reviewer_lines(rep)
    lat = rep.get("latency")
    if lat and lat.get("steps_per_inference") is not None:
        t = lat["time_per_step_ns"]
        time = (f"{t:g} ns per timestep, {lat['time_per_inference_ns'] / 1e3:.3g} us per inference ({lat['time_source']})"
                if t is not None else f"time per timestep: {lat['time_source']}")
        lines.append(f"latency: T {lat['timesteps']} + pipeline depth {lat['pipeline_depth']} = {lat['steps_per_inference']} "
                     f"timesteps per inference (a new inference can start every {lat['new_inference_every_steps']}); {time}")
    lines.append(f"profile source [{status}]: {prof['source']}")
    if prof.get("note"):
        lines.append(f"profile notes: {prof['note']}")
    lines.append(f"ANN sources: {ann['source']}" + (f"; {mem['source']}; assumptions: {mem['assumptions']}" if mem else ""))
    lines.append(f"break-even reference: {DAMPFHOFFER_SOURCE}; constant ranges and their sources: docs/energy.md")
    return "\n".join(lines)
