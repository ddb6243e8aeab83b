"""What a hardware reviewer checks beyond the totals (docs/energy.md): spikes per synapse per inference, the break-even
activity at which the spiking network's modelled energy would equal each ANN row, and the SNN/ANN ratio at both ends of
every constant's range (published where a range is published, else a documented factor, labelled as such)."""

from __future__ import annotations

from dataclasses import dataclass

from .profiles import (
    ANN_FP32_MAC_PJ,
    ANN_INT8_MAC_PJ,
    HALA_POINT_DNN_TOPS_PER_W,
    LOIHI1,
    LOIHI2_HALA_POINT,
    MEMORY_TIERS_64BIT_PJ,
    Profile,
)

ENERGY_VERSION = 2  # 1: totals, ANN rows, latency; 2 adds (additively) totals, spikes per synapse, break_even, sensitivity

# What every figure of the report is. The counts are exact (counted on the simulated network); every pJ is modelled.
BASIS = {
    "energy": "modelled",
    "modelled": "activity counted exactly on the simulated network (emulator or Lava CPU simulation) x per-operation "
                "energy constants of the profile (SNN) and of Horowitz, ISSCC 2014 (ANN)",
    "measured": None,
    "measured_note": "none: no neuromorphic hardware and no power measurement were used for this report",
}

# How to read each built-in profile's total: whether it bounds the real energy from above or below.
PROFILE_READING = {
    LOIHI1.name: "pre-silicon figures; 23.6 pJ is the published minimum per synaptic op (real synops cost at least that)",
    LOIHI2_HALA_POINT.name: "UPPER BOUND estimate: Hala Point's maximum system power charged to every operation at its peak "
                            "rate; a measured Loihi 2 figure would be lower (see the profile note)",
}

# Dampfhoffer et al., 'Are SNNs really more energy-efficient than ANNs? An in-depth hardware-aware study', IEEE TETCI 7(3),
# 2023: with memory accesses counted and an equally quantised accelerator as baseline, SNNs compete only below roughly
# 0.15-1.4 spikes per synapse per inference (the range spans their architectures and layer types).
DAMPFHOFFER_BREAK_EVEN_SPIKES_PER_SYNAPSE = (0.15, 1.4)
DAMPFHOFFER_SOURCE = ("Dampfhoffer et al., 'Are SNNs really more energy-efficient than ANNs? An in-depth hardware-aware "
                      "study', IEEE TETCI 7(3), 2023")

# Sensitivity: where a source publishes no range for a constant, its ends are the figure divided and multiplied by this
# factor. A choice made here (2x spans Horowitz's step from an 8 KB to a 32 KB SRAM), not a published range; labelled so.
UNPUBLISHED_FACTOR = 2.0
FACTOR_NOTE = f"no range published: x{1 / UNPUBLISHED_FACTOR:g}-x{UNPUBLISHED_FACTOR:g}, a documented factor, not a published range"
# Davies et al. 2018, Table 2: 3.0 pJ (E-W) / 4.0 pJ (N-S) per tile hop of a spike, on top of 1.7 pJ within a tile.
LOIHI1_TILE_HOP_PJ = (3.0, 4.0)
# Horowitz, ISSCC 2014: DRAM 1.3-2.6 nJ per 64-bit access (MEMORY_TIERS_64BIT_PJ prices the low end).
DRAM_64BIT_PJ_RANGE = (1300.0, 2600.0)
# Intel's Hala Point >15 TOPS/W on 8-bit DNNs read as one op = one synaptic op: the most favourable reading of a vendor
# figure, used only as the low end of the Loihi 2 synop range.
LOIHI2_SYNOP_LOW_PJ = 1e12 / (HALA_POINT_DNN_TOPS_PER_W * 1e12)

# The ANN rows every comparison is made against, most demanding first. The SNN's weights are 8-bit (NetX export), so the
# int8 ANN with its memory traffic is the equally quantised baseline Dampfhoffer et al. ask for.
ANN_ROWS = (
    ("int8_with_memory", "ANN int8, MACs + memory (equally quantised)"),
    ("fp32_with_memory", "ANN fp32, MACs + memory"),
    ("int8_macs", "ANN int8, MACs only"),
    ("fp32_macs", "ANN fp32, MACs only"),
)
SNN_CONSTANTS = ("synop", "neuron_update", "spike")
ANN_CONSTANTS = ("ann_mac", "sram", "dram")


