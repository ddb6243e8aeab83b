"""A trial's periodic evaluations in the Optuna storage (see sweep/study.py's module doc): intermediate values for
completed trials only, and the repair of studies written when pruned trials had them too."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def store_curve(trial: Any, curve: Sequence[Sequence[float]]) -> None:
    """A completed trial's periodic evaluations as its intermediate values (dashboard learning curves).
    ``Trial.report`` refuses multi-objective studies; the storage call it makes does not."""
    for step, value in curve:
        if step >= 0 and math.isfinite(value):
            trial.storage.set_trial_intermediate_value(trial._trial_id, int(step), float(value))


def forget_pruned_curves(storage: Any, name: str) -> int:
    """A study written before pruned trials stopped getting intermediate values (see the module doc) would crash the
    TPE sampler: drop those values (the curve stays in each trial's ``curve`` attribute). Returns the rows removed."""
    engine = getattr(storage, "engine", None)  # an RDBStorage (open_storage); a URL string has no pruned-curve rows of ours
    if engine is None:
        return 0
    import sqlalchemy

    sql = sqlalchemy.text(
        "DELETE FROM trial_intermediate_values WHERE trial_id IN (SELECT t.trial_id FROM trials t JOIN studies s "
        "ON t.study_id = s.study_id WHERE s.study_name = :name AND t.state = 'PRUNED')")
    with engine.begin() as conn:
        return int(conn.execute(sql, {"name": name}).rowcount or 0)
