"""The search space file: which TrainConfig fields a sweep samples, how, and what every trial fixes.

```yaml
study: cartpole-energy          # default study name (--study wins)
n_trials: 30                    # the study's trial budget, across all workers (--n-trials wins)
fixed: {env_id: CartPole-v1, total_timesteps: 30000}   # dsqn-train options of every trial
params:                         # sampled per trial (Optuna's TPE)
  lr: {low: 1.0e-4, high: 3.0e-3, log: true}
  snn_steps: {choices: [4, 8, 16]}
  hidden: {choices: ["32 32", "64 64"]}   # list fields: choices, each a list or a space-separated string
pruner: {n_startup_trials: 5, n_warmup_steps: 5000}
deploy: {profile: loihi1-davies2018}
```

A grid (``sampler: grid``) runs every combination of the choices once (Optuna's GridSampler; every param takes
choices; the budget defaults to the grid's size; no pruning unless ``pruner: {enabled: true}``), e.g. a
hyperparameter-sensitivity measurement over seeds. A param whose choices are mappings is a *bundle*: its name is a
label, each choice sets several dsqn-train fields together (``decay: {choices: [{current_decay: 0.2,
voltage_decay: 0.2}, ...]}``). ``target: 475`` makes the report count, per grid cell, the runs that reach it.

Everything is checked before any storage is opened: a key that is not a TrainConfig field, an empty or
inverted range, a log range that reaches 0, a choice of the wrong type, a value the training CLI would refuse
(each range end and each choice is validated as dsqn-train validates it) -- one UserError naming the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from dsqn.errors import UserError

# dsqn-sweep sets these per trial; a space file may not.
RESERVED = {"out": "each trial's folder is chosen by dsqn-sweep", "resume": "trials start afresh",
            "progress": "trials run with --no-progress"}
TOP_KEYS = {"study", "n_trials", "fixed", "params", "pruner", "deploy", "sampler", "target"}
SAMPLERS = ("tpe", "grid")
PARAM_KEYS = {"low", "high", "log", "step", "choices"}
PRUNER_DEFAULTS = {"enabled": True, "n_startup_trials": 5, "n_warmup_steps": 0}
DEPLOY_DEFAULTS = {"profile": "loihi1-davies2018"}


def train_fields() -> dict[str, str]:
    """TrainConfig field name -> its type as written in the dataclass ('int', 'float', 'list[int]', ...)."""
    from dsqn.train.config import TrainConfig

    return {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def as_number(val: Any, typ: str, what: str) -> int | float:
    """A YAML value as the field's number type (YAML 1.1 reads 1e-4 as a string: accept it)."""
    if isinstance(val, str):
        try:
            val = float(val) if typ == "float" else int(val)
        except ValueError:
            raise UserError(f"{what}: {val!r} is not a number") from None
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise UserError(f"{what}: {val!r} is not a number")
    if typ == "int":
        if isinstance(val, float) and not val.is_integer():
            raise UserError(f"{what}: {val!r} is not an integer (the field is an integer)")
        return int(val)
    if not math.isfinite(val):
        raise UserError(f"{what}: {val!r} is not a finite number")
    return float(val)


def as_choice(val: Any, typ: str, what: str) -> Any:
    """One choice or fixed value, checked against the field type; list fields come back as lists."""
    if typ in ("int", "float"):
        return as_number(val, typ, what)
    if typ == "bool":
        if not isinstance(val, bool):
            raise UserError(f"{what}: {val!r} is not true or false")
        return val
    if typ == "str":
        if not isinstance(val, str):
            raise UserError(f"{what}: {val!r} is not a string")
        return val
    if typ.startswith("list["):
        inner = typ[5:-1]
        items = val.split() if isinstance(val, str) else val
        if isinstance(items, (int, float)) and not isinstance(items, bool):
            items = [items]
        if not isinstance(items, list) or not items:
            raise UserError(f"{what}: {val!r} is not a non-empty list")
        return [as_number(v, inner, what) for v in items]
    raise UserError(f"{what}: fields of type {typ} cannot be swept")


def encode_choice(val: Any) -> Any:
    """Optuna's categorical choices are scalars: lists travel as space-separated strings."""
    return " ".join(str(v) for v in val) if isinstance(val, list) else val


def encode_bundle(val: dict[str, Any]) -> str:
    """A bundle choice as one categorical value: 'current_decay=0.2 voltage_decay=0.2' (lists comma-joined,
    'hidden=64,64', so that spaces only separate fields)."""
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in val.items())


def to_argv(values: dict[str, Any]) -> list[str]:
    """dsqn-train options for a dict of field values (lists as nargs, booleans as --x / --no-x)."""
    argv: list[str] = []
    for key, val in values.items():
        if isinstance(val, bool):
            argv.append(_flag(key) if val else "--no-" + key.replace("_", "-"))
        elif isinstance(val, list):
            argv += [_flag(key), *[repr(v) if isinstance(v, float) else str(v) for v in val]]
        elif isinstance(val, float):
            argv += [_flag(key), repr(val)]
        else:
            argv += [_flag(key), str(val)]
    return argv


@dataclass
class Param:
    name: str
    typ: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list[Any] | None = None
    bundle: bool = False
    """choices are mappings of several fields set together; ``name`` is only a label"""

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": self.choices}
        d: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            d["step"] = self.step
        return d

    def encoded(self) -> list[Any]:
        """The choices as Optuna stores them (scalars)."""
        assert self.choices is not None
        return [encode_bundle(c) if self.bundle else encode_choice(c) for c in self.choices]

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            enc = self.encoded()
            picked = trial.suggest_categorical(self.name, enc)
            if self.bundle:
                return dict(self.choices[enc.index(picked)])
            return as_choice(picked, self.typ, self.name)
        if self.typ == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)


@dataclass
class SearchSpace:
    fixed: dict[str, Any]
    params: list[Param]
    study: str = ""
    n_trials: int | None = None
    pruner: dict[str, Any] = field(default_factory=lambda: dict(PRUNER_DEFAULTS))
    deploy: dict[str, Any] = field(default_factory=lambda: dict(DEPLOY_DEFAULTS))
    sampler: str = "tpe"
    target: float | None = None
    """a return the report counts runs reaching (per grid cell)"""

    def to_dict(self) -> dict[str, Any]:
        """What defines the study (stored in it; a worker with another space is refused)."""
        d = {"fixed": self.fixed, "params": {p.name: p.to_dict() for p in self.params},
             "pruner": self.pruner, "deploy": self.deploy}
        if self.sampler != "tpe":
            d["sampler"] = self.sampler
        if self.target is not None:
            d["target"] = self.target
        return d

    def grid(self) -> dict[str, list[Any]]:
        """Optuna GridSampler's search space: each param's encoded choices."""
        return {p.name: p.encoded() for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(p.choices or []) for p in self.params)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Field values of a trial (a bundle param contributes all its fields)."""
        out: dict[str, Any] = {}
        for p in self.params:
            val = p.suggest(trial)
            if p.bundle:
                out.update(val)
            else:
                out[p.name] = val
        return out

    def train_argv(self, sampled: dict[str, Any], out: str) -> list[str]:
        """The trial's dsqn-train options: the fixed ones, the sampled ones, then its folder."""
        return [*to_argv(self.fixed), *to_argv(sampled), "--out", out, "--no-progress"]
