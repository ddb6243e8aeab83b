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

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dsqn import timing
from dsqn.errors import UserError
from dsqn.hw_sim.counters import Totals, synapse_counts
from dsqn.hw_sim.counters import ann_macs as count_ann_macs
from dsqn.netfile import Layer

STATUSES = ("published", "pre-silicon", "estimate")
NO_TIME_FIGURE = "no published figure"


@dataclass(frozen=True)
class Profile:
    """Energy of one operation of each kind, in pJ, with where the figures come from."""

    name: str
    source: str
    synop_pj: float
    neuron_update_active_pj: float
    neuron_update_inactive_pj: float
    spike_pj: float
    estimate: bool = False  # kept for reports of format_version 1: True exactly when status == "estimate"
    note: str = ""
    status: str = "estimate"
    time_per_step_ns: float | None = None  # wall time of one timestep, where a sourced figure exists
    time_source: str = NO_TIME_FIGURE


LOIHI1 = Profile(
    name="loihi1-davies2018",
    source="Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro 38(1), 2018, "
    "Table 2 (pre-silicon)",
    synop_pj=23.6, neuron_update_active_pj=81.0, neuron_update_inactive_pj=52.0, spike_pj=1.7,
    status="pre-silicon", estimate=False,
    note="23.6 pJ is the paper's minimum per synaptic op; active update = a neuron update in which the neuron "
    "spiked; spikes priced as within-tile (1.7 pJ), tile hops (3.0-4.0 pJ) not counted. Time per timestep: the "
    "paper gives per-operation latencies but no per-timestep time for a mapped network, so none is used.",
)

# Intel, 'Intel Builds World's Largest Neuromorphic System to Enable More Sustainable AI', press release,
# 17 April 2024 (Hala Point): 1,152 Loihi 2 chips, at most 2,600 W; over 380 trillion 8-bit synapses and over
# 240 trillion neuron operations per second; up to 20 petaops at over 15 TOPS/W (8-bit) on conventional DNNs.
HALA_POINT_MAX_W = 2600.0
HALA_POINT_SYNOPS_PER_S = 380e12
HALA_POINT_NEURON_OPS_PER_S = 240e12
HALA_POINT_DNN_OPS_PER_S = 20e15
HALA_POINT_DNN_TOPS_PER_W = 15.0

LOIHI2_HALA_POINT = Profile(
    name="loihi2-halapoint-estimate",
    source="ESTIMATE from system-level vendor figures: Intel press release 'Intel Builds World's Largest Neuromorphic "
    "System to Enable More Sustainable AI' (Hala Point, 17 April 2024). Intel publishes no per-operation energy "
    "table for Loihi 2.",
    synop_pj=HALA_POINT_MAX_W / HALA_POINT_SYNOPS_PER_S * 1e12,
    neuron_update_active_pj=HALA_POINT_MAX_W / HALA_POINT_NEURON_OPS_PER_S * 1e12,
    neuron_update_inactive_pj=HALA_POINT_MAX_W / HALA_POINT_NEURON_OPS_PER_S * 1e12,
    spike_pj=0.0,
    status="estimate", estimate=True,
    note="Hala Point: 1,152 Loihi 2 chips, maximum 2,600 W, >380e12 8-bit synaptic ops/s, >240e12 neuron ops/s. "
    "synop = 2600 W / 380e12 /s = 6.84 pJ; neuron update (active or inactive) = 2600 W / 240e12 /s = 10.83 pJ; "
    "spikes: no separate figure (inside the system power), 0 pJ. Reading: the whole maximum system power (incl. its "
    ">2,300 embedded x86 processors, I/O, idle power) is charged to each kind of operation at its peak rate, and "
    "charging both kinds counts it up to twice: high while the system runs at those peak rates; a small network "
    "using a few cores also pays idle power per op that no published figure gives. Intel's DNN figures give far less per 'op': "
    "2600 W / 20e15 op/s = 0.13 pJ, and 1 / (15e12 op/s/W) = 0.067 pJ at >15 TOPS/W (8-bit); Intel does not say "
    "what one such op is (a MAC may count as 2 ops; sparsity may be credited), so they are not used per synaptic op "
    "(they would make this profile ~50-100x lower). The two figures are not mutually consistent (20e15 op/s at "
    "15 TOPS/W would draw ~1,300 W, not 2,600 W), another sign they are vendor peak figures. No per-timestep time "
    "is published. Measure on hardware (lava.utils.loihi2_profiler_api) before relying on any of this.",
)
PROFILES = {p.name: p for p in (LOIHI1, LOIHI2_HALA_POINT)}
PROFILES["loihi2-estimate"] = LOIHI2_HALA_POINT  # earlier name of the Loihi 2 profile, still accepted

# Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, 0.9 V:
# fp32 mult 3.7 pJ + fp32 add 0.9 pJ; int8 mult 0.2 pJ + int8 add 0.03 pJ.
ANN_FP32_MAC_PJ = 4.6
ANN_INT8_MAC_PJ = 0.23
ANN_SOURCE = "Horowitz, ISSCC 2014, 45 nm: fp32 MAC 4.6 pJ (3.7 mult + 0.9 add), int8 MAC 0.23 pJ (0.2 mult + 0.03 add)"
# Same source, energy of one 64-bit memory access: cache/SRAM of 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; DRAM
# 1.3-2.6 nJ (the low end is used: it favours the ANN).
MEMORY_TIERS_64BIT_PJ = (("SRAM 8 KB", 8 * 1024, 10.0), ("SRAM 32 KB", 32 * 1024, 20.0),
                         ("SRAM 1 MB", 1024 * 1024, 100.0), ("DRAM", math.inf, 1300.0))
ANN_MEMORY_SOURCE = ("Horowitz, ISSCC 2014, 45 nm, per 64-bit access: 8 KB SRAM 10 pJ, 32 KB SRAM 20 pJ, 1 MB SRAM "
                     "100 pJ, DRAM 1.3-2.6 nJ (1.3 nJ used)")
ANN_MEMORY_ASSUMPTIONS = (
    "each weight read once per inference (no re-reads for conv reuse), each layer's input activations read once and "
    "its outputs written once, biases ignored (as in the MAC count); weights sit in the smallest memory of Horowitz's "
    "table that holds all of them, activations in the smallest that holds the largest layer's input + output; words "
    "packed densely into 64-bit accesses (a 32-bit word costs half a 64-bit access, an 8-bit word an eighth)")


def _fail(where: str, message: str) -> UserError:
    return UserError(f"{where}: energy profile {message}")


def validate_profile(data: object, where: str) -> Profile:
    """A profile from a user's JSON object, or a UserError naming the first bad field."""
    if not isinstance(data, dict):
        raise _fail(where, f"must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(Profile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(where, f"has unknown field {unknown[0]!r} (fields: {', '.join(sorted(known))})")
    for key in ("name", "source"):
        if key not in data:
            raise _fail(where, f"field {key!r} is missing")
        if not isinstance(data[key], str) or not data[key].strip():
            raise _fail(where, f"field {key!r} must be a non-empty string")
    for key in ("synop_pj", "neuron_update_active_pj", "neuron_update_inactive_pj", "spike_pj"):
        if key not in data:
            raise _fail(where, f"field {key!r} is missing")
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise _fail(where, f"field {key!r} must be a finite number >= 0 (pJ), got {v!r}")
    status = data.get("status", "estimate")  # a file that gives no status is labelled an estimate
    if status not in STATUSES:
        raise _fail(where, f"field 'status' must be one of {', '.join(STATUSES)}, got {status!r}")
    if "estimate" in data and (not isinstance(data["estimate"], bool) or data["estimate"] != (status == "estimate")):
        raise _fail(where, f"field 'estimate' ({data['estimate']!r}) contradicts status {status!r}")
    for key in ("note", "time_source"):
        if key in data and not isinstance(data[key], str):
            raise _fail(where, f"field {key!r} must be a string")
    t = data.get("time_per_step_ns")
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise _fail(where, f"field 'time_per_step_ns' must be a finite number > 0 or null, got {t!r}")
        if not str(data.get("time_source", "")).strip() or data.get("time_source") == NO_TIME_FIGURE:
            raise _fail(where, "field 'time_source' is missing: a time per step needs its source")
    note = data.get("note", "")
    if "status" not in data:
        note = (note + " " if note else "") + "(no status given in the file: labelled an estimate)"
    return Profile(**{**data, "status": status, "estimate": status == "estimate", "note": note,
                      "synop_pj": float(data["synop_pj"]), "spike_pj": float(data["spike_pj"]),
                      "neuron_update_active_pj": float(data["neuron_update_active_pj"]),
                      "neuron_update_inactive_pj": float(data["neuron_update_inactive_pj"])})


def load_profile(name_or_path: str) -> Profile:
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise UserError(f"energy profile {name_or_path!r}: not a built-in profile ({', '.join(PROFILES)}) nor a file")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path}: not a valid energy profile (not a JSON file)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    return validate_profile(data, str(path))


