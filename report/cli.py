"""dsqn-report: a deployment report as an HTML page, or a training run's curves (one or several runs on one axis)."""

from __future__ import annotations

from pathlib import Path

from dsqn.errors import ArgumentParser, UserError, cli_entry
from dsqn.files.fileio import check_input_file, check_output_dir, check_output_file, read_json
from dsqn.report import figures as F

from .html import figure_dir_for, write_html


def _read_report(src: Path) -> dict:
    report = read_json(src, "dsqn-deploy report")
    if not isinstance(report, dict) or report.get("format") != "dsqn-report":
        raise UserError(f"{src}: not a dsqn-deploy report (format marker missing)")
    return report


def _curves(source: str, out: str) -> int:
    metrics = F.metrics_path(source)
    out_dir = check_output_dir(out) if out else metrics.parent
    paths = F.training_curves(metrics, out_dir)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _comparison(args) -> int:  # type: ignore[no-untyped-def]
    if not args.out:
        raise UserError("several runs: give the output folder with -o")
    refs = []
    for item in args.reference:
        name, _, value = item.partition("=")
        try:
            if not name.strip():
                raise ValueError
            refs.append((name.strip(), float(value)))
        except ValueError:
            raise UserError(f"--reference {item!r}: expected NAME=VALUE with a number") from None
    labels = args.labels or [Path(s).name for s in args.source]
    paths = F.comparison_curves(args.source, labels, check_output_dir(args.out), refs, args.name, args.title)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


@cli_entry("dsqn-report")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="dsqn-report", allow_abbrev=False,
        description="Render a dsqn-deploy report JSON as a self-contained HTML page (figures inlined, and saved beside it as "
                    "SVG, PDF and PNG); or, given a run folder or its metrics.csv, draw the run's training curves.")
    parser.add_argument("source", nargs="+",
                        help="report JSON written by dsqn-deploy, or a training run folder / its metrics.csv; several run "
                             "folders (with --labels) are drawn on one axis")
    parser.add_argument("-o", "--out", default="",
                        help="report: the HTML path (default: the report path with .html); curves: the output folder "
                             "(default: the run folder)")
    parser.add_argument("--figures", default="", help="report: folder for the figure files (default: <page stem>_figures beside the page)")
    parser.add_argument("--curves", action="store_true", help="draw training curves from SOURCE (implied by a folder or a .csv file)")
    parser.add_argument("--labels", nargs="+", default=[], help="several runs: one label per run, in order (e.g. SNN ANN)")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=VALUE",
                        help="several runs: a horizontal line at VALUE named NAME (e.g. 'random=1598'); repeatable")
    parser.add_argument("--name", default="comparison_curves", help="several runs: the figure's file name stem")
    parser.add_argument("--title", default="", help="several runs: the figure's title")
    args = parser.parse_args(argv)
    if len(args.source) > 1 or args.labels:
        return _comparison(args)
    args.source = args.source[0]
    if args.curves or Path(args.source).is_dir() or args.source.endswith(".csv"):
        return _curves(args.source, args.out)
    src = check_input_file(args.source)
    out = check_output_file(Path(args.out) if args.out else src.with_suffix(".html"), [src], "HTML page")
    fig_dir = check_output_dir(args.figures) if args.figures else figure_dir_for(out)
    if fig_dir.exists() and not fig_dir.is_dir():
        raise UserError(f"{fig_dir}: exists and is not a folder (the page's figures go there)")
    report = _read_report(src)
    try:
        saved = write_html(report, out, fig_dir, inputs=(src,))
    except UserError as exc:
        raise UserError(f"{src}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError, OverflowError) as exc:
        raise UserError(f"{src}: malformed report ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})") from None
    print(f"wrote {out} and {len(saved)} figures (SVG, PDF, PNG) in {fig_dir}")
    return 0
