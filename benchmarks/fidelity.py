"""Fidelity of deployment: does the exported fixed-point network pick the trained model's action (a DSQN's argmax, or
an actor's continuous action, compared for exact equality)?

Runs greedy evaluation episodes with the deployed network driving the environment and, at every
step, also asks the trained model (from model.pt) for its action on the same observation.
Prints the agreement per backend. Lava's simulator is slow, so it gets --sim-steps steps.

    .venv/bin/python benchmarks/fidelity.py RUN/model.pt RUN/model.net [--episodes 20] [--sim-steps 300] [--max-steps N]

--max-steps caps each emulator episode (an Atari policy that survives plays tens of thousands of steps); --epsilon
runs the episodes epsilon-greedy as dsqn-train evaluates (the same seeds give the training's evaluation episodes),
comparing the network's own action at every step before epsilon-greedy replaces it.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import numpy as np

with contextlib.redirect_stdout(io.StringIO()):
    from dsqn.deploy.closed_loop import ActionComparison, make_policy, run_episodes
    from dsqn.files.checkpoint import load_checkpoint, model_from_checkpoint
    from dsqn.files.netfile_read import read_netfile


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("net")
    p.add_argument("--episodes", type=int, default=20, help="emulator episodes (0: the simulator only)")
    p.add_argument("--sim-steps", type=int, default=300, help="env steps run on the Lava simulator (0: the emulator only)")
    p.add_argument("--max-steps", type=int, default=0, help="cap on each emulator episode's steps (0: none)")
    p.add_argument("--epsilon", type=float, default=0.0,
                   help="epsilon-greedy episodes (a DSQN's evaluation protocol); the network's own action is compared")
    p.add_argument("--seed", type=int, default=20_000_000)
    args = p.parse_args()
    model, spec, encoder, _ = model_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint)
    net = read_netfile(args.net)
    for backend, episodes, max_steps in (("emu", args.episodes, args.max_steps), ("sim", 1, args.sim_steps)):
        if episodes == 0 or (backend == "sim" and max_steps == 0):
            continue
        check = ActionComparison(model, args.checkpoint)  # the trained model's action beside the network's own
        policy = make_policy(net, backend)
        try:
            log = run_episodes(policy, net.meta["env_id"], episodes, args.seed, max_steps, on_step=check,
                               epsilon=args.epsilon)
        finally:
            policy.close()
        print(f"{backend}: {episodes} episode(s), {check.steps} steps, same action as the trained model on "
              f"{check.same}/{check.steps} = {100.0 * check.same / max(1, check.steps):.2f}% of steps; "
              f"returns mean {np.mean(log.returns):.1f}")


if __name__ == "__main__":
    main()
