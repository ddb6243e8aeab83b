"""The shared study: storage, the worker loop with a budget that holds across workers, pruning, the Pareto set.

Objectives: (final greedy return: maximise, energy per inference in nJ on the emulator: minimise), named
``METRIC_NAMES`` in the study (optuna-dashboard shows them instead of "Objective 0/1").
Optuna does not prune multi-objective studies (``Trial.report`` / ``should_prune`` raise for them), so each
trial's periodic evaluations are stored as the user attribute ``curve`` and, once the trial completes, as its
intermediate values (what ``Trial.report`` writes: optuna-dashboard draws them as learning curves; a PRUNED trial
with intermediate values makes Optuna 5.1's TPE sampler of a multi-objective study ask for ``study.direction`` and
raise, so pruned trials keep their curve in ``curve`` only; a worker loading a study written before drops those
values), and :func:`median_prune` applies
Optuna's MedianPruner rule to them: after ``n_startup_trials`` completed trials and ``n_warmup_steps`` env steps,
a trial whose best evaluation so far is below the median of the completed trials' evaluations at the same step
(their last evaluation at or before it) is stopped (SIGTERM to its process group) and told PRUNED.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import socket
import statistics
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsqn.errors import UserError

from .curves import forget_pruned_curves, store_curve
from .runner import TrialResult, run_trial
from .space import SearchSpace

DIRECTIONS = ["maximize", "minimize"]
OBJECTIVES = ["final greedy return", "energy per inference (nJ)"]
METRIC_NAMES = ["return", "energy_nJ"]  # the same objectives, as the study names them (Study.set_metric_names)
SPACE_ATTR = "dsqn_space"
OVER_BUDGET = "dsqn_over_budget"


def quiet_optuna():
    """optuna, imported with its info logging and experimental/future warnings silenced (the sweep's one import)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    # we run trials through ask/tell and record the heartbeat ourselves (_Heartbeat), as Study.optimize does
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def retry_callback():
    """Queue a dead worker's trial again with its parameters (up to 3 times)."""
    from optuna import storages

    cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    return cls(max_retry=3)


def default_storage(out_root: Path) -> str:
    return f"sqlite:///{(out_root / 'study.db').resolve()}"


def shown_url(url: str) -> str:
    """The URL with its password masked."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not even a URL: show it as given
        return url


def with_driver(url: str) -> str:
    """postgresql://... with the installed driver: SQLAlchemy 2.0 picks psycopg2 for it, 2.1 psycopg 3; we depend
    on psycopg2-binary and use whichever of the two is importable."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    for driver in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}{sep}{rest}"
    from dsqn.extras import missing_extra

    raise missing_extra("--storage postgresql://...", "postgres")


def open_storage(url: str, heartbeat: int = 10, grace: int = 30, create: bool = True):
    """An RDBStorage with heartbeats (a worker that stops beating for ``grace`` s has its trial failed and retried).

    Unreachable or malformed: UserError naming the URL. ``create=False``: an SQLite file must exist already."""
    quiet_optuna()
    from optuna.storages import RDBStorage

    if "://" not in url:
        raise UserError(f"--storage {url}: not a database URL (sqlite:///path.db, postgresql://user@host:port/db)")
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not create and not path.is_file():
            raise UserError(f"--storage {url}: no such study database")
        if not path.parent.is_dir():
            raise UserError(f"--storage {url}: folder {path.parent} does not exist")
    given, url = url, with_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    try:
        for attempt in range(6):
            try:
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=grace,
                                  heartbeat_stale_trial_callback=retry_callback())
            except Exception as exc:  # noqa: BLE001
                # workers started together on an empty database race to create its tables: the loser retries
                racing = exc.__class__.__name__ in ("IntegrityError", "ProgrammingError") or "already exists" in str(exc)
                if not racing or attempt == 5:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    except ImportError as exc:
        raise UserError(f"--storage {shown_url(given)}: the database driver is missing ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy's OperationalError, ArgumentError, ...
        why = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        raise UserError(f"--storage {shown_url(given)}: cannot open the study database ({exc.__class__.__name__}: {why})") from None


def make_sampler(space: SearchSpace, seed: int | None):
    """TPE (multivariate, constant liar for parallel workers), or a grid that runs every point once."""
    optuna = quiet_optuna()
    if space.sampler == "grid":
        # Trial n runs point n of the sampler's shuffled grid: every worker must shuffle alike, so the grid's
        # order is fixed (seed 0) whatever --seed a worker was given.
        return _Grid(space.grid(), seed=0)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def _grid_sampler_class():
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        """Optuna's GridSampler without its study.stop() once the grid is covered: stop() only works inside
        Study.optimize, and :func:`work` ends at the budget (the grid's size) itself."""

        def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
            return None

    return Grid


def _Grid(search_space: dict[str, list[Any]], seed: int | None):  # noqa: N802 - a class, built on first use
    return _grid_sampler_class()(search_space, seed=seed)


def load_or_create(storage: Any, name: str, space: SearchSpace, seed: int | None):
    """The study named ``name``: created with the space stored in it, or loaded when its space is the same."""
    optuna = quiet_optuna()
    sampler = make_sampler(space, seed)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name in existing:
        forget_pruned_curves(storage, name)
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        if [d.name.lower() for d in study.directions] != DIRECTIONS:
            raise UserError(f"study {name!r} exists with other objectives; name a new --study")
        stored = _stored_space(study)
        if stored is None:  # created by a worker that died before it stored the space: store it now
            study.set_user_attr(SPACE_ATTR, space.to_dict())
            study.set_user_attr("objectives", OBJECTIVES)
        elif stored != space.to_dict():
            raise UserError(f"study {name!r} was created with another search space (fixed options, params, pruner or "
                            "deploy differ); use the same space file or name a new --study")
        return _named(study)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=DIRECTIONS,
                                load_if_exists=True)
    if SPACE_ATTR not in study.user_attrs:
        study.set_user_attr(SPACE_ATTR, space.to_dict())
        study.set_user_attr("objectives", OBJECTIVES)
    elif study.user_attrs[SPACE_ATTR] != space.to_dict():  # another worker created it a moment ago, differently
        raise UserError(f"study {name!r} was created with another search space; name a new --study")
    return _named(study)


