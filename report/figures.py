"""Every figure the toolchain draws: one style, one palette, one set of units, each figure saved as SVG, PDF and PNG.

Figures are drawn with matplotlib on its Agg canvas (no pyplot, no display, no global figure state), the plotting
library of the field's papers, so a figure here can go into a paper as it is: the PDF for LaTeX, the SVG for the
web (its text stays text: ``svg.fonttype = none``), the PNG for a README.

Rules every figure keeps (``save_figure`` refuses a figure that breaks the first):
* an axis is logarithmic only where its label says "log scale"; otherwise it is linear from zero, so bar lengths
  compare as the numbers do;
* energy in nJ per inference (reports keep pJ; ``nj`` converts), activity per inference or per neuron and timestep;
* the same colour means the same thing in every figure (``COLORS``).

``training_curves(run_dir or metrics.csv, out_dir)`` draws a training run's returns; ``dsqn-report RUN_DIR`` runs it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsqn.errors import UserError
from dsqn.files.fileio import atomic_write_bytes, make_dir, same_file

FORMATS = ("svg", "pdf", "png")
PNG_DPI = 150

# Okabe & Ito's colour-blind-safe palette (Color Universal Design, 2008), the usual choice of figures in papers.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
COLORS = {
    "snn": "#0072B2",            # the spiking network, whatever the profile
    "ann_fp32": "#D55E00",       # the ANN of the same shape in fp32
    "ann_int8": "#E69F00",       # ... and in int8
    "synops": "#56B4E9",         # energy components of the SNN
    "neuron_updates": "#009E73",
    "spikes": "#CC79A7",
    "events": "#E69F00",         # input events of a layer (its synaptic ops are "synops")
    "episodic": "#999999",       # epsilon-greedy training episodes
    "episodic_mean": "#000000",
    "eval": "#0072B2",           # greedy evaluations
    "final": "#D55E00",          # the final held-out evaluation
    "loss": "#009E73",
    "spike_raster": "#000000",
    "faint": "#BBBBBB",
}

ENERGY_UNIT = "nJ"
PJ_PER_NJ = 1e3
LOG_LABEL = "log scale"

FONT_SIZE = 9
STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE - 1,
    "ytick.labelsize": FONT_SIZE - 1,
    "legend.fontsize": FONT_SIZE - 1,
    "legend.frameon": False,
    "figure.titlesize": FONT_SIZE + 2,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.4,
    "figure.dpi": 100,
    "svg.fonttype": "none",  # text stays text in the SVG: searchable, selectable, small
    "pdf.fonttype": 42,      # TrueType in the PDF, as journals ask
}
WIDTH_IN = 6.4  # one column of the report page / a full-width figure in a paper


def nj(pj: float) -> float:
    """pJ (the unit of the report JSON) to nJ (the unit of every figure)."""
    return float(pj) / PJ_PER_NJ


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The toolchain's style; figures must be built inside it (matplotlib reads most settings when an artist is made)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    """A figure on the Agg canvas with constrained layout (call inside :func:`style`)."""
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def log_scale(ax: Axes, axis: str, label: str) -> None:
    """Make ``axis`` ('x' or 'y') logarithmic and say so in its label: the only way a figure here gets a log axis."""
    text = f"{label} ({LOG_LABEL})"
    if axis == "x":
        ax.set_xscale("log")
        ax.set_xlabel(text)
    else:
        ax.set_yscale("log")
        ax.set_ylabel(text)


def check_log_axes_labelled(fig: Figure) -> None:
    """A logarithmic axis whose label does not say so misleads (a 332 nJ bar drawn less than twice a 19 nJ one)."""
    for ax in fig.axes:
        for axis, scale, label in (("x", ax.get_xscale(), ax.get_xlabel()), ("y", ax.get_yscale(), ax.get_ylabel())):
            if scale != "linear" and LOG_LABEL not in label:
                raise ValueError(f"figure axis {axis} ({ax.get_title()!r}) is {scale} but its label {label!r} does not say {LOG_LABEL!r}")


def render_figure(fig: Figure, name: str, formats: Sequence[str] = FORMATS) -> dict[str, bytes]:
    """The figure's bytes in each format, reproducible (no dates; SVG ids salted with the figure's name, so SVGs of
    several figures inlined into one page do not share ids)."""
    check_log_axes_labelled(fig)
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}
    out = {}
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": f"dsqn-{name}"}):
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=PNG_DPI if fmt == "png" else None, metadata=metadata.get(fmt, {}))
            out[fmt] = buf.getvalue()
    return out


def save_figure(fig: Figure, out_dir: Path, name: str, inputs: Sequence[Path] = ()) -> dict[str, Path]:
    """Write ``out_dir/name.svg|pdf|png`` atomically (the folder is created if missing); an output that would
    replace one of ``inputs`` is refused. Returns the paths by format."""
    out_dir = Path(out_dir)
    paths = {fmt: out_dir / f"{name}.{fmt}" for fmt in FORMATS}
    for p in paths.values():
        for src in inputs:
            if same_file(p, src):
                raise UserError(f"{p}: the figure would overwrite the input {src}")
    make_dir(out_dir, "figure folder")
    data = render_figure(fig, name)
    for fmt, p in paths.items():
        atomic_write_bytes(p, data[fmt])
    return paths


_SVG_ID = re.compile(r'\bid="([^"]+)"')
_SVG_REF = re.compile(r'(url\(#|href="#)([^)"]+)')


def inline_svg(svg: bytes, element_id: str) -> str:
    """An SVG file as an element for an HTML page: no XML prolog or DOCTYPE, its ids prefixed with ``element_id``
    (unique within the page), no RDF metadata, the outer element carrying ``id=element_id`` and ``class="chart"``, scaled to the page."""
    text = svg.decode()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF about the file, not the figure
    text = _SVG_ID.sub(lambda m: f'id="{element_id}-{m[1]}"', text)
    text = _SVG_REF.sub(lambda m: f"{m[1]}{element_id}-{m[2]}", text)
    return text.replace("<svg ", f'<svg id="{element_id}" class="chart" role="img" ', 1)


# ---------------------------------------------------------------------------------------------------- training curves

METRICS_FILE = "metrics.csv"
METRICS_COLUMNS = ("step", "kind", "value", "extra")


@dataclass
class Metrics:
    """The rows of a run's ``metrics.csv`` by kind: (env step, value, extra) in file order."""

    rows: dict[str, list[tuple[int, float, str]]] = field(default_factory=dict)

    def series(self, kind: str) -> tuple[list[int], list[float]]:
        rows = self.rows.get(kind, [])
        return [r[0] for r in rows], [r[1] for r in rows]

    def std(self, kind: str) -> list[float | None]:
        """The ``std=`` of each row's extra column (evaluations write it), None where absent."""
        out = []
        for _, _, extra in self.rows.get(kind, []):
            m = re.search(r"(?:^|;)\s*std=([^;]+)", extra)
            try:
                out.append(float(m[1]) if m else None)
            except ValueError:
                out.append(None)
        return out