@dataclass(frozen=True)
class ConstantRange:
    """One energy constant (or a set priced together) at its nominal pJ, and the factors giving its range's ends."""

    key: str  # one of SNN_CONSTANTS + ANN_CONSTANTS
    label: str
    nominal_pj: dict[str, float]  # what the factor multiplies: profile field or ANN constant -> pJ
    low: float  # factor on nominal_pj at the range's low end
    high: float
    basis: str  # "published", "published low end; factor high end", "derived low end; nominal is an upper bound", "factor"
    source: str


def _is_builtin(profile: dict, builtin: Profile) -> bool:
    """Whether a report's profile is that built-in one (same name and the same constants: a user file may reuse a name)."""
    return profile.get("name") == builtin.name and all(
        profile.get(k) == getattr(builtin, k)
        for k in ("synop_pj", "neuron_update_active_pj", "neuron_update_inactive_pj", "spike_pj"))


def constant_ranges(profile: dict) -> list[ConstantRange]:
    """The range of every constant the report uses, for the profile (a report's profile dict) and the ANN (Horowitz)."""
    syn = {"synop_pj": float(profile["synop_pj"])}
    upd = {"neuron_update_active_pj": float(profile["neuron_update_active_pj"]),
           "neuron_update_inactive_pj": float(profile["neuron_update_inactive_pj"])}
    spk = {"spike_pj": float(profile["spike_pj"])}
    f_lo, f_hi = 1 / UNPUBLISHED_FACTOR, UNPUBLISHED_FACTOR
    if _is_builtin(profile, LOIHI1):
        src = "Davies et al., IEEE Micro 2018, Table 2"
        hop = max(LOIHI1_TILE_HOP_PJ)
        snn = [ConstantRange("synop", "synaptic op", syn, 1.0, f_hi, "published low end; factor high end",
                             f"{src}: 23.6 pJ is the published minimum ('min'); no maximum published, high end x{f_hi:g} "
                             "(documented factor)"),
               ConstantRange("neuron_update", "neuron update (active / inactive)", upd, f_lo, f_hi, "factor",
                             f"{src}: single figures 81 / 52 pJ; {FACTOR_NOTE}"),
               ConstantRange("spike", "spike", spk, 1.0, (LOIHI1.spike_pj + hop) / LOIHI1.spike_pj, "published",
                             f"{src}: 1.7 pJ within a tile; high end adds one tile hop ({hop:g} pJ N-S; E-W 3.0 pJ)")]
    elif _is_builtin(profile, LOIHI2_HALA_POINT):
        src = "Intel Hala Point press release, 17 April 2024 (vendor system figures; see the profile note)"
        snn = [ConstantRange("synop", "synaptic op", syn, LOIHI2_SYNOP_LOW_PJ / LOIHI2_HALA_POINT.synop_pj, 1.0,
                             "derived low end; nominal is an upper bound",
                             f"{src}: low end 1 / (15 TOPS/W) = {LOIHI2_SYNOP_LOW_PJ:.3g} pJ (one 8-bit DNN op read as one "
                             "synop, the most favourable reading); high end = the estimate, an upper bound"),
               ConstantRange("neuron_update", "neuron update", upd, f_lo, 1.0, "factor low end; nominal is an upper bound",
                             f"{src}: no lower figure published, low end x{f_lo:g} (documented factor); high end = the "
                             "estimate, an upper bound")]
        # spikes: no separate figure (0 pJ, inside the system power), nothing to vary
    else:
        src = f"user profile {profile.get('name')!r} ({profile.get('source', '')})"
        snn = [ConstantRange(key, label, nom, f_lo, f_hi, "factor", f"{src}: {FACTOR_NOTE}")
               for key, label, nom in (("synop", "synaptic op", syn), ("neuron_update", "neuron update (active / inactive)", upd),
                                       ("spike", "spike", spk)) if any(nom.values())]
    sram = {name: pj for name, _, pj in MEMORY_TIERS_64BIT_PJ if name != "DRAM"}
    dram_nominal = dict((name, pj) for name, _, pj in MEMORY_TIERS_64BIT_PJ)["DRAM"]
    ann = [ConstantRange("ann_mac", "ANN MAC (fp32 / int8)", {"fp32_mac_pj": ANN_FP32_MAC_PJ, "int8_mac_pj": ANN_INT8_MAC_PJ},
                         f_lo, f_hi, "factor", f"Horowitz, ISSCC 2014, 45 nm: single figures 4.6 / 0.23 pJ; {FACTOR_NOTE}"),
           ConstantRange("sram", "SRAM access (per 64 bit)", sram, f_lo, f_hi, "factor",
                         f"Horowitz, ISSCC 2014: 10 / 20 / 100 pJ for 8 KB / 32 KB / 1 MB, one figure per size; {FACTOR_NOTE}"),
           ConstantRange("dram", "DRAM access (per 64 bit)", {"DRAM": dram_nominal}, DRAM_64BIT_PJ_RANGE[0] / dram_nominal,
                         DRAM_64BIT_PJ_RANGE[1] / dram_nominal, "published", "Horowitz, ISSCC 2014: DRAM 1.3-2.6 nJ")]
    return snn + ann


