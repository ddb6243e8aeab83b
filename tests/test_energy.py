"""The energy account: exact per-inference numbers for a tiny network's counts, computed by hand; every profile's
source and status in the text and the JSON; the ANN priced with and without memory; latency; bad user profiles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from support import export, make_net

from dsqn.errors import UserError
from dsqn.files.netfile import Layer
from dsqn.hw_sim.counters import Totals, ann_macs
from dsqn.report.energy import energy_report, format_energy
from dsqn.report.profiles import (
    LOIHI1,
    LOIHI2_HALA_POINT,
    PROFILES,
    STATUSES,
    ann_memory_energy,
    load_profile,
    validate_profile,
)


def dense(i: int, n_in: int, n_out: int) -> Layer:
    return Layer(i, "dense", np.zeros((n_out, n_in), dtype=np.int8), (n_in,), (n_out,), 0, 0, 1)


# 8 -> 16 -> 16 -> 2, T = 8, two inferences
LAYERS = [dense(0, 8, 16), dense(1, 16, 16), dense(2, 16, 2)]
NAMES = ["L0-dense", "L1-dense", "L2-readout"]


def totals() -> Totals:
    # per inference: synops 80, 32, 6; updates 128, 128, 16 (n x T); spikes 2, 3, 0
    return Totals(3, inferences=2, in_events=[10, 4, 6], synops=[160, 64, 12], updates=[256, 256, 32], spikes=[4, 6, 0])


def report(profile=LOIHI1) -> dict:  # type: ignore[no-untyped-def]
    return energy_report(totals(), profile, ann_macs(LAYERS), NAMES, n_neurons=[16, 16, 2], layers=LAYERS, timesteps=8)


def test_loihi1_numbers_by_hand():
    rep = report()
    # L0: 80 synops x 23.6 = 1888; 2 active x 81 + 126 inactive x 52 = 6714; 2 spikes x 1.7 = 3.4
    e0 = rep["layers"][0]["energy_pj"]
    assert e0["synops"] == pytest.approx(1888.0) and e0["neuron_updates"] == pytest.approx(6714.0)
    assert e0["spikes"] == pytest.approx(3.4) and e0["total"] == pytest.approx(8605.4)
    # L1: 755.2 + (3 x 81 + 125 x 52 = 6743) + 5.1 = 7503.3; L2: 141.6 + 16 x 52 = 973.6
    assert rep["layers"][1]["energy_pj"]["total"] == pytest.approx(7503.3)
    assert rep["layers"][2]["energy_pj"]["total"] == pytest.approx(973.6)
    assert rep["snn_energy_per_inference_pj"] == pytest.approx(17082.3)


def test_hala_point_estimate_by_hand():
    p = LOIHI2_HALA_POINT
    assert p.synop_pj == pytest.approx(2600 / 380e12 * 1e12) == pytest.approx(6.8421, abs=1e-4)
    assert p.neuron_update_active_pj == p.neuron_update_inactive_pj == pytest.approx(2600 / 240e12 * 1e12)
    assert p.spike_pj == 0.0
    rep = report(p)
    # 118 synops x 2600/380 + 272 updates x 2600/240 = 807.368 + 2946.667
    assert rep["snn_energy_per_inference_pj"] == pytest.approx(118 * 2600 / 380 + 272 * 2600 / 240)
    assert rep["snn_energy_per_inference_pj"] == pytest.approx(3754.035, abs=1e-3)
    for figure in ("2600 W / 380e12", "2600 W / 240e12", "2600 W / 20e15", "0.13 pJ", "15 TOPS/W", "1,152"):
        assert figure in p.note, figure
    assert "Hala Point" in p.source and "17 April 2024" in p.source


def test_ann_macs_only_and_with_memory_by_hand():
    rep = report()
    ann = rep["ann"]
    assert ann["macs_per_inference"] == 416
    assert ann["fp32_energy_pj"] == pytest.approx(416 * 4.6) and ann["int8_energy_pj"] == pytest.approx(416 * 0.23)
    mem = ann["with_memory"]
    assert (mem["weight_reads"], mem["activation_reads"], mem["activation_writes"]) == (416, 8 + 16 + 16, 16 + 16 + 2)
    # fp32: 416 x 4 B fits 8 KB SRAM: 10 pJ / 64 bit = 5 pJ per word; 1913.6 + 416 x 5 + 74 x 5
    f32 = mem["fp32"]
    assert (f32["weights_in"], f32["activations_in"], f32["weight_word_pj"]) == ("SRAM 8 KB", "SRAM 8 KB", 5.0)
    assert f32["energy_pj"] == pytest.approx(1913.6 + 2080 + 370) == pytest.approx(4363.6)
    # int8: 1.25 pJ per byte; 95.68 + 416 x 1.25 + 74 x 1.25
    assert mem["int8"]["energy_pj"] == pytest.approx(95.68 + 520 + 92.5)
    assert sum(f32["per_layer_pj"]) == pytest.approx(f32["energy_pj"])
    assert rep["ratio_snn_over_ann_fp32"] == pytest.approx(17082.3 / 1913.6)
    assert rep["ratio_snn_over_ann_fp32_with_memory"] == pytest.approx(17082.3 / 4363.6)
    assert rep["ratio_snn_over_ann_int8_with_memory"] == pytest.approx(17082.3 / 708.18)


def test_memory_tiers_and_conv_counts():
    # 10,000 weights: fp32 40,000 B > 32 KB -> 1 MB SRAM (100 pJ / 64 bit = 50 pJ per word); int8 10,000 B -> 32 KB
    mem = ann_memory_energy([dense(0, 100, 100)])
    assert (mem["fp32"]["weights_in"], mem["fp32"]["weight_word_pj"]) == ("SRAM 1 MB", 50.0)
    assert (mem["int8"]["weights_in"], mem["int8"]["weight_word_pj"]) == ("SRAM 32 KB", 2.5)
    # 3M weights: fp32 12 MB and int8 3 MB -> DRAM at 1.3 nJ per 64 bit
    huge = ann_memory_energy([Layer(0, "dense", np.zeros((1000, 3000), dtype=np.int8), (3000,), (1000,), 0, 0, 1)])
    assert (huge["fp32"]["weights_in"], huge["fp32"]["weight_word_pj"]) == ("DRAM", 650.0)
    assert (huge["int8"]["weights_in"], huge["int8"]["weight_word_pj"]) == ("DRAM", 162.5)
    # conv 2 -> 4 channels, 3x3 kernel, 6x6 -> 4x4: 72 weights read once, 64 x 18 = 1152 MACs, 72 reads, 64 writes
    conv = Layer(0, "conv", np.zeros((4, 2, 3, 3)), (2, 6, 6), (4, 4, 4), 0, 0, 1)
    mem = ann_memory_energy([conv])
    assert (mem["weight_reads"], mem["activation_reads"], mem["activation_writes"]) == (72, 72, 64)
    assert mem["fp32"]["energy_pj"] == pytest.approx(1152 * 4.6 + 72 * 5 + (72 + 64) * 5)


def test_latency_in_timesteps():
    lat = report()["latency"]
    assert (lat["timesteps"], lat["pipeline_depth"], lat["steps_per_inference"]) == (8, 3, 11)
    assert lat["new_inference_every_steps"] == 8
    assert lat["time_per_step_ns"] is None and lat["time_per_inference_ns"] is None
    assert lat["time_source"] == "no published figure"
    # T taken from the spike windows when not given
    rep = energy_report(totals(), LOIHI1, ann_macs(LAYERS), NAMES, [[0] * 5] * 3, [16, 16, 2])
    assert rep["latency"]["steps_per_inference"] == 8 and rep["ann"]["with_memory"] is None
    # a user profile with a sourced time per step
    p = validate_profile({"name": "u", "source": "s", "status": "published", "synop_pj": 1, "neuron_update_active_pj": 1,
                          "neuron_update_inactive_pj": 1, "spike_pj": 1, "time_per_step_ns": 1000.0,
                          "time_source": "my measurement"}, "u.json")
    lat = report(p)["latency"]
    assert lat["time_per_inference_ns"] == pytest.approx(11000.0)
    assert "11 us per inference (my measurement)" in format_energy(report(p))


def test_every_profile_has_source_and_status():
    assert LOIHI1.status == "pre-silicon" and not LOIHI1.estimate
    assert LOIHI2_HALA_POINT.status == "estimate" and LOIHI2_HALA_POINT.estimate
    assert PROFILES["loihi2-estimate"] is LOIHI2_HALA_POINT
    for p in PROFILES.values():
        assert p.status in STATUSES and p.estimate == (p.status == "estimate") and p.source


def test_status_and_sources_in_text_and_json():
    for p, status in ((LOIHI1, "pre-silicon"), (LOIHI2_HALA_POINT, "ESTIMATE")):
        rep = json.loads(json.dumps(report(p)))
        assert rep["profile"]["status"] == status.lower() and rep["profile"]["source"] == p.source
        assert rep["profile"]["estimate"] == (p.status == "estimate")  # the format_version 1 key still holds
        text = format_energy(rep)
        assert f"[status: {status}]" in text and p.source in text and p.note in text
        assert "ANN same shape, MACs only: 416 MACs = 1.91 nJ fp32, 0.10 nJ int8" in text
        assert "MACs + memory" in text and "4.36 nJ fp32 (weights in SRAM 8 KB" in text and "0.71 nJ int8" in text
        assert "latency: T 8 + pipeline depth 3 = 11 timesteps per inference" in text
        assert "time per timestep: no published figure" in text
        assert "Horowitz, ISSCC 2014" in text and "DRAM 1.3-2.6 nJ (1.3 nJ used)" in text
    assert "SNN total 17.08 nJ" in format_energy(report())


def _profile(**edit) -> dict:  # type: ignore[no-untyped-def]
    p = {"name": "mine", "source": "my lab", "status": "published", "synop_pj": 1.0, "neuron_update_active_pj": 2.0,
         "neuron_update_inactive_pj": 1.5, "spike_pj": 0.5}
    p.update(edit)
    return {k: v for k, v in p.items() if v is not DROP}


DROP = object()
BAD = [
    (_profile(synop_pj=DROP), "field 'synop_pj' is missing"),
    (_profile(source=DROP), "field 'source' is missing"),
    (_profile(name=""), "field 'name' must be a non-empty string"),
    (_profile(spike_pj=-1.0), "field 'spike_pj' must be a finite number >= 0"),
    (_profile(synop_pj=math.nan), "field 'synop_pj' must be a finite number >= 0 (pJ), got nan"),
    (_profile(neuron_update_active_pj=math.inf), "field 'neuron_update_active_pj' must be a finite number"),
    (_profile(neuron_update_inactive_pj="52"), "field 'neuron_update_inactive_pj' must be a finite number"),
    (_profile(spike_pj=True), "field 'spike_pj' must be a finite number"),
    (_profile(status="measured"), "field 'status' must be one of published, pre-silicon, estimate, got 'measured'"),
    (_profile(estimate=True), "field 'estimate' (True) contradicts status 'published'"),
    (_profile(colour="red"), "unknown field 'colour'"),
    (_profile(time_per_step_ns=-3), "field 'time_per_step_ns' must be a finite number > 0"),
    (_profile(time_per_step_ns=5.0), "field 'time_source' is missing"),
]


@pytest.mark.parametrize("data,needle", BAD, ids=[b[1].split("'")[1] + str(i) for i, b in enumerate(BAD)])
def test_malformed_profile_is_a_one_line_error_naming_the_field(tmp_path: Path, data: dict, needle: str):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))  # json writes NaN / Infinity literals, which json.loads accepts
    with pytest.raises(UserError) as exc:
        load_profile(str(path))
    msg = str(exc.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_profile_file_that_is_not_an_object(tmp_path: Path):
    for text, needle in (("[1, 2]", "must be a JSON object, got list"), ("{", "not a JSON file")):
        (tmp_path / "p.json").write_text(text)
        with pytest.raises(UserError, match=needle):
            load_profile(str(tmp_path / "p.json"))
    with pytest.raises(UserError, match="not a built-in profile"):
        load_profile("loihi3")


def test_good_profile_file_and_default_status(tmp_path: Path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_profile()))
    p = load_profile(str(path))
    assert (p.status, p.estimate, p.synop_pj) == ("published", False, 1.0)
    # the format tests/test_reliability.py writes: no status -> labelled an estimate, and said so
    path.write_text(json.dumps(_profile(status=DROP)))
    p = load_profile(str(path))
    assert p.status == "estimate" and p.estimate and "no status given" in p.note


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    return export(make_net(seed=1, bias=[0.1, -0.1], n_actions=2), tmp_path_factory.mktemp("energy") / "m.net")


def test_deploy_rejects_a_bad_profile_with_exit_2(net: Path, tmp_path: Path, capsys):
    from dsqn.deploy.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_profile(synop_pj=math.nan)))
    with pytest.raises(SystemExit) as exc:
        main([str(net), "--backend", "emu", "--episodes", "1", "--profile", str(bad), "--report", str(tmp_path / "r.json")])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("dsqn-deploy: error:") and "'synop_pj'" in err[0]
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("profile", ["loihi1-davies2018", "loihi2-halapoint-estimate"])
def test_deploy_report_carries_labels(net: Path, tmp_path: Path, capsys, profile: str):
    from dsqn.deploy.cli import main

    rep_path = tmp_path / "r.json"
    assert main([str(net), "--backend", "emu", "--episodes", "1", "--max-steps", "3", "--profile", profile,
                 "--report", str(rep_path)]) == 0
    out = capsys.readouterr().out
    rep = json.loads(rep_path.read_text())
    energy, p = rep["energy"], PROFILES[profile]
    assert rep["format_version"] == 1
    assert energy["profile"]["status"] == p.status and energy["profile"]["source"] == p.source
    assert f"[status: {p.status.upper() if p.estimate else p.status}]" in out and p.source in out
    n_layers = len(energy["layers"])
    assert energy["latency"]["steps_per_inference"] == rep["timesteps"] + n_layers
    assert f"= {rep['timesteps'] + n_layers} timesteps per inference" in out
    mem = energy["ann"]["with_memory"]
    assert mem["weight_reads"] == energy["ann"]["macs_per_inference"]  # dense layers: one read per weight
    assert "MACs + memory" in out and "MACs only" in out


def test_html_page_shows_status_memory_and_latency(net: Path, tmp_path: Path):
    from dsqn.deploy.cli import main
    from dsqn.report.html import render

    rep_path = tmp_path / "r.json"
    assert main([str(net), "--backend", "emu", "--episodes", "1", "--max-steps", "3", "--profile", "loihi2-estimate",
                 "--report", str(rep_path)]) == 0
    rep = json.loads(rep_path.read_text())
    page = render(rep)
    assert "[status: estimate]" in page and "loihi2-halapoint-estimate" in page
    assert "ANN fp32 (MACs + memory)" in page and "counting also its memory reads and writes" in page
    assert f"Latency: {rep['energy']['latency']['steps_per_inference']} timesteps per inference" in page
    # a report of format_version 1 written before these fields renders as before
    for key in ("latency",):
        del rep["energy"][key]
    del rep["energy"]["ann"]["with_memory"], rep["energy"]["profile"]["status"]
    assert "[status: estimate]" in render(rep)


# ---- the reviewer's figures: spikes per synapse, break-even, sensitivity (issue 28, item 3) ----------------------------

# A user profile with round numbers, so every figure below is arithmetic a reader can redo: synop 1 pJ, neuron update
# 3 pJ active / 1 pJ inactive, spike 0.5 pJ. On totals(): fixed = 272 updates x 1 = 272 pJ; variable = 118 synops x 1 +
# 5 spikes x (3 - 1 + 0.5) = 130.5 pJ; SNN = 402.5 pJ.
ROUND = {"name": "round", "source": "test", "status": "published", "synop_pj": 1.0, "neuron_update_active_pj": 3.0,
         "neuron_update_inactive_pj": 1.0, "spike_pj": 0.5}
# The ANN rows of LAYERS (test_ann_macs_only_and_with_memory_by_hand): int8 = 95.68 MAC + 520 weight + 92.5 activation
# pJ; fp32 = 1913.6 + 2080 + 370 pJ; all in an 8 KB SRAM.
ANN_PARTS = {"int8": (416 * 0.23, 416 * 1.25, 74 * 1.25), "fp32": (416 * 4.6, 416 * 5.0, 74 * 5.0)}


def round_report() -> dict:
    return energy_report(totals(), validate_profile(ROUND, "round.json"), ann_macs(LAYERS), NAMES, n_neurons=[16, 16, 2],
                         layers=LAYERS, timesteps=8)


def ann_rows(mac: float = 1.0, sram: float = 1.0) -> dict[str, float]:
    """The four ANN rows computed here from their parts, MAC and SRAM energies scaled."""
    rows = {f"{p}_with_memory": m * mac + (w + a) * sram for p, (m, w, a) in ANN_PARTS.items()}
    rows.update(int8_macs=416 * 0.23 * mac, fp32_macs=416 * 4.6 * mac)
    return rows


def test_spikes_per_synapse_per_inference_by_hand():
    rep = round_report()
    # synapses: 8 x 16, 16 x 16, 16 x 2; synops per inference 80, 32, 6
    assert [x["synapses"] for x in rep["layers"]] == [128, 256, 32]
    assert [x["spikes_per_synapse_per_inference"] for x in rep["layers"]] == [80 / 128, 32 / 256, 6 / 32]
    assert [x["spike_rate"] for x in rep["layers"]] == [2 / 128, 3 / 128, 0.0]
    tot = rep["totals"]
    assert (tot["synapses"], tot["synops"], tot["neuron_updates"], tot["spikes"], tot["in_events"]) == (416, 118, 272, 5, 10)
    assert tot["spikes_per_synapse_per_inference"] == 118 / 416 and tot["spike_rate"] == 5 / 272
    text = format_energy(rep)
    assert "0.284 total (L0-dense 0.625, L1-dense 0.125, L2-readout 0.188)" in text
    assert "total            10.0       118.0       416       0.284       272       5.0  0.018       0.40        416" in text


def test_counter_to_spikes_per_synapse_end_to_end():
    from dsqn.hw_sim.counters import Counter, synapse_counts

    # 3 inputs -> 2 neurons -> 2 readout, T = 4; input [1, 0, 2]: 2 graded events a step, 8 events, 8 x 2 = 16 synops
    layers = [dense(0, 3, 2), dense(1, 2, 2)]
    counter = Counter(layers, 4)
    l0 = np.zeros((2, 4), dtype=bool)
    l0[0, [0, 2]] = l0[1, 3] = True  # 3 spikes -> layer 1: 3 events x 2 = 6 synops
    counter.add(np.array([1.0, 0.0, 2.0]), [l0, np.zeros((2, 4), dtype=bool)])
    assert synapse_counts(layers) == [6, 4]
    rep = energy_report(counter.totals, validate_profile(ROUND, "r.json"), ann_macs(layers), ["a", "b"], layers=layers)
    assert [x["in_events"] for x in rep["layers"]] == [8, 3] and [x["synops"] for x in rep["layers"]] == [16, 6]
    assert [x["spikes_per_synapse_per_inference"] for x in rep["layers"]] == [16 / 6, 6 / 4]
    assert rep["totals"]["spikes_per_synapse_per_inference"] == 22 / 10
    # fixed = 16 updates x 1 pJ; variable = 22 synops x 1 + 3 spikes x 2.5; fp32 MACs = 10 x 4.6 = 46 pJ
    be = {r["ann"]: r for r in rep["break_even"]["rows"]}["fp32_macs"]
    assert be["scale"] == pytest.approx((46 - 16) / (22 + 7.5), rel=1e-12)
    assert be["spikes_per_synapse_per_inference"] == pytest.approx((46 - 16) / 29.5 * 2.2, rel=1e-12)


def test_conv_synapses_leave_out_padding_taps():
    from dsqn.hw_sim.counters import synapse_counts

    # 2 -> 4 channels, 3 x 3, padding 1, 6 x 6 -> 6 x 6: taps on real inputs per axis 2+3+3+3+3+2 = 16, so 16 x 16 per
    # channel pair x 8 pairs = 2048 synapses; the ANN counts all 36 x 4 x 18 = 2592 MACs (padding taps included)
    conv = Layer(0, "conv", np.zeros((4, 2, 3, 3)), (2, 6, 6), (4, 6, 6), 0, 0, 1, padding=(1, 1))
    assert synapse_counts([conv]) == [2048] and ann_macs([conv]) == [2592]
    # without padding every tap meets an input: synapses = MACs
    assert synapse_counts([Layer(0, "conv", np.zeros((4, 2, 3, 3)), (2, 6, 6), (4, 4, 4), 0, 0, 1)]) == [1152]


def test_break_even_rates_by_hand():
    rep = round_report()
    be = rep["break_even"]
    assert (be["fixed_pj"], be["variable_pj"]) == (pytest.approx(272.0), pytest.approx(130.5))
    assert be["fixed_pj"] + be["variable_pj"] == pytest.approx(rep["snn_energy_per_inference_pj"], rel=1e-12)
    assert be["current_spikes_per_synapse_per_inference"] == 118 / 416
    assert be["max_scale"] == pytest.approx(128 / 3)  # L1: 128 updates, 3 spikes
    rows = {r["ann"]: r for r in be["rows"]}
    assert [r["ann"] for r in be["rows"]] == ["int8_with_memory", "fp32_with_memory", "int8_macs", "fp32_macs"]
    for key, e_ann in ann_rows().items():
        r = rows[key]
        assert r["ann_energy_pj"] == pytest.approx(e_ann, rel=1e-12)
        assert r["ratio_snn_over_ann"] == pytest.approx(402.5 / e_ann, rel=1e-12)
        if e_ann <= 272:  # int8 MACs only: 95.68 pJ, below the neuron updates alone
            assert key == "int8_macs" and not r["reachable"] and r["scale"] is None
            assert r["spikes_per_synapse_per_inference"] is None and "neuron updates alone cost 0.272 nJ" in r["reason"]
            continue
        k = (e_ann - 272) / 130.5
        assert r["reachable"] and r["scale"] == pytest.approx(k, rel=1e-12)
        assert r["spikes_per_synapse_per_inference"] == pytest.approx(k * 118 / 416, rel=1e-12)
        assert r["synops_per_inference"] == pytest.approx(k * 118, rel=1e-12)
    # the int8 ANN with memory: k = 436.18 / 130.5 = 3.342 -> 0.948 spikes per synapse per inference
    assert rows["int8_with_memory"]["spikes_per_synapse_per_inference"] == pytest.approx(0.94808, abs=1e-5)
    text = format_energy(rep)
    assert "ANN int8, MACs + memory (equally quantised): 0.708 nJ, SNN/ANN 0.568x -> break-even at 0.948 spikes/synapse/" \
           "inference (k = 3.34; today's activity may grow x3.34)" in text
    assert "ANN int8, MACs only: 0.0957 nJ, SNN/ANN 4.21x -> break-even none (not reachable by sparsity" in text


def test_break_even_above_the_most_the_network_can_fire():
    # one spike in a 128-update layer: k_max = 128; an ANN dearer than fixed + 128 x variable is never reached
    t = Totals(1, inferences=1, in_events=[1], synops=[16], updates=[128], spikes=[1])
    rep = energy_report(t, validate_profile({**ROUND, "synop_pj": 0.001}, "p.json"), [8 * 16], ["L0"], layers=[dense(0, 8, 16)])
    row = {r["ann"]: r for r in rep["break_even"]["rows"]}["fp32_with_memory"]
    assert rep["break_even"]["max_scale"] == 128 and row["scale"] > 128 and "costs less at any activity" in row["reason"]
    # no events at all: nothing to scale
    t = Totals(1, inferences=1, in_events=[0], synops=[0], updates=[128], spikes=[0])
    rep = energy_report(t, validate_profile(ROUND, "p.json"), [128], ["L0"], layers=[dense(0, 8, 16)])
    row = {r["ann"]: r for r in rep["break_even"]["rows"]}["fp32_with_memory"]
    assert row["scale"] is None and not row["reachable"] and "no events counted" in row["reason"]


def test_sensitivity_ratios_by_hand():
    sens = round_report()["sensitivity"]
    rows = {r["constant"]: r for r in sens["rows"]}
    assert list(rows) == ["synop", "neuron_update", "spike", "ann_mac", "sram", "dram"]
    # a user profile publishes no range: every SNN constant x0.5 / x2, labelled a factor
    for key in ("synop", "neuron_update", "spike"):
        assert (rows[key]["low_factor"], rows[key]["high_factor"], rows[key]["basis"]) == (0.5, 2.0, "factor")
        assert "documented factor, not a published range" in rows[key]["source"]
    assert rows["neuron_update"]["high_pj"] == {"neuron_update_active_pj": 6.0, "neuron_update_inactive_pj": 2.0}

    def snn(syn: float = 1.0, upd: float = 1.0, spk: float = 1.0) -> float:
        return 118 * syn + 5 * 3 * upd + 267 * upd + 5 * 0.5 * spk  # 118 synops, 5 active + 267 inactive updates, 5 spikes

    assert snn() == 402.5
    nominal = ann_rows()
    expect = {
        "synop": (snn(syn=0.5), snn(syn=2), nominal, nominal),
        "neuron_update": (snn(upd=0.5), snn(upd=2), nominal, nominal),
        "spike": (snn(spk=0.5), snn(spk=2), nominal, nominal),
        "ann_mac": (snn(), snn(), ann_rows(mac=0.5), ann_rows(mac=2)),
        "sram": (snn(), snn(), ann_rows(sram=0.5), ann_rows(sram=2)),
        "dram": (snn(), snn(), nominal, nominal),  # every memory of this ANN is SRAM: DRAM's range changes nothing
    }
    for key, (e_lo, e_hi, ann_lo, ann_hi) in expect.items():
        for row in nominal:
            assert rows[key]["ratio_low"][row] == pytest.approx(e_lo / ann_lo[row], rel=1e-12), (key, row)
            assert rows[key]["ratio_high"][row] == pytest.approx(e_hi / ann_hi[row], rel=1e-12), (key, row)
    assert rows["dram"]["used"] is False and rows["sram"]["used"] is True
    assert (rows["dram"]["low_pj"], rows["dram"]["high_pj"], rows["dram"]["basis"]) == ({"DRAM": 1300.0}, {"DRAM": 2600.0}, "published")
    ext = sens["extremes"]
    fav, unf = ext["favourable_to_snn"]["ratios"], ext["unfavourable_to_snn"]["ratios"]
    for row in nominal:
        assert fav[row] == pytest.approx(snn(0.5, 0.5, 0.5) / ann_rows(mac=2, sram=2)[row], rel=1e-12)
        assert unf[row] == pytest.approx(snn(2, 2, 2) / ann_rows(mac=0.5, sram=0.5)[row], rel=1e-12)
    # the equally quantised ANN: nominal 402.5 / 708.18 = 0.57 (SNN cheaper), least favourable 805 / 354.09 = 2.27
    assert sens["flips"] == ["int8_with_memory"]
    assert "verdict: flips within the ranges against ANN int8, MACs + memory (equally quantised)" in format_energy(round_report())


def test_loihi_ranges_and_labels():
    rows = {r["constant"]: r for r in report(LOIHI1)["sensitivity"]["rows"]}
    # 23.6 pJ is Davies's minimum: no lower end; the spike's high end adds one N-S tile hop (4.0 pJ)
    assert rows["synop"]["low_pj"] == {"synop_pj": 23.6} and rows["synop"]["high_pj"] == {"synop_pj": 47.2}
    assert rows["synop"]["basis"] == "published low end; factor high end"
    assert rows["spike"]["high_pj"]["spike_pj"] == pytest.approx(5.7) and rows["spike"]["basis"] == "published"
    # ratio against the int8 ANN with memory at the synop's high end: (17082.3 + 118 x 23.6) / 708.18
    assert rows["synop"]["ratio_high"]["int8_with_memory"] == pytest.approx((17082.3 + 118 * 23.6) / 708.18, rel=1e-12)
    # every Loihi 1 break-even is out of reach: the 272 neuron updates alone cost 272 x 52 = 14.1 nJ > 4.36 nJ
    assert not any(r["reachable"] for r in report(LOIHI1)["break_even"]["rows"])
    rep = report(LOIHI2_HALA_POINT)
    rows = {r["constant"]: r for r in rep["sensitivity"]["rows"]}
    assert "spike" not in rows  # no separate spike figure to vary
    assert rows["synop"]["low_pj"]["synop_pj"] == pytest.approx(1 / 15) and rows["synop"]["high_factor"] == 1.0
    assert rows["neuron_update"]["high_factor"] == 1.0 and "upper bound" in rows["neuron_update"]["basis"]
    # Hala Point: fixed 272 x 2600/240 = 2946.7 pJ, variable 118 x 2600/380; fp32 with memory 4363.6 pJ
    be = {r["ann"]: r for r in rep["break_even"]["rows"]}["fp32_with_memory"]
    assert be["scale"] == pytest.approx((4363.6 - 272 * 2600 / 240) / (118 * 2600 / 380), rel=1e-12)
    text = format_energy(rep)
    assert "UPPER BOUND estimate" in text and "MODELLED" in text and "MEASURED: none" in text
    assert "UPPER BOUND" not in format_energy(report(LOIHI1))


def test_report_json_is_additive_and_old_reports_are_analysed():
    rep = json.loads(json.dumps(round_report()))
    for key in ("profile", "inferences", "layers", "snn_energy_per_inference_pj", "ann", "ratio_snn_over_ann_fp32",
                "ratio_snn_over_ann_int8", "ratio_snn_over_ann_fp32_with_memory", "ratio_snn_over_ann_int8_with_memory",
                "latency"):
        assert key in rep, key
    assert rep["energy_version"] == 2 and rep["basis"]["energy"] == "modelled" and rep["basis"]["measured"] is None
    assert rep["reference"]["break_even_spikes_per_synapse"] == [0.15, 1.4]
    # a report written before these keys: analysed from its counts (dense layers: synapses = ANN MACs), same figures
    old = {k: v for k, v in rep.items() if k not in ("totals", "break_even", "sensitivity", "basis", "reference",
                                                     "profile_reading", "energy_version")}
    old["layers"] = [{k: v for k, v in x.items() if k not in ("synapses", "spikes_per_synapse_per_inference", "spike_rate")}
                     for x in rep["layers"]]
    from dsqn.report.analysis import analyse

    again = json.loads(json.dumps(analyse(old)))
    assert again["break_even"] == rep["break_even"] and again["sensitivity"] == rep["sensitivity"]
    assert format_energy(old).splitlines()[1:] == format_energy(rep).splitlines()[1:]


def test_synapse_counts_must_match_the_layers():
    with pytest.raises(UserError, match="2 synapse counts for 3 layers"):
        energy_report(totals(), LOIHI1, ann_macs(LAYERS), NAMES, synapses=[1, 2])


def test_deploy_report_carries_the_reviewers_figures(net: Path, tmp_path: Path, capsys):
    from dsqn.deploy.cli import main

    rep_path = tmp_path / "r.json"
    assert main([str(net), "--backend", "emu", "--episodes", "1", "--max-steps", "3", "--report", str(rep_path)]) == 0
    out = capsys.readouterr().out
    energy = json.loads(rep_path.read_text())["energy"]
    for x in energy["layers"]:
        assert x["synapses"] == x["ann_macs"]  # dense layers
        assert x["spikes_per_synapse_per_inference"] == pytest.approx(x["synops"] / x["synapses"], rel=1e-12)
    tot = energy["totals"]
    assert tot["synops"] == pytest.approx(sum(x["synops"] for x in energy["layers"]), rel=1e-12)
    assert f"{tot['spikes_per_synapse_per_inference']:.3g} total (" in out
    assert [r["ann"] for r in energy["break_even"]["rows"]] == ["int8_with_memory", "fp32_with_memory", "int8_macs", "fp32_macs"]
    assert "break-even (modelled)" in out and "sensitivity (modelled)" in out and "verdict: " in out
    assert "every energy below is MODELLED" in out and "MEASURED: none" in out