def metrics_path(source: str | Path) -> Path:
    """``metrics.csv`` itself, or the one in a run folder."""
    p = Path(source)
    if p.is_dir():
        p = p / METRICS_FILE
        if not p.exists():
            raise UserError(f"{source}: is a directory with no {METRICS_FILE} (give a run folder or its {METRICS_FILE})")
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if not p.is_file():
        raise UserError(f"{p}: not a regular file")
    return p


def read_metrics(path: str | Path) -> Metrics:
    """Parse a run's metrics.csv (columns step,kind,value,extra). A damaged file is a one-line UserError naming the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (expected a metrics.csv with columns {','.join(METRICS_COLUMNS)})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise UserError(f"{path}: line 1: not CSV ({exc})") from None
    if header is None or [h.strip() for h in header[:3]] != list(METRICS_COLUMNS[:3]):
        raise UserError(f"{path}: not a metrics.csv (the first line must be {','.join(METRICS_COLUMNS)})")
    metrics = Metrics()
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < 3:
                raise UserError(f"{path}: line {line}: {len(row)} columns, expected {len(METRICS_COLUMNS)}")
            try:
                step = int(row[0])
                value = float(row[2])
            except ValueError:
                raise UserError(f"{path}: line {line}: step {row[0][:20]!r} or value {row[2][:20]!r} is not a number") from None
            if step < 0:
                raise UserError(f"{path}: line {line}: negative step {step}")
            metrics.rows.setdefault(row[1], []).append((step, value, row[3] if len(row) > 3 else ""))
    except csv.Error as exc:
        raise UserError(f"{path}: line {reader.line_num}: not CSV ({exc})") from None
    if not metrics.rows.get("episodic_return") and not metrics.rows.get("eval_return"):
        raise UserError(f"{path}: no episodic_return or eval_return rows to draw")
    return metrics


def _moving_mean(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def training_curves_figure(metrics: Metrics, title: str = "") -> Figure:
    """Episodic return (epsilon-greedy training episodes, with their moving mean) and greedy evaluation return
    (mean ± std over the evaluation episodes) against environment steps; the TD loss below it where logged."""
    has_loss = bool(metrics.rows.get("td_loss"))
    with style():
        fig = new_figure(5.0 if has_loss else 3.8)
        if has_loss:
            ax, ax_loss = fig.subplots(2, 1, sharex=True, height_ratios=[2.4, 1])
        else:
            ax, ax_loss = fig.subplots(1, 1), None
        steps, returns = metrics.series("episodic_return")
        if steps:
            ax.plot(steps, returns, linestyle="none", marker=".", markersize=2.5, color=COLORS["episodic"],
                    label="training episode (ε-greedy)", gid="episodic_return")
            window = max(1, min(20, len(returns) // 10))
            ax.plot(steps, _moving_mean(returns, window), color=COLORS["episodic_mean"], linewidth=1.0,
                    label=f"its moving mean ({window} episodes)", gid="episodic_mean")
        steps, evals = metrics.series("eval_return")
        if steps:
            std = metrics.std("eval_return")
            if all(s is not None for s in std):
                ax.fill_between(steps, [v - s for v, s in zip(evals, std)], [v + s for v, s in zip(evals, std)],
                                color=COLORS["eval"], alpha=0.15, linewidth=0, label="greedy evaluation ± std")
            ax.plot(steps, evals, color=COLORS["eval"], marker="o", markersize=3, label="greedy evaluation, mean",
                    gid="eval_return")
        steps, final = metrics.series("final_eval_return")
        if steps:
            std = metrics.std("final_eval_return")
            ax.errorbar(steps, final, yerr=[s or 0.0 for s in std], color=COLORS["final"], marker="*", markersize=9,
                        linestyle="none", capsize=3, label="final evaluation, kept weights", gid="final_eval_return")
        ax.set_ylabel("return per episode")
        fig.legend(loc="outside lower center", ncols=3)
        if title:
            fig.suptitle(title)
        if ax_loss is not None:
            steps, loss = metrics.series("td_loss")
            ax_loss.plot(steps, loss, color=COLORS["loss"], linewidth=1.0, gid="td_loss")
            if all(v > 0 for v in loss):
                log_scale(ax_loss, "y", "TD loss")
            else:
                ax_loss.set_ylabel("TD loss")
            ax_loss.set_xlabel("environment steps")
        else:
            ax.set_xlabel("environment steps")
        ax.set_xlim(left=0)
    return fig


def training_curves(source: str | Path, out_dir: str | Path | None = None, name: str = "training_curves") -> dict[str, Path]:
    """Draw a run's training curves from ``source`` (a run folder or its metrics.csv) into ``out_dir`` (default: the
    folder of the metrics.csv) as ``name``.svg/.pdf/.png. Returns the paths by format; bad input is a UserError."""
    path = metrics_path(source)
    metrics = read_metrics(path)
    title = path.parent.name if path.parent.name else ""
    fig = training_curves_figure(metrics, title=title)
    return save_figure(fig, Path(out_dir) if out_dir is not None else path.parent, name, inputs=[path])


RUN_COLORS = (COLORS["snn"], COLORS["ann_fp32"], PALETTE[2], PALETTE[4], PALETTE[5], PALETTE[7])


def comparison_curves_figure(runs: Sequence[tuple[str, Metrics]], references: Sequence[tuple[str, float]] = (),
                             title: str = "") -> Figure:
    """Several runs on one axis (the spiking network beside its ANN, say): each run's greedy evaluations (mean ±
    std over the evaluation episodes), the moving mean of its training episodes (dashed, same colour) and its final
    evaluation (star, ± std), against environment steps; ``references`` are horizontal lines (a random or human
    score). The first run is drawn in the SNN's colour, the second in the ANN's."""
    if not runs:
        raise UserError("no runs to compare")
    if len(runs) > len(RUN_COLORS):
        raise UserError(f"{len(runs)} runs: at most {len(RUN_COLORS)} fit one comparison figure")
    with style():
        fig = new_figure(3.8)
        ax = fig.subplots(1, 1)
        for (label, metrics), color in zip(runs, RUN_COLORS):
            steps, returns = metrics.series("episodic_return")
            if steps:
                window = max(1, min(20, len(returns) // 10))
                ax.plot(steps, _moving_mean(returns, window), color=color, linewidth=0.8, linestyle="--", alpha=0.7,
                        label=f"{label}: training episodes, moving mean ({window})", gid=f"{label}/episodic_mean")
            steps, evals = metrics.series("eval_return")
            if steps:
                std = metrics.std("eval_return")
                if all(s is not None for s in std):
                    ax.fill_between(steps, [v - s for v, s in zip(evals, std)], [v + s for v, s in zip(evals, std)],
                                    color=color, alpha=0.12, linewidth=0)
                ax.plot(steps, evals, color=color, marker="o", markersize=3, label=f"{label}: greedy evaluation ± std",
                        gid=f"{label}/eval_return")
            steps, final = metrics.series("final_eval_return")
            if steps:
                std = metrics.std("final_eval_return")
                ax.errorbar(steps, final, yerr=[s or 0.0 for s in std], color=color, marker="*", markersize=9,
                            linestyle="none", capsize=3, label=f"{label}: final evaluation", gid=f"{label}/final_eval_return")
        for i, (label, value) in enumerate(references):
            ax.axhline(finite(value, f"reference {label!r}"), color=COLORS["episodic_mean"], linewidth=0.8,
                       linestyle=(0, (1, 2 + 2 * i)), label=label, gid=f"reference/{label}")
        ax.set_ylabel("return per episode")
        ax.set_xlabel("environment steps")
        ax.set_xlim(left=0)
        fig.legend(loc="outside lower center", ncols=2)
        if title:
            fig.suptitle(title)
    return fig


def comparison_curves(sources: Sequence[str | Path], labels: Sequence[str], out_dir: str | Path,
                      references: Sequence[tuple[str, float]] = (), name: str = "comparison_curves",
                      title: str = "") -> dict[str, Path]:
    """Draw the runs ``sources`` (run folders or metrics.csv files) labelled ``labels`` on one axis into
    ``out_dir`` as ``name``.svg/.pdf/.png (:func:`comparison_curves_figure`). Bad input is a UserError."""
    if len(labels) != len(sources):
        raise UserError(f"{len(sources)} runs but {len(labels)} labels (give one --labels entry per run)")
    if len(set(labels)) != len(labels):
        raise UserError("--labels: each run needs its own label")
    paths = [metrics_path(s) for s in sources]
    fig = comparison_curves_figure([(lab, read_metrics(p)) for lab, p in zip(labels, paths)], references, title)
    return save_figure(fig, Path(out_dir), name, inputs=paths)


def finite(x: object, what: str) -> float:
    """A number from a JSON file, or a UserError naming it."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise UserError(f"{what} is {str(x)[:40]!r}, not a finite number")
    return float(x)
