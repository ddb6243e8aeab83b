"""Reading a search space file: every key checked before any storage is opened, each value as dsqn-train would see
it (the format is documented in ``space.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsqn.errors import UserError

from .space import (
    DEPLOY_DEFAULTS,
    PARAM_KEYS,
    PRUNER_DEFAULTS,
    RESERVED,
    SAMPLERS,
    TOP_KEYS,
    Param,
    SearchSpace,
    as_choice,
    as_number,
    encode_bundle,
    encode_choice,
    train_fields,
)


def _norm_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise UserError(f"{where}: key {key!r} is not a name")
    return key.lstrip("-").replace("-", "_")




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
        fixed[name] = as_choice(val, types[name], f"{source}: fixed.{key}")
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
        target = as_number(target, "float", f"{source}: target")
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
    choices = [as_choice(c, typ, what) for c in raw]
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
    low = as_number(spec["low"], typ, f"{what}.low")
    high = as_number(spec["high"], typ, f"{what}.high")
    if not low < high:
        raise UserError(f"{what}: empty or inverted range (low {low} must be below high {high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{what}.log: {log!r} is not true or false")
    if log and low <= 0:
        raise UserError(f"{what}: a log range must be positive (low {low})")
    step = spec.get("step")
    if step is not None:
        step = as_number(step, typ, f"{what}.step")
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
            choice[name] = as_choice(v, types[name], f"{what}.{k}")
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
