"""dsqn-sweep console script.

    dsqn-sweep SPACE.yaml [--study NAME] [--storage URL] [--n-trials N] [--out DIR]   run a worker
    dsqn-sweep report STUDY_DIR|STUDY [--storage URL] [--out DIR]                    page + figures

A worker ends by printing the report command for its study, to be run as printed from the same folder.
"""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

from dsqn.errors import ArgumentParser, UserError, cli_entry, stop_on_signals
from dsqn.files.fileio import make_dir

EPILOG = """Every worker started with the same space file and --storage runs trials of one study until it holds
--n-trials finished (complete or pruned) trials, whichever worker ran them; run it again to resume. Default storage:
an SQLite file in the output folder (one machine); for many machines give one RDB URL, e.g.
--storage postgresql://user:pass@host:5432/sweeps, to every worker."""


def _positive(name: str, val: int | float | None) -> None:
    if val is not None and not val > 0:
        raise UserError(f"{name} {val}: must be positive")


def run_main(argv: list[str]) -> int:
    p = ArgumentParser(prog="dsqn-sweep", description="Optuna sweep of dsqn-train options: final greedy return versus "
                       "energy per inference (TPE sampler, median pruning on the periodic evaluations).",
                       epilog=EPILOG, allow_abbrev=False)
    p.add_argument("space", help="search space file (YAML or JSON): params over dsqn-train config fields, fixed options")
    p.add_argument("--study", default="", help="study name (default: the space file's 'study', else its file name)")
    p.add_argument("--storage", default="", help="RDB URL shared by the workers (default: sqlite:///<out>/study.db)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="the study's budget of finished trials, across all workers (default: the space file's n_trials, else "
                        "the grid's size for sampler: grid, else 30)")
    p.add_argument("--out", default="", help="folder of this worker's trial runs (default: sweeps/<study>)")
    p.add_argument("--seed", type=int, default=None, help="TPE sampler seed (default: random; give workers different seeds); "
                   "a grid's order is the same for every worker")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between a running trial's heartbeats (default: 10)")
    p.add_argument("--grace", type=int, default=60,
                   help="seconds without a heartbeat after which a trial counts as dead: failed and queued again (default: 60)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between reads of a running trial's metrics (default: 1)")
    p.add_argument("--max-failures", type=int, default=5, help="stop after this many failed trials in a row (default: 5)")
    args = p.parse_args(argv)
    for name in ("--n-trials", "--heartbeat", "--grace", "--poll", "--max-failures"):
        _positive(name, getattr(args, name[2:].replace("-", "_")))
    if args.grace <= args.heartbeat:
        raise UserError(f"--grace {args.grace}: must exceed --heartbeat {args.heartbeat}")
    from .space_file import load_space

    space = load_space(args.space)  # every check of the space before any storage is opened
    name = args.study or space.study or Path(args.space).stem
    n_trials = args.n_trials or space.n_trials or (space.grid_size() if space.sampler == "grid" else 30)
    if space.sampler == "grid" and n_trials > space.grid_size():
        raise UserError(f"--n-trials {n_trials}: exceeds the grid's {space.grid_size()} points")
    out_root = Path(args.out or Path("sweeps") / name)
    from .study import default_storage, load_or_create, open_storage, shown_url, work

    if not args.storage:
        out_root.mkdir(parents=True, exist_ok=True)
    url = args.storage or default_storage(out_root)
    storage = open_storage(url, heartbeat=args.heartbeat, grace=args.grace)
    study = load_or_create(storage, name, space, args.seed)
    out_root.mkdir(parents=True, exist_ok=True)
    print(f"dsqn-sweep: study {name!r} in {shown_url(url)}, budget {n_trials} trials, runs in {out_root}", flush=True)
    with stop_on_signals():
        ran = work(study, space, n_trials, out_root, poll_s=args.poll,
                   log=lambda m: print(m, flush=True), max_failures=args.max_failures)
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    print(f"dsqn-sweep: this worker finished {ran} trials; the study has {len(complete)} complete and {len(pruned)} pruned "
          f"(budget {n_trials})")
    if complete:
        print("Pareto front (return, nJ per inference):")
        for t in sorted(study.best_trials, key=lambda t: t.values[1]):
            print(f"  #{t.number}: {t.values[0]:.1f}, {t.values[1]:.2f} nJ   {t.user_attrs.get('command', '')}")
    print(f"report: {report_hint(name, out_root, args.storage)}")
    return 0


