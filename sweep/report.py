"""dsqn-sweep report: the Pareto front of return versus nJ per inference, parameter importances per objective,
the learning curves of the best trials, and for each Pareto trial its reproducing command and model.net."""

from __future__ import annotations

import html
import json
import math
import os
import re
import statistics
import warnings
from pathlib import Path
from typing import Any

from dsqn.files.fileio import atomic_write_text

from .study import DIRECTIONS, OBJECTIVES, OVER_BUDGET, non_dominated, quiet_optuna
from .trial_files import locate_trial_dir, study_relative


def _trial_row(t: Any, study_dir: Path) -> dict[str, Any]:
    ua = t.user_attrs
    trial_dir = locate_trial_dir(ua.get("trial_dir"), study_dir)
    model_net = trial_dir / "model.net" if ua.get("model_net") and trial_dir is not None else None
    return {"number": t.number, "state": t.state.name, "params": t.params,
            "return": t.values[0] if t.values else None, "energy_nj": t.values[1] if t.values and len(t.values) > 1 else None,
            "emu_return": ua.get("emu_return"), "inferences": ua.get("inferences"), "command": ua.get("command"),
            "model_net": study_relative(model_net, study_dir), "trial_dir": study_relative(trial_dir, study_dir),
            "host": ua.get("host"),
            "seconds": ua.get("seconds"), "curve": ua.get("curve", []), "error": ua.get("error"),
            "pruned_at": ua.get("pruned_at"), "retry_of": t.system_attrs.get("failed_trial")}


def importances(study: Any) -> dict[str, dict[str, float] | str]:
    """Parameter importances per objective (PED-ANOVA: no scikit-learn needed) -- which parameters decide whether a
    trial reaches the best returns / the lowest energies; a string says why there are none."""
    optuna = quiet_optuna()
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out: dict[str, dict[str, float] | str] = {}
    for i, name in enumerate(OBJECTIVES):
        if len(complete) < 2:
            out[name] = f"needs at least 2 completed trials ({len(complete)} so far)"
            continue
        sign = -1.0 if DIRECTIONS[i] == "maximize" else 1.0  # PED-ANOVA ranks what makes the target low
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                imp = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=lambda t, i=i, sign=sign: sign * t.values[i])
            out[name] = {k: float(v) for k, v in imp.items()}
        except Exception as exc:  # noqa: BLE001 - too few distinct values, a single-valued parameter...
            out[name] = f"not computable: {' '.join(str(exc).split())[:160]}"
    return out


def _save(fig: Any, out: Path, stem: str) -> list[str]:
    """Through the toolchain's one figure module: SVG, PDF and PNG, written atomically."""
    from dsqn.report.figures import save_figure

    return [p.name for p in save_figure(fig, out, stem).values()]


