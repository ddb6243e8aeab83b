"""dsqn-train console script. Every TrainConfig field is an option; its default is what runs for the chosen
environment (``hyperparams/*.yml`` resolved before parsing), so ``--help`` documents the run and ``--print-config``
prints it. Given options always win; ``--config FILE`` (a run's config.json, or YAML) loads options from a file."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
from functools import cache
from typing import Any

from dsqn.errors import ArgumentParser, UserError, cli_entry

from .config import (
    ATARI_PRESETS,
    FIELD_DEFAULTS,
    TrainConfig,
    config_json,
    env_defaults,
    make_config,
    read_config_file,
)
from .validation import ENCODINGS

# The names CleanRL and SB3 users type: the first is the canonical flag.
FLAGS = {"total_timesteps": ("--total-timesteps", "--total-steps"), "snn_steps": ("--snn-steps", "--T")}
CHOICES: dict[str, tuple[str, ...]] = {
    "algo": ("dqn", "td3"), "preset": ATARI_PRESETS, "encoding": ENCODINGS, "arch": ("mlp", "nature"),
    "qnet": ("snn", "ann"), "actor": ("snn", "ann"), "device": ("auto", "cpu", "cuda"), "q_init": ("zero", "reward"),
}
LISTS = {"hidden": int, "critic_hidden": int, "obs_scale": float, "rate_target": float}
DESCRIPTION = ("Train a spiking policy (SLAYER-compatible CUBA-LIF, exact Loihi arithmetic): a deep spiking Q-network with "
               "DQN / Double DQN, or a spiking actor with TD3. Defaults shown are the chosen environment's "
               "(train/hyperparams/*.yml): give --env-id (and --algo, --preset) before --help to see them.")


@cache
def field_docs() -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) for --help."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(getattr(b, "value", None), ast.Constant):
            docs[a.target.id] = " ".join(str(b.value.value).split())  # type: ignore[union-attr]
    return docs


class _Ambiguous(argparse.Action):
    """--timesteps: CleanRL's users mean the training budget, SLAYER's the network's T; name both, take neither."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        raise UserError(f"{option_string}: ambiguous; the training budget is --total-timesteps, the spiking network's "
                        "steps per inference (T) --snn-steps")


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else repr(value) if value == "" else str(value)


def build_parser(defaults: dict[str, Any], suppress: bool = False) -> ArgumentParser:
    """The parser with ``defaults`` as every option's default; ``suppress``: no defaults at all (to see which
    options were given)."""
    parser = ArgumentParser(prog="dsqn-train", description=DESCRIPTION, allow_abbrev=False,
                            argument_default=argparse.SUPPRESS if suppress else None)
    docs = field_docs()
    for f in dataclasses.fields(TrainConfig):
        flags = FLAGS.get(f.name, ("--" + f.name.replace("_", "-"),))
        kw: dict[str, Any] = {"dest": f.name, "help": docs.get(f.name, "")}
        if not suppress:
            kw["default"] = defaults[f.name]
        if str(f.type) == "bool":
            action = parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
        else:
            typ = LISTS.get(f.name) or {"int": int, "float": float, "str": str}[str(f.type)]
            action = parser.add_argument(*flags, type=typ, nargs="+" if f.name in LISTS else None,
                                         choices=CHOICES.get(f.name), **kw)
        if not suppress and "%(default)" not in (action.help or ""):  # BooleanOptionalAction adds its own
            action.help = f"{action.help} (default: {_shown(defaults[f.name])})".replace("%", "%%")
    parser.add_argument("--timesteps", nargs="?", action=_Ambiguous, help=argparse.SUPPRESS)
    run = parser.add_argument_group("run control (not saved in config.json)")
    run.add_argument("--config", metavar="FILE", help="read options from FILE (a run's config.json, or YAML with any "
                     "subset of the options); options given on the command line win")
    run.add_argument("--print-config", action="store_true", help="print the resolved config (config.json's text) and exit")
    run.add_argument("--overwrite", action="store_true", help="train into a non-empty --out folder after moving it "
                     "aside to <out>.old-<time> (nothing is deleted)")
    return parser


def _pre_parse(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in ("env_id", "algo", "preset", "config", "resume"):
        pre.add_argument("--" + name.replace("_", "-"), dest=name, default=None)
    known, _ = pre.parse_known_args(argv)
    return known


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, set[str], argparse.Namespace]:
    """(config that runs, the option names given, the run-control options)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = _pre_parse(argv)
    from_file = read_config_file(pre.config) if pre.config else {}
    if pre.resume:  # a resumed run takes its saved config (runner.resume_config); only what is given may change it
        defaults = dict(FIELD_DEFAULTS)
    else:
        env_id = pre.env_id or from_file.get("env_id") or FIELD_DEFAULTS["env_id"]
        algo = pre.algo or from_file.get("algo", "")
        preset = pre.preset if pre.preset is not None else from_file.get("preset", "")
        defaults = {**FIELD_DEFAULTS, **env_defaults(env_id, algo, preset), **from_file}
    ns = build_parser(defaults).parse_args(argv)
    explicit = set(vars(build_parser({}, suppress=True).parse_args(argv))) & set(FIELD_DEFAULTS)
    explicit |= set(from_file)
    options = {k: v for k, v in vars(ns).items() if k in FIELD_DEFAULTS}
    control = argparse.Namespace(**{k: v for k, v in vars(ns).items() if k not in FIELD_DEFAULTS})
    if pre.resume:
        return TrainConfig(**options), explicit, control
    return make_config(**options), explicit, control


@cli_entry("dsqn-train")
def main(argv: list[str] | None = None) -> int:
    cfg, explicit, control = parse_args(argv)
    if control.print_config:
        if cfg.resume:
            raise UserError("--print-config: a resumed run's config is its checkpoint's (see its config.json)")
        sys.stdout.write(config_json(cfg))
        return 0
    from .runner import train  # heavy imports (torch, numba) only after the arguments parsed

    train(cfg, explicit, overwrite=control.overwrite)
    return 0
