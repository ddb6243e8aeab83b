"""dsqn-sweep report: the Pareto front of return versus nJ per inference, parameter importances per objective,
the learning curves of the best trials, and for each Pareto trial its reproducing command and model.net."""

from __future__ import annotations

import html
import json
import math
import warnings
from pathlib import Path
from typing import Any

from dsqn.fileio import atomic_write_text

from .study import DIRECTIONS, OBJECTIVES, OVER_BUDGET, _quiet_optuna, non_dominated


def _trial_row(t: Any) -> dict[str, Any]:
    ua = t.user_attrs
    return {"number": t.number, "state": t.state.name, "params": t.params,
            "return": t.values[0] if t.values else None, "energy_nj": t.values[1] if t.values and len(t.values) > 1 else None,
            "emu_return": ua.get("emu_return"), "inferences": ua.get("inferences"), "command": ua.get("command"),
            "model_net": ua.get("model_net"), "trial_dir": ua.get("trial_dir"), "host": ua.get("host"),
            "seconds": ua.get("seconds"), "curve": ua.get("curve", []), "error": ua.get("error"),
            "pruned_at": ua.get("pruned_at"), "retry_of": t.system_attrs.get("failed_trial")}


def importances(study: Any) -> dict[str, dict[str, float] | str]:
    """Parameter importances per objective (PED-ANOVA: no scikit-learn needed) -- which parameters decide whether a
    trial reaches the best returns / the lowest energies; a string says why there are none."""
    optuna = _quiet_optuna()
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
    from dsqn.figures import save_figure

    return [p.name for p in save_figure(fig, out, stem).values()]


def figures(rows: list[dict], pareto: list[int], imps: dict, out: Path, top: int) -> list[str]:
    from dsqn.figures import COLORS, PALETTE, WIDTH_IN, new_figure, style

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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def write_report(study: Any, out: Path, top: int = 8) -> dict[str, Any]:
    _quiet_optuna()
    out.mkdir(parents=True, exist_ok=True)
    trials = [t for t in study.get_trials(deepcopy=False) if not t.system_attrs.get(OVER_BUDGET)]
    rows = [_trial_row(t) for t in trials]
    pareto = sorted(t.number for t in study.best_trials) if any(r["state"] == "COMPLETE" for r in rows) else []
    done = {r["number"]: (r["return"], r["energy_nj"]) for r in rows if r["state"] == "COMPLETE"}
    assert set(pareto) == non_dominated(done), "optuna's best_trials differ from the non-dominated set"
    imps = importances(study)
    files = figures(rows, pareto, imps, out, top)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    summary = {"study": study.study_name, "objectives": OBJECTIVES, "directions": ["maximize", "minimize"],
               "counts": counts, "pareto": [r for r in rows if r["number"] in pareto], "importances": imps,
               "trials": rows, "figures": files, "space": study.user_attrs.get("dsqn_space")}
    atomic_write_text(out / "report.json", json.dumps(summary, indent=1))
    front_rows = sorted(summary["pareto"], key=lambda r: r["energy_nj"])
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>dsqn-sweep {html.escape(study.study_name)}</title>",
         "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}code{font-size:12px;word-break:break-all}"
         "img{max-width:100%}</style></head><body>",
         f"<h1>Sweep <code>{html.escape(study.study_name)}</code></h1>",
         "<p>Objectives: maximise the final greedy return (dsqn-train's final evaluation), minimise the energy per "
         "inference counted on the emulator (dsqn-deploy --backend emu over the same episodes). Trials: "
         + ", ".join(f"{v} {k.lower()}" for k, v in counts.items() if v) + ".</p>",
         "<h2>Pareto front</h2><img src='pareto.svg' alt='Pareto front'>",
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
