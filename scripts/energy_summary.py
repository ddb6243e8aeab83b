"""Issue 28's evidence table and figure from the runs of scripts/energy_evidence.sh: for every run, the greedy return
over the fresh episodes (mean, 95 % bootstrap interval), synaptic operations and spikes per synapse per inference,
energy per inference under the Loihi 1 and Loihi 2 profiles, and the SNN / ANN ratios against the same-shape ANN
(fp32 and int8, memory traffic counted); the figure puts return against nJ per inference with the ANN rows as
horizontal lines and the band between them shaded.

    python scripts/energy_summary.py RUN_DIR [RUN_DIR ...] --out results/energy-training [--copy]

Each RUN_DIR holds report.emu.json (Loihi 1) and report.emu.loihi2.json (Loihi 2) from dsqn-deploy; --copy also copies
each run's model.net, reports and config.json into OUT/<run name>/ (a report from dsqn-deploy --compare adds the
steps on which the trained model.pt chose the file's action) (small files: what the docs page replays);
--lava-steps N also runs each network on the Lava simulator for N steps of the first fresh episode and on the emulator
over the same steps, and records whether every layer's counted synaptic operations agree (needs the lava extra).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from dsqn.files.fileio import atomic_write_text, read_json
from dsqn.report.figures import new_figure, save_figure, style
from dsqn.stats import mean_ci95

ANN_ROWS = (("fp32_with_memory", "ANN fp32 + memory"), ("int8_with_memory", "ANN int8 + memory"))


def row(run: Path) -> dict:
    l1, l2 = read_json(run / "report.emu.json"), read_json(run / "report.emu.loihi2.json")
    cfg = read_json(run / "config.json")
    returns = l1["episodes"]["returns"]
    lo, hi = mean_ci95(returns)
    e1, e2 = l1["energy"], l2["energy"]
    assert e1["totals"]["synops"] == e2["totals"]["synops"], run  # the same episodes counted under both profiles
    mem = e1["ann"]["with_memory"]
    return {
        "run": run.name, "env_id": l1["env_id"], "seed": cfg["seed"], "synop_penalty": cfg.get("synop_penalty", 0.0),
        "episodes": len(returns), "mean": sum(returns) / len(returns), "ci95": [lo, hi],
        "solved_475": sum(returns) / len(returns) >= 475.0, "at_least_minus_200": sum(returns) / len(returns) >= -200.0,
        "synops": e1["totals"]["synops"], "spikes_per_synapse": e1["totals"]["spikes_per_synapse_per_inference"],
        "nj_loihi1": e1["snn_energy_per_inference_pj"] / 1e3, "nj_loihi2": e2["snn_energy_per_inference_pj"] / 1e3,
        "ann_nj": {"fp32_with_memory": mem["fp32"]["energy_pj"] / 1e3, "int8_with_memory": mem["int8"]["energy_pj"] / 1e3},
        "ratio_loihi1": {k: e1[f"ratio_snn_over_ann_{k}"] for k, _ in ANN_ROWS},
        "ratio_loihi2": {k: e2[f"ratio_snn_over_ann_{k}"] for k, _ in ANN_ROWS},
        "break_even_loihi2": {r["ann"]: r["spikes_per_synapse_per_inference"] for r in e2["break_even"]["rows"]},
        "fidelity": l1.get("fidelity"),  # dsqn-deploy --compare: the trained model.pt's actions beside the file's
    }


def lava_check(run: Path, steps: int) -> dict:
    """The same first ``steps`` steps on the Lava simulator and on the emulator: per-layer synops per inference."""
    import dsqn

    counts = {}
    for backend in ("sim", "emu"):
        rep = dsqn.deploy(run / "model.net", backend=backend, episodes=1, seed=30_000_000, max_steps=steps,
                          report=str(run / f"check.{backend}.json"))
        counts[backend] = [layer["synops"] for layer in rep["energy"]["layers"]]
    from dsqn.export.exporter import verify_with_netx

    return {"steps": steps, "synops_sim": counts["sim"], "synops_emu": counts["emu"], "equal": counts["sim"] == counts["emu"],
            "stock_netx": verify_with_netx(run / "model.net")}


def same_actions(r: dict) -> str:
    f = r.get("fidelity")
    return f"{f['same_action']}/{f['steps']}" if f else "--"


def table(rows: list[dict]) -> str:
    head = ("| run | λ | return (fresh episodes, 95 % CI) | synops / inference | spikes / synapse | nJ Loihi 1 | "
            "nJ Loihi 2 (upper bound) | Loihi 2 ÷ own ANN fp32+mem | Loihi 2 ÷ own ANN int8+mem | trained model's action |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['run']} | {r['synop_penalty']:g} | {r['mean']:.1f} [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}] | "
                     f"{r['synops']:,.0f} | {r['spikes_per_synapse']:.2f} | {r['nj_loihi1']:.1f} | {r['nj_loihi2']:.1f} | "
                     f"×{r['ratio_loihi2']['fp32_with_memory']:.2f} | ×{r['ratio_loihi2']['int8_with_memory']:.1f} | "
                     f"{same_actions(r)} |")
    return "\n".join(lines)


def figure(rows: list[dict], out: Path) -> None:
    envs = sorted({r["env_id"] for r in rows})
    with style():
        fig = new_figure(3.2)
        axes = fig.subplots(1, len(envs), squeeze=False)[0]
        for ax, env in zip(axes, envs):
            mine = [r for r in rows if r["env_id"] == env]
            for lam in sorted({r["synop_penalty"] for r in mine}):
                pts = [r for r in mine if r["synop_penalty"] == lam]
                ax.errorbar([r["mean"] for r in pts], [r["nj_loihi2"] for r in pts],
                            xerr=[[r["mean"] - r["ci95"][0] for r in pts], [r["ci95"][1] - r["mean"] for r in pts]],
                            fmt="o", capsize=2, label=f"SNN, synop penalty {lam:g}")
            ann = mine[0]["ann_nj"]
            for (key, label), dash in zip(ANN_ROWS, ("--", ":")):
                ax.axhline(ann[key], linestyle=dash, linewidth=1.2, color="0.25", label=f"same-shape {label}")
            ax.axhspan(min(ann.values()), max(ann.values()), color="0.88", zorder=0,
                       label="between the ANN rows (break-even band)")
            ax.set_yscale("log")
            ax.set_xlabel("greedy return (mean, 95 % interval)")
            ax.set_ylabel("nJ per inference, Loihi 2 estimate (log scale)")
            ax.set_title(env)
            ax.legend(fontsize=6, loc="best", framealpha=0.9)
        save_figure(fig, out, "return_vs_energy")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--copy", action="store_true", help="copy each run's model.net, reports and config.json into OUT")
    p.add_argument("--lava-steps", type=int, default=0, help="check the counts on the Lava simulator over this many steps")
    args = p.parse_args()
    rows = [row(r) for r in args.runs]
    if args.lava_steps:
        for r, run in zip(rows, args.runs):
            r["lava_check"] = lava_check(run, args.lava_steps)
            print(f"{run.name}: Lava = emulator synops per layer over {args.lava_steps} steps: {r['lava_check']['equal']}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.copy:
        for r in args.runs:
            dst = args.out / r.name
            if dst.resolve() == r.resolve():  # a run already under OUT (re-summarised)
                continue
            dst.mkdir(exist_ok=True)
            for name in ("model.net", "report.emu.json", "report.emu.loihi2.json", "config.json"):
                shutil.copy2(r / name, dst / name)
    atomic_write_text(args.out / "summary.json", json.dumps(rows, indent=2))
    figure(rows, args.out)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