def report_hint(name: str, out_root: Path, storage: str) -> str:
    """The command that reports this worker's study, to run as printed from where the worker ran: its --out folder
    (which holds study.db) for the default storage, else the study's name and storage with the report in --out/report.
    A password in the URL is shown masked, as everywhere (then it has to be typed in)."""
    from .study import shown_url

    if not storage:
        return shlex.join(["dsqn-sweep", "report", str(out_root)])
    return shlex.join(["dsqn-sweep", "report", name, "--storage", shown_url(storage), "--out", str(out_root / "report")])


def report_main(argv: list[str]) -> int:
    p = ArgumentParser(prog="dsqn-sweep report", description="Pareto front, parameter importances and learning curves "
                       "of a study, as index.html with PNG and SVG figures and report.json.", allow_abbrev=False)
    p.add_argument("study", help="a study folder (a dsqn-sweep --out folder holding study.db: its study), or a study "
                   "name (with --storage, or in sweeps/<name>/study.db)")
    p.add_argument("--storage", default="", help="RDB URL (default: sqlite:///<study folder>/study.db)")
    p.add_argument("--out", default="", help="output folder (default: <study folder>/report; the study folder is "
                   "STUDY_DIR, the SQLite file's folder, or for an RDB study --out's parent, else sweeps/<study>)")
    p.add_argument("--top", type=int, default=8, help="learning curves of this many best trials (default: 8)")
    p.add_argument("--copy-trials", action="store_true",
                   help="copy each completed trial's model.net, emulator report, config, metrics and command beside the "
                        "report (trial_NNNN/), so that the report's results can be committed with their files")
    p.add_argument("--target", type=float, default=None,
                   help="count the runs reaching this return per grid cell (default: the space file's target)")
    args = p.parse_args(argv)
    _positive("--top", args.top)
    if args.target is not None and not math.isfinite(args.target):
        raise UserError(f"--target {args.target}: must be a finite number")
    from .report import write_report
    from .study import load_existing, open_storage

    study_dir, name, url = _report_source(args.study, args.storage)
    if args.out and not url.startswith("sqlite:///"):  # an RDB study has no folder of its own: the report's parent
        study_dir = Path(args.out).parent
    storage = open_storage(url, create=False)
    if name is None:
        name = _only_study(storage, study_dir)
    study = load_existing(storage, name)
    if args.target is not None and (study.user_attrs.get("dsqn_space") or {}).get("sampler") != "grid":
        raise UserError(f"--target: study {name!r} is not a grid (sampler: grid); only a grid's cells count runs")
    out = Path(args.out) if args.out else study_dir / "report"
    make_dir(out, "report folder")
    summary = write_report(study, out, args.top, target=args.target, study_dir=study_dir)
    if args.copy_trials:
        from .trial_files import copy_trials

        copied, kept, missing = copy_trials(summary["trials"], out, study_dir)
        print(f"trial files: {copied} copied, {kept} already beside the report, {len(missing)} missing"
              + (f" ({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})" if missing else ""))
    c = summary["counts"]
    print(f"study {name!r}: {c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed; "
          f"Pareto front: {', '.join('#' + str(r['number']) for r in summary['pareto']) or 'empty'}")
    print(f"wrote {out / 'index.html'} (+ {', '.join(summary['figures'])}, report.json)")
    return 0


def _report_source(arg: str, storage: str) -> tuple[Path, str | None, str]:
    """(study folder, study name or None: the only one in the folder's study.db, storage URL) for ``report ARG``."""
    from .study import default_storage

    folder = Path(arg)
    if not storage and (folder / "study.db").is_file():
        return folder, None, default_storage(folder)
    if storage.startswith("sqlite:///"):
        return Path(storage[len("sqlite:///"):]).parent, arg, storage
    study_dir = Path("sweeps") / arg
    return study_dir, arg, storage or default_storage(study_dir)


def _only_study(storage, folder: Path) -> str:  # type: ignore[no-untyped-def]
    from .study import quiet_optuna

    names = [s.study_name for s in quiet_optuna().get_all_study_summaries(storage, include_best_trial=False)]
    if len(names) != 1:
        raise UserError(f"{folder / 'study.db'} holds {len(names)} studies ({', '.join(names) or 'none'}): name one, "
                        f"as in: dsqn-sweep report NAME --storage sqlite:///{(folder / 'study.db').resolve()}")
    return names[0]


@cli_entry("dsqn-sweep")
def main(argv: list[str] | None = None) -> int:
    from dsqn.extras import require

    argv = list(sys.argv[1:] if argv is None else argv)
    if not {"-h", "--help"} & set(argv):
        require("dsqn-sweep", "sweep", "optuna")
    if argv and argv[0] == "report":
        return report_main(argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    return run_main(argv)


if __name__ == "__main__":
    sys.exit(main())