def activity_totals(energy: dict) -> dict:
    """Per-inference counts summed over layers, with spikes per synapse per inference and spikes per neuron update."""
    layers = energy["layers"]
    tot = {k: float(sum(x[k] for x in layers)) for k in ("in_events", "synops", "neuron_updates", "spikes")}
    tot["synapses"] = int(sum(layer_synapses(x) for x in layers))
    tot["spikes_per_synapse_per_inference"] = tot["synops"] / max(1, tot["synapses"])
    tot["spike_rate"] = tot["spikes"] / max(1.0, tot["neuron_updates"])
    return tot


def layer_synapses(row: dict) -> int:
    """A layer row's synapse count; rows of reports written before it was stored: its ANN MACs (equal for dense layers)."""
    return int(row["synapses"]) if row.get("synapses") is not None else int(row["ann_macs"])


def _snn_parts(tot: dict, profile: dict, scale: dict[str, float]) -> tuple[float, float]:
    """SNN energy per inference as fixed + variable pJ: every neuron update priced as inactive (it happens whatever the
    activity), and what each event adds (its synops, and its spike: the active-minus-inactive update plus the spike)."""
    s_syn, s_upd, s_spk = (scale.get(k, 1.0) for k in SNN_CONSTANTS)
    active, inactive = profile["neuron_update_active_pj"] * s_upd, profile["neuron_update_inactive_pj"] * s_upd
    fixed = tot["neuron_updates"] * inactive
    variable = tot["synops"] * profile["synop_pj"] * s_syn + tot["spikes"] * (active - inactive + profile["spike_pj"] * s_spk)
    return fixed, variable


def ann_row_energies(ann: dict, scale: dict[str, float]) -> dict[str, float]:
    """Each ANN row's pJ per inference with its constants scaled (MAC, SRAM and DRAM factors; 1 = as reported)."""
    s_mac = scale.get("ann_mac", 1.0)
    out = {"fp32_macs": ann["fp32_energy_pj"] * s_mac, "int8_macs": ann["int8_energy_pj"] * s_mac}
    mem = ann.get("with_memory")
    if mem:
        def tier(name: str) -> float:
            return scale.get("dram", 1.0) if name == "DRAM" else scale.get("sram", 1.0)

        for p in ("fp32", "int8"):
            m = mem[p]
            out[f"{p}_with_memory"] = (m["mac_pj"] * s_mac + m["weight_pj"] * tier(m["weights_in"])
                                       + m["activation_pj"] * tier(m["activations_in"]))
    return {k: out[k] for k, _ in ANN_ROWS if k in out}


def _max_scale(energy: dict) -> float | None:
    """The largest factor on today's spikes that keeps every spiking layer at or below one spike per neuron update."""
    caps = [x["neuron_updates"] / x["spikes"] for x in energy["layers"] if x["spikes"] > 0]
    return min(caps) if caps else None