def _memory_tier(n_bytes: float) -> tuple[str, float]:
    """The smallest memory of Horowitz's table holding n_bytes: (name, pJ per 64-bit access)."""
    for name, size, pj in MEMORY_TIERS_64BIT_PJ:
        if n_bytes <= size:
            return name, pj
    raise AssertionError("unreachable: DRAM holds everything")


def ann_memory_energy(layers: list[Layer]) -> dict:
    """An ANN of the same shape, MACs plus memory traffic, in fp32 and int8 (see ANN_MEMORY_ASSUMPTIONS)."""
    weights = [int(layer.weight.size) for layer in layers]
    inputs = [int(math.prod(layer.in_shape)) for layer in layers]
    outputs = [layer.n_neurons for layer in layers]
    macs = count_ann_macs(layers)
    out = {"label": "ANN same shape, MACs + memory reads/writes", "weight_reads": sum(weights),
           "activation_reads": sum(inputs), "activation_writes": sum(outputs),
           "source": ANN_MEMORY_SOURCE, "assumptions": ANN_MEMORY_ASSUMPTIONS}
    for precision, bits, mac_pj in (("fp32", 32, ANN_FP32_MAC_PJ), ("int8", 8, ANN_INT8_MAC_PJ)):
        w_tier, w_pj64 = _memory_tier(sum(weights) * bits / 8)
        a_tier, a_pj64 = _memory_tier(max(i + o for i, o in zip(inputs, outputs)) * bits / 8)
        w_pj, a_pj = w_pj64 * bits / 64, a_pj64 * bits / 64
        per_layer = [m * mac_pj + w * w_pj + (i + o) * a_pj for m, w, i, o in zip(macs, weights, inputs, outputs)]
        out[precision] = {
            "weights_in": w_tier, "weight_word_pj": w_pj, "activations_in": a_tier, "activation_word_pj": a_pj,
            "mac_pj": sum(macs) * mac_pj, "weight_pj": sum(weights) * w_pj,
            "activation_pj": (sum(inputs) + sum(outputs)) * a_pj, "energy_pj": sum(per_layer), "per_layer_pj": per_layer,
        }
    return out


def latency(profile: Profile, timesteps: int | None, n_layers: int) -> dict:
    """Timesteps from presenting an observation until every layer has finished with it, and its time if known."""
    if timesteps is None:
        return {"timesteps": None, "pipeline_depth": n_layers, "steps_per_inference": None,
                "time_per_step_ns": profile.time_per_step_ns, "time_source": profile.time_source, "time_per_inference_ns": None}
    steps = timing.inference_steps(timesteps, n_layers)
    t = profile.time_per_step_ns
    return {"timesteps": int(timesteps), "pipeline_depth": n_layers, "steps_per_inference": steps,
            "new_inference_every_steps": timing.reset_interval(timesteps),
            "time_per_step_ns": t, "time_source": profile.time_source,
            "time_per_inference_ns": None if t is None else steps * t}


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
    tot["synapses"] = int(sum(_synapses(x) for x in layers))
    tot["spikes_per_synapse_per_inference"] = tot["synops"] / max(1, tot["synapses"])
    tot["spike_rate"] = tot["spikes"] / max(1.0, tot["neuron_updates"])
    return tot


def _synapses(row: dict) -> int:
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
    per_layer = ", ".join(f"{x['name']} {x['synops'] / max(1, _synapses(x)):.3g}" for x in rep["layers"])
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
        syn = _synapses(r)
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
