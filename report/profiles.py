"""Energy profiles: the per-operation constants of each target with their sources and status, the same-shape ANN's
costs (Horowitz, ISSCC 2014) and the latency in timesteps. What each figure is, and its range: docs/energy.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from dsqn.errors import UserError
from dsqn.files.fileio import read_json
from dsqn.files.netfile import Layer
from dsqn.hw_sim.counters import ann_macs as count_ann_macs
from dsqn.kernels import timing

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
    return validate_profile(read_json(path, "energy profile"), str(path))


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
