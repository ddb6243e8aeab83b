"""Energy per inference from activity counts, under named and sourced energy profiles."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from dsqn.errors import UserError

from .counters import Totals


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    synop_pj: float
    neuron_update_active_pj: float
    neuron_update_inactive_pj: float
    spike_pj: float
    estimate: bool = False
    note: str = ""


LOIHI1 = Profile(
    name="loihi1-davies2018",
    source="Davies et al., 'Loihi: A Neuromorphic Manycore Processor', IEEE Micro 38(1), 2018, Table 2 (pre-silicon)",
    synop_pj=23.6, neuron_update_active_pj=81.0, neuron_update_inactive_pj=52.0, spike_pj=1.7,
    note="active update = a neuron update in which the neuron spiked; spikes priced as within-tile (1.7 pJ)",
)
LOIHI2_EST = Profile(
    name="loihi2-estimate",
    source="ESTIMATE: Intel publishes no per-operation energy table for Loihi 2; Loihi 1 figures (Davies 2018) "
    "reused unchanged as an upper-bound placeholder. Measure with lava.utils.loihi2_profiler_api on hardware.",
    synop_pj=23.6, neuron_update_active_pj=81.0, neuron_update_inactive_pj=52.0, spike_pj=1.7, estimate=True,
)
PROFILES = {p.name: p for p in (LOIHI1, LOIHI2_EST)}

# Horowitz, 'Computing's energy problem', ISSCC 2014 (45 nm): fp32 MAC = 3.7 pJ mult + 0.9 pJ add.
ANN_FP32_MAC_PJ = 4.6
ANN_INT8_MAC_PJ = 0.23
ANN_SOURCE = "Horowitz, ISSCC 2014, 45 nm: fp32 MAC 4.6 pJ (3.7 mult + 0.9 add), int8 MAC 0.23 pJ"


def load_profile(name_or_path: str) -> Profile:
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise UserError(f"energy profile {name_or_path!r}: not a built-in profile ({', '.join(PROFILES)}) nor a file")
    try:
        data = json.loads(path.read_text())
        return Profile(**data)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a valid energy profile ({exc})") from None


def energy_report(totals: Totals, profile: Profile, ann_macs: list[int], layer_names: list[str],
                  spikes_per_step: list | None = None, n_neurons: list[int] | None = None) -> dict:
    """Per-layer and total energy per inference (pJ), beside an ANN of the same shape."""
    per = totals.per_inference()
    layers = []
    total = 0.0
    for i, name in enumerate(layer_names):
        syn = per["synops"][i] * profile.synop_pj
        spikes = per["spikes"][i]
        upd = spikes * profile.neuron_update_active_pj + (per["updates"][i] - spikes) * profile.neuron_update_inactive_pj
        spk = spikes * profile.spike_pj
        e = syn + upd + spk
        total += e
        layers.append({
            "layer": i, "name": name, "in_events": per["in_events"][i], "synops": per["synops"][i],
            "neuron_updates": per["updates"][i], "spikes": spikes,
            "energy_pj": {"synops": syn, "neuron_updates": upd, "spikes": spk, "total": e},
            "ann_macs": ann_macs[i],
            "n_neurons": None if n_neurons is None else n_neurons[i],
            "spikes_per_step": None if spikes_per_step is None else [x / max(1, totals.inferences) for x in spikes_per_step[i]],
        })
    macs = sum(ann_macs)
    return {
        "profile": asdict(profile),
        "inferences": totals.inferences,
        "layers": layers,
        "snn_energy_per_inference_pj": total,
        "ann": {
            "macs_per_inference": macs,
            "fp32_energy_pj": macs * ANN_FP32_MAC_PJ,
            "int8_energy_pj": macs * ANN_INT8_MAC_PJ,
            "source": ANN_SOURCE,
        },
        "ratio_snn_over_ann_fp32": total / max(1e-12, macs * ANN_FP32_MAC_PJ),
        "ratio_snn_over_ann_int8": total / max(1e-12, macs * ANN_INT8_MAC_PJ),
    }


def format_energy(rep: dict) -> str:
    lines = [f"energy per inference, profile {rep['profile']['name']} ({'ESTIMATE' if rep['profile']['estimate'] else 'published figures'}), "
             f"mean over {rep['inferences']} inferences"]
    head = f"{'layer':<10} {'in events':>10} {'synops':>11} {'updates':>9} {'spikes':>9} {'energy nJ':>10} {'ANN MACs':>10}"
    lines += [head, "-" * len(head)]
    for r in rep["layers"]:
        lines.append(f"{r['name']:<10} {r['in_events']:>10.1f} {r['synops']:>11.1f} {r['neuron_updates']:>9.0f} {r['spikes']:>9.1f} "
                     f"{r['energy_pj']['total'] / 1e3:>10.2f} {r['ann_macs']:>10d}")
    ann = rep["ann"]
    lines.append(f"SNN total {rep['snn_energy_per_inference_pj'] / 1e3:.2f} nJ | ANN same shape: {ann['macs_per_inference']} MACs = "
                 f"{ann['fp32_energy_pj'] / 1e3:.2f} nJ fp32, {ann['int8_energy_pj'] / 1e3:.2f} nJ int8 | "
                 f"SNN/ANN-fp32 = {rep['ratio_snn_over_ann_fp32']:.2f}x, SNN/ANN-int8 = {rep['ratio_snn_over_ann_int8']:.2f}x")
    lines.append(f"sources: {rep['profile']['source']}; {ann['source']}")
    return "\n".join(lines)