def figures(rows: list[dict], pareto: list[int], imps: dict, out: Path, top: int) -> list[str]:
    from dsqn.report.figures import COLORS, PALETTE, WIDTH_IN, new_figure, style

    files: list[str] = []
    done = [r for r in rows if r["state"] == "COMPLETE"]
    with style():
        # 1. Pareto front
        fig = new_figure(4.4)
        ax = fig.add_subplot()
        others = [r for r in done if r["number"] not in pareto]
        ax.scatter([r["energy_nj"] for r in others], [r["return"] for r in others], c=COLORS["faint"], s=22, label="completed trial")
        front = sorted((r for r in done if r["number"] in pareto), key=lambda r: r["energy_nj"])
        if front:
            ax.step([r["energy_nj"] for r in front], [r["return"] for r in front], where="post", c=COLORS["snn"], lw=1)
            ax.scatter([r["energy_nj"] for r in front], [r["return"] for r in front], c=COLORS["snn"], s=36, zorder=3,
                       label="Pareto front")
            for r in front:
                ax.annotate(f"#{r['number']}", (r["energy_nj"], r["return"]), textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel("energy per inference on the emulator (nJ)")
        ax.set_ylabel("final greedy return")
        ax.set_title("return versus energy per inference")
        ax.legend(loc="best")
        files += _save(fig, out, "pareto")
        # 2. importances per objective
        fig = new_figure(3.6, WIDTH_IN * 1.5)
        axes = fig.subplots(1, len(OBJECTIVES))
        for ax, name in zip(axes, OBJECTIVES):
            imp = imps.get(name)
            if isinstance(imp, dict) and imp:
                keys = list(imp)[::-1]
                ax.barh(keys, [imp[k] for k in keys], color=PALETTE[0])
                ax.set_xlim(0, max(1e-9, max(imp.values())) * 1.1)
            else:
                ax.text(0.5, 0.5, str(imp or "none"), ha="center", va="center", wrap=True, transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"importance: {name}")
        files += _save(fig, out, "importance")
        # 3. learning curves: the Pareto trials, then the best returns, up to `top`
        best = sorted(done, key=lambda r: (r["number"] not in pareto, -(r["return"] or -math.inf)))[:top]
        fig = new_figure(4.4)
        ax = fig.add_subplot()
        for r in rows:
            if r["curve"] and r not in best:
                ax.plot(*zip(*r["curve"]), c=COLORS["faint"], lw=0.8, zorder=1)
        for i, r in enumerate(best):
            if r["curve"]:
                ax.plot(*zip(*r["curve"]), c=PALETTE[i % len(PALETTE)], marker=".",
                        label=f"#{r['number']} ({r['return']:.0f}, {r['energy_nj']:.1f} nJ)")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("greedy evaluation return")
        ax.set_title("learning curves of the best trials (grey: the others)")
        if best:
            ax.legend(loc="best")
        files += _save(fig, out, "curves")
    return files


SEED_PARAM = "seed"


def grid_summary(rows: list[dict], space: dict | None) -> dict[str, Any] | None:
    """A grid study's cells (its params but the seed): runs, returns and, with a ``target``, how many reached it.

    ``panels`` groups the cells by every cell param after the first two (e.g. the neuron model), each with its
    share of runs at the target, the mean return and the spread of the cell means across the grid (how much the
    outcome depends on the first two params: the sensitivity)."""
    if not space or space.get("sampler") != "grid":
        return None
    names = [n for n in space["params"] if n != SEED_PARAM]
    target = space.get("target")
    cells: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r["state"] != "COMPLETE" or not all(n in r["params"] for n in names):
            continue
        key = tuple(r["params"][n] for n in names)
        c = cells.setdefault(key, {"params": dict(zip(names, key)), "returns": [], "trials": []})
        c["returns"].append(r["return"])
        c["trials"].append(r["number"])
    for c in cells.values():
        c["runs"] = len(c["returns"])
        c["mean_return"] = sum(c["returns"]) / c["runs"]
        if target is not None:
            c["reached"] = sum(v >= target for v in c["returns"])
    order = {n: [_choice_key(ch) for ch in space["params"][n]["choices"]] for n in names}
    listed = sorted(cells.values(), key=lambda c: [order[n].index(c["params"][n]) if c["params"][n] in order[n] else 0
                                                   for n in names])
    panels: dict[tuple, dict[str, Any]] = {}
    for c in listed:
        key = tuple(c["params"][n] for n in names[2:])
        pn = panels.setdefault(key, {"params": dict(zip(names[2:], key)), "runs": 0, "reached": 0, "returns": [],
                                     "cell_means": []})
        pn["runs"] += c["runs"]
        pn["reached"] += c.get("reached", 0)
        pn["returns"] += c["returns"]
        pn["cell_means"].append(c["mean_return"])
    for pn in sorted(panels.values(), key=lambda pn: [order[n].index(v) if v in order[n] else 0
                                                         for n, v in pn["params"].items()]):
        panels[tuple(pn["params"].values())] = panels.pop(tuple(pn["params"].values()))  # space order
    for pn in panels.values():
        pn["mean_return"] = sum(pn["returns"]) / len(pn["returns"])
        means = pn.pop("cell_means")
        pn["cells"] = len(means)
        pn["cell_mean_std"] = statistics.pstdev(means) if len(means) > 1 else 0.0
        if target is None:
            pn.pop("reached")
    paired_against_first(rows, names, list(panels.values()), target)
    size = math.prod(len(space["params"][n]["choices"]) for n in space["params"])
    runs = [tuple(r["params"].get(n) for n in space["params"]) for r in rows if r["state"] == "COMPLETE"]
    return {"target": target, "axes": names, "choices": order, "points": size, "points_done": len(set(runs)),
            "points_repeated": len(runs) - len(set(runs)), "cells": listed, "panels": list(panels.values())}


def paired_against_first(rows: list[dict], names: list[str], panels: list[dict], target: float | None) -> None:
    """Each panel after the first gets ``paired``: its runs matched with the first panel's on the same first two
    params and seed (the same setting and seed, another value of the panel params -- e.g. heterogeneous against
    uniform neurons), the mean return difference (this minus the first) with a 95 % bootstrap interval, and how
    many matched runs are higher / lower / equal (and reach the target in each)."""
    from dsqn.stats import mean_ci95

    if len(names) < 3 or len(panels) < 2:
        return
    by_panel: dict[tuple, dict[tuple, float]] = {}
    for r in rows:
        if r["state"] != "COMPLETE" or not all(n in r["params"] for n in names):
            continue
        match = (*(r["params"][n] for n in names[:2]), r["params"].get(SEED_PARAM))
        by_panel.setdefault(tuple(r["params"][n] for n in names[2:]), {}).setdefault(match, r["return"])
    first = by_panel.get(tuple(panels[0]["params"].values()), {})
    for pn in panels[1:]:
        mine = by_panel.get(tuple(pn["params"].values()), {})
        keys = sorted(set(first) & set(mine), key=str)
        if not keys:
            pn["paired"] = {"pairs": 0}
            continue
        diffs = [mine[k] - first[k] for k in keys]
        lo, hi = mean_ci95(diffs)
        pn["paired"] = {"against": panels[0]["params"], "pairs": len(keys), "mean_diff": sum(diffs) / len(diffs),
                        "ci95": [lo, hi], "higher": sum(d > 0 for d in diffs), "lower": sum(d < 0 for d in diffs),
                        "equal": sum(d == 0 for d in diffs)}
        if target is not None:
            pn["paired"]["reached"] = sum(mine[k] >= target for k in keys)
            pn["paired"]["reached_first"] = sum(first[k] >= target for k in keys)


def _choice_key(choice: Any) -> Any:
    """A space file's choice as Optuna stored it (bundles as 'k=v k=v', lists as space-separated strings)."""
    from .space import encode_bundle, encode_choice

    return encode_bundle(choice) if isinstance(choice, dict) else encode_choice(choice)


def _short(v: Any) -> str:
    """A tick label: 'a=0.1 b=0.1' -> '0.1' when a bundle sets one value, else one field per line."""
    if isinstance(v, str) and "=" in v:
        pairs = re.findall(r"(\w+)=(\S+)", v)  # bundle values hold no spaces (lists are comma-joined)
        vals = [val for _, val in pairs]
        return vals[0] if len(set(vals)) == 1 else "\n".join(f"{k}={val}" for k, val in pairs)
    return f"{v:g}" if isinstance(v, float) else str(v)


def grid_figure(grid: dict[str, Any], out: Path) -> list[str]:
    """Heatmaps over the first two grid params, one panel per value of the others: the share of runs reaching the
    target (or the mean return without one), each cell annotated with its count and mean return."""
    from dsqn.report.figures import new_figure, style

    names, target = grid["axes"], grid["target"]
    if len(names) < 2 or not grid["cells"]:
        return []
    ys, xs = grid["choices"][names[0]], grid["choices"][names[1]]
    panels = grid["panels"]
    with style():
        fig = new_figure(2.6, 2.5 * len(panels) + 0.8)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        im = None
        for ax, pn in zip(axes, panels):
            m = [[math.nan] * len(xs) for _ in ys]
            for c in grid["cells"]:
                if all(c["params"][k] == v for k, v in pn["params"].items()):
                    i, j = ys.index(c["params"][names[0]]), xs.index(c["params"][names[1]])
                    m[i][j] = c["reached"] / c["runs"] if target is not None else c["mean_return"]
                    label = (f"{c['reached']}/{c['runs']}\n" if target is not None else "") + f"{c['mean_return']:.0f}"
                    ax.text(j, i, label, ha="center", va="center", fontsize=7,
                            color="white" if target is not None and m[i][j] < 0.5 else "black")
            vmax = 1.0 if target is not None else max((c["mean_return"] for c in grid["cells"]), default=1.0)
            im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
            ax.grid(False)
            ax.set_xticks(range(len(xs)), [_short(x) for x in xs])
            ax.set_yticks(range(len(ys)), [_short(y) for y in ys])
            ax.set_xlabel(names[1])
            ax.set_ylabel(names[0])
            title = ", ".join(f"{_short(v) if not isinstance(v, str) else v}" for v in pn["params"].values()) or "all"
            share = f"{pn['reached']}/{pn['runs']} reach {target:g}" if target is not None else f"{pn['runs']} runs"
            ax.set_title(f"{title}\n{share}", fontsize=8)
        if im is not None:
            bar = fig.colorbar(im, ax=list(axes), shrink=0.9)
            bar.set_label(f"share of runs reaching {target:g}" if target is not None else "mean final return")
        return _save(fig, out, "grid")


def _grid_html(grid: dict[str, Any]) -> list[str]:
    target, names = grid["target"], grid["axes"]
    repeated = (f" ({grid['points_repeated']} completed runs repeat a point; every run is listed)"
                if grid["points_repeated"] else "")
    h = [f"<h2>Grid</h2><p>{grid['points_done']} of {grid['points']} grid points complete{repeated}. Each cell: the "
         "runs of one setting over the seeds" + (f"; how many reached the target {target:g}" if target is not None else "")
         + ".</p>"]
    if len(names) >= 2 and grid["cells"]:
        h.append("<img src='grid.svg' alt='grid heatmaps'>")
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names[2:])
    h.append(f"<table><tr>{head}<th>runs</th>" + ("<th>reached target</th>" if target is not None else "")
             + "<th>mean return</th><th>std of the cell means</th><th>matched with the first row: pairs, mean "
               "difference [95 % interval], higher / lower / equal</th></tr>")
    for pn in grid["panels"]:
        cells = "".join(f"<td>{_fmt(v)}</td>" for v in pn["params"].values())
        reached = f"<td>{pn['reached']}/{pn['runs']}</td>" if target is not None else ""
        pr = pn.get("paired") or {}
        paired = (f"{pr['pairs']}: {pr['mean_diff']:+.1f} [{pr['ci95'][0]:+.1f}, {pr['ci95'][1]:+.1f}], "
                  f"{pr['higher']} / {pr['lower']} / {pr['equal']}") if pr.get("pairs") else ("" if not pr else "0")
        h.append(f"<tr>{cells}<td>{pn['runs']}</td>{reached}<td>{pn['mean_return']:.1f}</td>"
                 f"<td>{pn['cell_mean_std']:.1f}</td><td>{paired}</td></tr>")
    h.append("</table>")
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    h.append(f"<table><tr>{head}<th>returns</th>" + ("<th>reached</th>" if target is not None else "") + "<th>trials</th></tr>")
    for c in grid["cells"]:
        vals = "".join(f"<td>{_fmt(v)}</td>" for v in c["params"].values())
        reached = f"<td>{c['reached']}/{c['runs']}</td>" if target is not None else ""
        h.append(f"<tr>{vals}<td>{', '.join(f'{v:.1f}' for v in c['returns'])}</td>{reached}"
                 f"<td>{', '.join('#' + str(n) for n in c['trials'])}</td></tr>")
    h.append("</table>")
    return h