def break_even(energy: dict, scale: dict[str, float] | None = None) -> dict:
    """The activity at which the SNN's modelled energy equals each ANN row.

    Activity is scaled by one factor k on every event count (input events, synops, spikes: a uniformly sparser or denser
    network with the same pattern); neuron updates (N x T per layer) do not change with activity. Energy is linear in k:
    E(k) = fixed + k x variable (``_snn_parts``), so k* = (E_ANN - fixed) / variable, and the break-even rate is k* times
    today's spikes per synapse per inference. Where E_ANN <= fixed no activity reaches it: the neuron updates alone cost more.
    """
    scale = scale or {}
    tot = activity_totals(energy)
    fixed, variable = _snn_parts(tot, energy["profile"], scale)
    now = tot["spikes_per_synapse_per_inference"]
    k_max = _max_scale(energy)
    rows = []
    for key, label in ANN_ROWS:
        e_ann = ann_row_energies(energy["ann"], scale).get(key)
        if e_ann is None:
            continue
        row = {"ann": key, "label": label, "ann_energy_pj": e_ann, "ratio_snn_over_ann": (fixed + variable) / max(1e-12, e_ann),
               "scale": None, "spikes_per_synapse_per_inference": None, "synops_per_inference": None, "reachable": False}
        if e_ann <= fixed:
            row["reason"] = (f"not reachable by sparsity: at zero events the neuron updates alone cost {fixed / 1e3:.3g} nJ, "
                             f"the ANN {e_ann / 1e3:.3g} nJ; only fewer neurons or a shorter T lower that")
        elif variable <= 0:
            row["reason"] = "no events counted: no activity to scale (the SNN costs its neuron updates only)"
        else:
            k = (e_ann - fixed) / variable
            row.update(scale=k, spikes_per_synapse_per_inference=k * now, synops_per_inference=k * tot["synops"], reachable=True)
            row["reason"] = ("above the most this network can fire (every neuron spiking every timestep): the SNN costs less "
                             "at any activity" if k_max is not None and k > k_max else
                             f"SNN activity must be x{k:.3g} of today's" if k < 1 else f"today's activity may grow x{k:.3g}")
        rows.append(row)
    return {"definition": "every event count scaled by one factor k (neuron updates fixed); break-even rate = k x today's "
                          "spikes per synapse per inference",
            "current_spikes_per_synapse_per_inference": now, "fixed_pj": fixed, "variable_pj": variable,
            "max_scale": k_max, "rows": rows}


def sensitivity(energy: dict) -> dict:
    """SNN/ANN ratio for each ANN row with one constant at the low and at the high end of its range (the others nominal),
    and with all at once at the end most and least favourable to the SNN; ``flips`` names the rows whose verdict (which
    side of 1 the ratio is) changes somewhere in the ranges."""
    tot = activity_totals(energy)
    profile = energy["profile"]

    def ratios(scale: dict[str, float]) -> dict[str, float]:
        e_snn = sum(_snn_parts(tot, profile, scale))
        return {k: e_snn / max(1e-12, v) for k, v in ann_row_energies(energy["ann"], scale).items()}

    nominal = ratios({})
    mem = energy["ann"].get("with_memory") or {}
    tiers = {mem[p][k] for p in ("fp32", "int8") if p in mem for k in ("weights_in", "activations_in")}
    rows = []
    for c in constant_ranges(profile):
        used = c.key not in ("sram", "dram") or any((t == "DRAM") == (c.key == "dram") for t in tiers)
        lo, hi = ratios({c.key: c.low}), ratios({c.key: c.high})
        rows.append({"constant": c.key, "label": c.label, "side": "snn" if c.key in SNN_CONSTANTS else "ann",
                     "nominal_pj": c.nominal_pj, "low_pj": {k: v * c.low for k, v in c.nominal_pj.items()},
                     "high_pj": {k: v * c.high for k, v in c.nominal_pj.items()}, "low_factor": c.low,
                     "high_factor": c.high, "basis": c.basis, "source": c.source, "used": used,
                     "ratio_low": lo, "ratio_high": hi})
    keys = {c.key: c for c in constant_ranges(profile)}
    favourable = {k: (c.low if k in SNN_CONSTANTS else c.high) for k, c in keys.items()}
    unfavourable = {k: (c.high if k in SNN_CONSTANTS else c.low) for k, c in keys.items()}
    ends = [nominal, ratios(favourable), ratios(unfavourable)] + [r[e] for r in rows for e in ("ratio_low", "ratio_high")]
    flips = [k for k in nominal if len({e[k] > 1 for e in ends}) > 1]
    return {"nominal": nominal, "rows": rows,
            "extremes": {"favourable_to_snn": {"scale": favourable, "ratios": ratios(favourable),
                                               "break_even": break_even(energy, favourable)["rows"]},
                         "unfavourable_to_snn": {"scale": unfavourable, "ratios": ratios(unfavourable)}},
            "flips": flips}


def analyse(energy: dict) -> dict:
    """The reviewer's figures of a report's energy dict (also one written before them: synapses then = ANN MACs)."""
    return {"totals": activity_totals(energy), "break_even": break_even(energy), "sensitivity": sensitivity(energy),
            "profile_reading": PROFILE_READING.get(energy["profile"]["name"]) if any(
                _is_builtin(energy["profile"], p) for p in (LOIHI1, LOIHI2_HALA_POINT)) else "user profile: as given",
            "basis": BASIS, "reference": {"source": DAMPFHOFFER_SOURCE,
                                          "break_even_spikes_per_synapse": list(DAMPFHOFFER_BREAK_EVEN_SPIKES_PER_SYNAPSE)}}
