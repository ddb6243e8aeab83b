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
from pathlib import Path
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


def _norm_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise UserError(f"{where}: key {key!r} is not a name")
    return key.lstrip("-").replace("-", "_")


def _number(val: Any, typ: str, what: str) -> int | float:
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


def _choice(val: Any, typ: str, what: str) -> Any:
    """One choice or fixed value, checked against the field type; list fields come back as lists."""
    if typ in ("int", "float"):
        return _number(val, typ, what)
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
        return [_number(v, inner, what) for v in items]
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
            return _choice(picked, self.typ, self.name)
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


def _check_with_train_validate(fixed: dict[str, Any], key: str, value: Any, what: str) -> None:
    """The value as dsqn-train would see it (env defaults filled, every option validated); key '' with a dict
    value checks several fields at once (a bundle choice)."""
    from dsqn.train.config import make_config

    extra = value if isinstance(value, dict) and not key else ({key: value} if key else {})
    try:
        make_config(**{"out": "unused", **fixed, **extra})
    except UserError as exc:
        raise UserError(f"{what}: dsqn-train refuses it: {exc}") from None


def parse_space(data: Any, source: str = "search space") -> SearchSpace:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with 'params' (and optionally fixed, study, n_trials, pruner, deploy)")
    for key in data:
        if key not in TOP_KEYS:
            raise UserError(f"{source}: unknown key {key!r} (expected: {', '.join(sorted(TOP_KEYS))})")
    types = train_fields()

    def field_name(key: Any, section: str) -> str:
        name = _norm_key(key, f"{source}: {section}")
        if name not in types:
            raise UserError(f"{source}: {section}.{key}: not a dsqn-train config field (see dsqn-train --help)")
        if name in RESERVED:
            raise UserError(f"{source}: {section}.{key}: set by dsqn-sweep ({RESERVED[name]})")
        return name

    fixed_in = data.get("fixed") or {}
    if not isinstance(fixed_in, dict):
        raise UserError(f"{source}: fixed: expected a mapping of dsqn-train options")
    fixed: dict[str, Any] = {}
    for key, val in fixed_in.items():
        name = field_name(key, "fixed")
        fixed[name] = _choice(val, types[name], f"{source}: fixed.{key}")
    _check_with_train_validate(fixed, "", None, f"{source}: fixed")

    params_in = data.get("params")
    if not isinstance(params_in, dict) or not params_in:
        raise UserError(f"{source}: params: give at least one field to sweep")
    params: list[Param] = []
    swept: dict[str, str] = {}  # field -> the param that sets it

    def claim(name: str, by: str, what: str) -> None:
        if name in fixed:
            raise UserError(f"{what}: {name} is also fixed; sweep it or fix it, not both")
        if name in swept:
            raise UserError(f"{what}: {name} is already swept by params.{swept[name]}")
        swept[name] = by

    for key, spec in params_in.items():
        what = f"{source}: params.{key}"
        if not isinstance(spec, dict):
            spec = {"choices": spec} if isinstance(spec, list) else spec
        raw = spec.get("choices") if isinstance(spec, dict) else None
        if isinstance(raw, list) and raw and any(isinstance(c, dict) for c in raw):
            params.append(_bundle(key, spec, raw, what, fixed, types, field_name, claim))
            continue
        name = field_name(key, "params")
        claim(name, name, what)
        typ = types[name]
        if not isinstance(spec, dict):
            raise UserError(f"{what}: expected {{low, high[, log, step]}} or {{choices: [...]}}")
        for k in spec:
            if k not in PARAM_KEYS:
                raise UserError(f"{what}: unknown key {k!r} (expected low, high, log, step or choices)")
        params.append(_choices_param(name, typ, spec, what, fixed) if "choices" in spec
                      else _range_param(name, typ, spec, what, fixed))

    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise UserError(f"{source}: sampler: {sampler!r} (expected {' or '.join(SAMPLERS)})")
    target = data.get("target")
    if target is not None:
        target = _number(target, "float", f"{source}: target")
    study = data.get("study", "")
    if not isinstance(study, str):
        raise UserError(f"{source}: study: {study!r} is not a name")
    n_trials = data.get("n_trials")
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise UserError(f"{source}: n_trials: {n_trials!r} must be a positive integer")
    if sampler == "grid":
        ranged = [p.name for p in params if p.choices is None]
        if ranged:
            raise UserError(f"{source}: params.{ranged[0]}: a grid takes choices, not a range")
    pruner, deploy = _pruner(data, source, sampler), _deploy(data, source)
    space = SearchSpace(fixed=fixed, params=params, study=study, n_trials=n_trials, pruner=pruner, deploy=deploy,
                        sampler=sampler, target=target)
    if sampler == "grid" and n_trials is not None and n_trials > space.grid_size():
        raise UserError(f"{source}: n_trials: {n_trials} exceeds the grid's {space.grid_size()} points")
    return space