def _stored_space(study: Any, wait_s: float = 10.0) -> dict | None:
    """The search space stored in the study. A worker that finds a study another worker has just created may look
    between its creation and the storing of its space (two writes): wait for the space a little before taking the
    study as unmarked (the one case where two workers started together saw 'another search space')."""
    deadline = time.monotonic() + wait_s
    while True:
        stored = study.user_attrs.get(SPACE_ATTR)  # a property: read from the storage each time
        if stored is not None or time.monotonic() >= deadline:
            return stored
        time.sleep(0.2)


def _named(study: Any) -> Any:
    """The study with its objectives named (studies made before the names were set get them on their next run)."""
    if study.metric_names != METRIC_NAMES:
        study.set_metric_names(METRIC_NAMES)
    return study


def load_existing(storage: Any, name: str):
    optuna = quiet_optuna()
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        raise UserError(f"no study named {name!r} in this storage (studies: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def value_at(curve: Sequence[Sequence[float]], step: float) -> float | None:
    """The curve's last evaluation at or before ``step`` (None before its first)."""
    val = None
    for s, v in curve:
        if s <= step:
            val = v
        else:
            break
    return val


def median_prune(curve: Sequence[Sequence[float]], completed: Sequence[Sequence[Sequence[float]]],
                 n_startup_trials: int, n_warmup_steps: int) -> bool:
    """Optuna's MedianPruner rule (maximising) on the evaluation curves kept as user attributes."""
    if not curve:
        return False
    step = curve[-1][0]
    if step < n_warmup_steps or len(completed) < max(1, n_startup_trials):
        return False
    refs = [v for v in (value_at(c, step) for c in completed) if v is not None and not math.isnan(v)]
    if not refs:
        return False
    best = max(v for _, v in curve)
    return best < statistics.median(refs)


def non_dominated(points: dict[int, tuple[float, float]]) -> set[int]:
    """Keys of the points no other point dominates (return higher-or-equal and energy lower-or-equal, one strictly)."""
    out = set()
    for k, (r, e) in points.items():
        if not any((r2 >= r and e2 <= e) and (r2 > r or e2 < e) for k2, (r2, e2) in points.items() if k2 != k):
            out.add(k)
    return out


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` s while the trial runs (what study.optimize does)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        interval = self._storage.get_heartbeat_interval()
        while True:
            with contextlib.suppress(Exception):  # a lost connection: the next beat tries again
                self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(interval):
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _counted(trials: list[Any]) -> list[Any]:
    """Trials that use the budget: all but failed ones (a failed trial of a dead worker is retried as a new one)."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state != TrialState.FAIL]


def budget_state(study: Any, n_trials: int) -> tuple[int, int, int]:
    """(finished, running or waiting, counted) trials of the study."""
    from optuna.trial import TrialState

    counted = _counted(study.get_trials(deepcopy=False))
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted)
    return done, len(counted) - done, len(counted)


def work(study: Any, space: SearchSpace, n_trials: int, out_root: Path, poll_s: float = 1.0,
         log=print, max_failures: int = 5) -> int:
    """Run trials until the study holds ``n_trials`` finished (complete or pruned) ones; returns how many this
    worker finished. Another worker's running trial holds its place in the budget until it finishes or its
    heartbeat goes stale (then it is failed and its parameters are queued again)."""
    quiet_optuna()
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    ran = failures = 0
    waited_note = 0.0
    while True:
        fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        counted = _counted(trials)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted)
        if done >= n_trials:
            return ran
        waiting = any(t.state == TrialState.WAITING for t in counted)
        if len(counted) >= n_trials and not waiting:
            if time.time() - waited_note > 60:
                log(f"[{study.study_name}] budget {n_trials}: {done} finished, {len(counted) - done} running elsewhere; "
                    "waiting for them to finish or go stale")
                waited_note = time.time()
            time.sleep(poll_s)
            continue
        trial = study.ask()
        # Two workers may ask at the same moment: the budget goes to the lowest-numbered counted trials.
        numbers = sorted(t.number for t in _counted(study.get_trials(deepcopy=False)))
        if trial.number not in numbers[:n_trials]:
            study._storage.set_trial_system_attr(trial._trial_id, OVER_BUDGET, True)
            study.tell(trial, state=TrialState.FAIL)
            continue
        try:
            state = _run_one(study, trial, space, out_root, poll_s, log)
        except BaseException:
            # this worker is stopping (Ctrl-C, SIGTERM): the trial fails and its parameters are queued again
            frozen = study._storage.get_trial(trial._trial_id)
            if frozen.state == TrialState.RUNNING:
                with contextlib.suppress(Exception):
                    study.tell(trial, state=TrialState.FAIL)
                    retry_callback()(study, study._storage.get_trial(trial._trial_id))
            raise
        ran += 1
        if state == "fail" and space.sampler == "grid":
            # a grid measures every point: its failed point is queued again (up to 3 times), not replaced by another
            retry_callback()(study, study._storage.get_trial(trial._trial_id))
        failures = failures + 1 if state == "fail" else 0
        if failures >= max_failures:  # failed trials do not use the budget: stop a worker that only fails
            err = study._storage.get_trial(trial._trial_id).user_attrs.get("error", "")
            raise UserError(f"{failures} trials in a row failed (the last: {err}); see {out_root}/trial_*/sweep.log")


def _run_one(study: Any, trial: Any, space: SearchSpace, out_root: Path, poll_s: float, log) -> str:
    from optuna.trial import TrialState

    sampled = space.suggest(trial)
    trial_dir = (out_root / f"trial_{trial.number:04d}").resolve()
    train_argv = space.train_argv(sampled, str(trial_dir))
    command = shlex.join(["dsqn-train", *train_argv])
    trial.set_user_attr("command", command)
    trial.set_user_attr("train_argv", train_argv)
    trial.set_user_attr("trial_dir", str(trial_dir))
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("curve", [])
    trial.set_user_attr("error", "")  # a retry starts with the attributes of the trial it repeats
    log(f"[{study.study_name}] trial {trial.number}: {command}")
    pr = space.pruner
    # Rule inputs change only when a trial completes: re-read the completed curves at each new evaluation.

    def on_eval(curve: list[tuple[int, float]]) -> bool:
        trial.set_user_attr("curve", [list(p) for p in curve])
        if not pr["enabled"]:
            return False
        completed = [t.user_attrs.get("curve", []) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        prune = median_prune(curve, completed, pr["n_startup_trials"], pr["n_warmup_steps"])
        if prune:
            trial.set_user_attr("pruned_at", [curve[-1][0], max(v for _, v in curve)])
        return prune

    with _Heartbeat(study._storage, trial._trial_id):
        res: TrialResult = run_trial(train_argv, trial_dir, space.deploy["profile"], on_eval, poll_s)
    trial.set_user_attr("curve", [list(p) for p in res.curve])
    trial.set_user_attr("seconds", round(res.seconds, 1))
    if res.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
        log(f"[{study.study_name}] trial {trial.number}: pruned at step {res.curve[-1][0] if res.curve else '?'}")
    elif res.state == "fail":
        trial.set_user_attr("error", res.error)
        study.tell(trial, state=TrialState.FAIL)
        log(f"[{study.study_name}] trial {trial.number}: failed: {res.error}")
    else:
        trial.set_user_attr("model_net", str(trial_dir / "model.net"))
        trial.set_user_attr("emu_return", res.emu_return)
        trial.set_user_attr("inferences", res.inferences)
        store_curve(trial, res.curve)
        study.tell(trial, [res.final_return, res.energy_nj])
        log(f"[{study.study_name}] trial {trial.number}: return {res.final_return:.1f}, "
            f"{res.energy_nj:.2f} nJ per inference ({res.seconds:.0f} s)")
    return res.state