def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def write_report(study: Any, out: Path, top: int = 8, target: float | None = None,
                 study_dir: Path | None = None) -> dict[str, Any]:
    """index.html, figures and report.json of ``study`` in ``out``; ``target`` overrides the space's target.

    Trial folders and model.net files inside the study folder ``study_dir`` (default: ``out``'s parent; the
    dsqn-sweep --out folder) are stored relative to it, and report.json's ``study_dir`` is that folder relative to
    report.json's own, so a study folder can be moved or shared whole: ``<report.json's folder>/<study_dir>/<path>``."""
    quiet_optuna()
    out.mkdir(parents=True, exist_ok=True)
    study_dir = Path(study_dir) if study_dir is not None else out.parent
    trials = [t for t in study.get_trials(deepcopy=False) if not t.system_attrs.get(OVER_BUDGET)]
    rows = [_trial_row(t, study_dir) for t in trials]
    pareto = sorted(t.number for t in study.best_trials) if any(r["state"] == "COMPLETE" for r in rows) else []
    done = {r["number"]: (r["return"], r["energy_nj"]) for r in rows if r["state"] == "COMPLETE"}
    assert set(pareto) == non_dominated(done), "optuna's best_trials differ from the non-dominated set"
    imps = importances(study)
    files = figures(rows, pareto, imps, out, top)
    space = study.user_attrs.get("dsqn_space")
    if target is not None and space:
        space = {**space, "target": target}
    grid = grid_summary(rows, space)
    if grid is not None:
        files += grid_figure(grid, out)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    summary = {"study": study.study_name, "study_dir": Path(os.path.relpath(study_dir, out)).as_posix(),
               "objectives": OBJECTIVES, "directions": ["maximize", "minimize"],
               "counts": counts, "pareto": [r for r in rows if r["number"] in pareto], "importances": imps,
               "trials": rows, "figures": files, "space": study.user_attrs.get("dsqn_space")}
    if grid is not None:
        summary["grid"] = grid
    atomic_write_text(out / "report.json", json.dumps(summary, indent=1))
    front_rows = sorted(summary["pareto"], key=lambda r: r["energy_nj"])
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>dsqn-sweep {html.escape(study.study_name)}</title>",
         "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}code{font-size:12px;word-break:break-all}"
         "img{max-width:100%}</style></head><body>",
         f"<h1>Sweep <code>{html.escape(study.study_name)}</code></h1>",
         "<p>Objectives: maximise the final greedy return (dsqn-train's final evaluation), minimise the energy per "
         "inference counted on the emulator (dsqn-deploy --backend emu over the same episodes). Trials: "
         + ", ".join(f"{v} {k.lower()}" for k, v in counts.items() if v) + ".</p>"]
    if grid is not None:
        h += _grid_html(grid)
    h += ["<h2>Pareto front</h2><img src='pareto.svg' alt='Pareto front'>",
         "<table><tr><th>trial</th><th>return</th><th>nJ / inference</th><th>emulator return</th><th>parameters</th>"
         "<th>reproduce</th><th>model.net</th></tr>"]
    for r in front_rows:
        params = "<br>".join(f"{html.escape(k)} = {_fmt(v)}" for k, v in r["params"].items())
        h.append(f"<tr><td>#{r['number']}</td><td>{_fmt(r['return'])}</td><td>{_fmt(r['energy_nj'])}</td>"
                 f"<td>{_fmt(r['emu_return'])}</td><td>{params}</td><td><code>{html.escape(r['command'] or '')}</code></td>"
                 f"<td><code>{html.escape(r['model_net'] or '')}</code> ({html.escape(r['host'] or '?')})</td></tr>")
    h.append("</table>")
    h.append(f"<h2>Parameter importances (PED-ANOVA), per objective</h2><p>From {counts['COMPLETE']} completed trials: "
             "which parameters decide whether a trial lands among the best returns / the lowest energies (few trials "
             "make them noisy).</p><img src='importance.svg' alt='importances'>")
    h.append(f"<h2>Learning curves of the best {top} trials</h2><img src='curves.svg' alt='learning curves'>")
    h.append("<h2>All trials</h2><table><tr><th>trial</th><th>state</th><th>return</th><th>nJ</th><th>note</th></tr>")
    for r in rows:
        note = r["error"] or (f"pruned at step {r['pruned_at'][0]} (best {r['pruned_at'][1]:.1f})" if r["pruned_at"] else "")
        if r["retry_of"] is not None:
            note = f"retry of #{r['retry_of']} " + note
        h.append(f"<tr><td>#{r['number']}</td><td>{r['state']}</td><td>{_fmt(r['return'] if r['return'] is not None else '')}</td>"
                 f"<td>{_fmt(r['energy_nj'] if r['energy_nj'] is not None else '')}</td><td>{html.escape(note)}</td></tr>")
    h.append("</table></body></html>")
    atomic_write_text(out / "index.html", "\n".join(h))
    return summary
