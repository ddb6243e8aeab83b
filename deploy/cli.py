"""dsqn-deploy console script: run an exported policy closed-loop and report its energy per inference (a thin shell
over :func:`dsqn.deploy.run.deploy`, which ``dsqn.deploy(...)`` calls too)."""

from __future__ import annotations

import argparse

from dsqn.envs import FINAL_EVAL_SEED
from dsqn.errors import ArgumentParser, cli_entry

from .run import BACKENDS, DEFAULT_PROFILE, DeployOptions, deploy, summary_lines


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="dsqn-deploy", allow_abbrev=False,
                            description="Run an exported spiking policy (model.net) closed-loop on a backend, count its "
                                        "activity per inference and price it with a named energy profile.")
    parser.add_argument("model", help="model.net written by dsqn-export")
    parser.add_argument("--backend", choices=BACKENDS, default="sim",
                        help="sim: Lava CPU simulator (fixed_pt; needs the lava extra); emu: the bit-exact hw_sim emulator "
                             "(no extra, fast); loihi2: Loihi 2 via lava-loihi (default: sim)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to run (default: 3)")
    parser.add_argument("--seed", type=int, default=FINAL_EVAL_SEED,
                        help="seed of the first episode; the default is the seed of dsqn-train's final evaluation, so "
                             f"the same episodes are played (default: {FINAL_EVAL_SEED})")
    parser.add_argument("--epsilon", type=float, default=0.0,
                        help="epsilon-greedy evaluation of a Q-network (the DSQN paper's Atari protocol: 0.05), drawn per "
                             "episode from its seed exactly as dsqn-train evaluates (default: 0, greedy)")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="cap on steps per episode, 0 = none (the Lava simulator is slow); episodes cut by it are "
                             "marked truncated and not scored (default: 0)")
    parser.add_argument("--env-id", "--env", dest="env_id", default="",
                        help="environment id (default: the one stored in the file)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"energy profile name or JSON file (default: {DEFAULT_PROFILE})")
    parser.add_argument("--report", default="", help="report JSON path (default: <model>.<backend>.report.json)")
    parser.add_argument("--html", default="", help="also write the report as a self-contained HTML page with plots")
    parser.add_argument("--compare", default="", metavar="MODEL_PT",
                        help="the checkpoint the file was exported from: at every step its trained model acts on the same "
                             "input too, and the report counts the steps where the deployed network chose the same action "
                             "(before any epsilon-greedy replacement); a checkpoint the file was not exported from is refused")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="per-episode progress: a bar on a terminal, a line every 30 s otherwise")
    return parser


@cli_entry("dsqn-deploy")
def main(argv: list[str] | None = None) -> int:
    opt = DeployOptions(**vars(build_parser().parse_args(argv)))
    report = deploy(opt, log_line=lambda line: print(line, flush=True))
    print("\n".join(summary_lines(report, opt)))
    return 0