def _choices_param(name: str, typ: str, spec: dict, what: str, fixed: dict[str, Any]) -> Param:
    """A param over a list of values of one field."""
    if set(spec) - {"choices"}:
        raise UserError(f"{what}: choices cannot be combined with low/high/log/step")
    raw = spec["choices"]
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{what}: choices: give a non-empty list")
    choices = [_choice(c, typ, what) for c in raw]
    enc = [json.dumps(encode_choice(c)) for c in choices]
    if len(set(enc)) != len(enc):
        raise UserError(f"{what}: choices repeat a value")
    for c in choices:
        _check_with_train_validate(fixed, name, c, f"{what} = {encode_choice(c)!r}")
    return Param(name, typ, choices=choices)


def _range_param(name: str, typ: str, spec: dict, what: str, fixed: dict[str, Any]) -> Param:
    """A param over a numeric range (low, high[, log, step])."""
    if typ not in ("int", "float"):
        raise UserError(f"{what}: a {typ} field takes choices, not a range")
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{what}: a range needs low and high")
    low = _number(spec["low"], typ, f"{what}.low")
    high = _number(spec["high"], typ, f"{what}.high")
    if not low < high:
        raise UserError(f"{what}: empty or inverted range (low {low} must be below high {high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{what}.log: {log!r} is not true or false")
    if log and low <= 0:
        raise UserError(f"{what}: a log range must be positive (low {low})")
    step = spec.get("step")
    if step is not None:
        step = _number(step, typ, f"{what}.step")
        if step <= 0:
            raise UserError(f"{what}.step: {step} must be positive")
        if log:
            raise UserError(f"{what}: step and log cannot be combined (Optuna)")
        if step > high - low:
            raise UserError(f"{what}.step: {step} is wider than the range {low}..{high}")
    for end in (low, high):
        _check_with_train_validate(fixed, name, end, f"{what} = {end}")
    return Param(name, typ, low=low, high=high, log=log, step=step)


def _pruner(data: dict, source: str, sampler: str) -> dict[str, Any]:
    pruner = dict(PRUNER_DEFAULTS, enabled=sampler != "grid")  # a grid measures every point to its end
    pr = data.get("pruner") or {}
    if not isinstance(pr, dict):
        raise UserError(f"{source}: pruner: expected a mapping")
    for k, v in pr.items():
        if k not in PRUNER_DEFAULTS:
            raise UserError(f"{source}: pruner.{k}: unknown (expected {', '.join(PRUNER_DEFAULTS)})")
        if k == "enabled":
            if not isinstance(v, bool):
                raise UserError(f"{source}: pruner.enabled: {v!r} is not true or false")
        elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise UserError(f"{source}: pruner.{k}: {v!r} must be a non-negative integer")
        pruner[k] = v
    return pruner


def _deploy(data: dict, source: str) -> dict[str, str]:
    deploy = dict(DEPLOY_DEFAULTS)
    dp = data.get("deploy") or {}
    if not isinstance(dp, dict):
        raise UserError(f"{source}: deploy: expected a mapping")
    for k, v in dp.items():
        if k not in DEPLOY_DEFAULTS:
            raise UserError(f"{source}: deploy.{k}: unknown (expected {', '.join(DEPLOY_DEFAULTS)})")
        if not isinstance(v, str) or not v:
            raise UserError(f"{source}: deploy.{k}: {v!r} is not a name")
        deploy[k] = v
    return deploy


def _bundle(key: Any, spec: dict, raw: list, what: str, fixed: dict[str, Any], types: dict[str, str], field_name,
            claim) -> Param:
    """A param whose choices are mappings of fields set together (its name is only a label)."""
    label = _norm_key(key, what)
    if set(spec) - {"choices"}:
        raise UserError(f"{what}: a bundle (choices that are mappings) takes only choices")
    if not all(isinstance(c, dict) and c for c in raw):
        raise UserError(f"{what}: choices: either all mappings of dsqn-train fields (a bundle) or none")
    choices: list[dict[str, Any]] = []
    names: set[str] = set()
    for c in raw:
        choice = {}
        for k, v in c.items():
            name = field_name(k, f"params.{key}")
            choice[name] = _choice(v, types[name], f"{what}.{k}")
            names.add(name)
        choices.append(choice)
    for name in sorted(names):
        claim(name, label, what)
    enc = [encode_bundle(c) for c in choices]
    if len(set(enc)) != len(enc):
        raise UserError(f"{what}: choices repeat a value")
    for c, e in zip(choices, enc):
        _check_with_train_validate(fixed, "", c, f"{what} = {e!r}")
    return Param(label, "bundle", choices=choices, bundle=True)


def load_space(path: str | Path) -> SearchSpace:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the search space ({exc.strerror or exc.__class__.__name__})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            raise UserError(f"{path}: not valid YAML ({getattr(exc, 'problem', None) or exc.__class__.__name__}{where})") from None
    return parse_space(data, str(path))
