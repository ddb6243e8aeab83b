"""dsqn-deploy console script: run an exported policy closed-loop and report its energy per inference."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from dsqn import __version__
from dsqn.envs import score_summary
from dsqn.errors import ArgumentParser, UserError, cli_entry, stop_on_signals
from dsqn.fileio import atomic_write_text, check_distinct_outputs, check_input_file, check_output_file

REPORT_FORMAT = "dsqn-report"
REPORT_VERSION = 1


@cli_entry("dsqn-deploy")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="dsqn-deploy", description="Run an exported spiking Q-network closed-loop and count its activity.")
    parser.add_argument("model", help="model.net written by dsqn-export")
    parser.add_argument("--backend", choices=("sim", "emu", "loihi2"), default="sim",
                        help="sim: Lava CPU simulator (fixed_pt); emu: bit-exact hw_sim emulator; loihi2: Loihi 2 via lava-loihi")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to run (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: 0)")
    parser.add_argument("--epsilon", type=float, default=0.0,
                        help="epsilon-greedy evaluation of a Q-network (the DSQN paper's Atari protocol: 0.05), drawn per "
                             "episode from its seed exactly as dsqn-train evaluates (default: 0, greedy)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on steps per episode, 0 = none (the Lava simulator is slow)")
    parser.add_argument("--env", default="", help="environment id (default: the one stored in the file)")
    parser.add_argument("--profile", default="loihi1-davies2018", help="energy profile name or JSON file (default: loihi1-davies2018)")
    parser.add_argument("--report", default="", help="report JSON path (default: <model>.<backend>.report.json)")
    parser.add_argument("--html", default="", help="also write the report as a self-contained HTML page with plots")
    parser.add_argument("--compare", default="", metavar="MODEL_PT",
                        help="the checkpoint the file was exported from: at every step its trained model acts on the same "
                             "input too, and the report counts the steps where the deployed network chose the same action "
                             "(before any epsilon-greedy replacement); a checkpoint the file was not exported from is refused")
    args = parser.parse_args(argv)
    with stop_on_signals():  # Ctrl-C and SIGTERM stop the backend (policy.close below) and exit 130 / 143
        return _run(args)


def _comparison(checkpoint: Path, meta: dict):  # type: ignore[no-untyped-def]
    from dsqn.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint

    from .closed_loop import ActionComparison

    sha = file_sha256(checkpoint)
    if sha != meta.get("source_checkpoint_sha256"):
        raise UserError(f"--compare {checkpoint}: the file was not exported from this checkpoint (source checkpoint "
                        "SHA-256 differs)")
    model, _, _, _ = model_from_checkpoint(load_checkpoint(checkpoint), checkpoint)
    return ActionComparison(model, checkpoint, sha)


def _run(args) -> int:  # type: ignore[no-untyped-def]
    if args.episodes <= 0:
        raise UserError(f"--episodes must be positive, got {args.episodes}")
    if args.max_steps < 0:
        raise UserError(f"--max-steps {args.max_steps}: must not be negative (0 = no cap)")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: must not be negative")
    if not 0.0 <= args.epsilon <= 1.0:  # also NaN
        raise UserError(f"--epsilon {args.epsilon}: must lie in [0, 1]")

    # Every path is checked before any work: inputs are files, outputs are writable and none of them an input.
    path = check_input_file(args.model)
    inputs: list[Path] = [path]
    if args.profile and Path(args.profile).exists():  # a profile file (built-in profiles are names)
        inputs.append(check_input_file(args.profile))
    if args.compare:
        inputs.append(check_input_file(args.compare))
    report_path = Path(args.report) if args.report else path.with_name(f"{path.stem}.{args.backend}.report.json")
    check_output_file(report_path, inputs, "report")
    outputs = {"--report": report_path}
    if args.html:
        outputs["--html"] = check_output_file(Path(args.html), inputs, "HTML page")
    check_distinct_outputs(outputs)

    from dsqn.checkpoint import file_sha256
    from dsqn.hw_sim.counters import ann_macs
    from dsqn.hw_sim.energy import energy_report, format_energy, load_profile
    from dsqn.netfile import read_netfile

    from .closed_loop import check_environment, make_policy, run_episodes

    try:
        net = read_netfile(path, crash_safe=True)  # a damaged file from the user may crash libhdf5 itself
    except UserError:
        from dsqn.export.nir_export import is_nir_file

        if is_nir_file(path):  # the forked read above did not crash on it: safe to open here
            raise UserError(f"{path} is a NIR graph, not a NetX file: run it with a NIR tool (snnTorch: "
                            "snntorch.import_from_nir, Norse: norse.torch.from_nir; python -m dsqn.export.nir_check "
                            "checks it against its checkpoint); dsqn-deploy runs NetX files from dsqn-export "
                            "--format netx") from None
        raise
    meta = net.meta
    profile = load_profile(args.profile)
    env_id = args.env or meta["env_id"]

    check_environment(net, env_id)
    if args.epsilon > 0 and net.readout.kind != "q":
        raise UserError(f"--epsilon {args.epsilon}: epsilon-greedy evaluates Q-networks; {path} is an actor "
                        "(continuous actions)")
    compare = _comparison(Path(args.compare), meta) if args.compare else None
    policy = make_policy(net, args.backend)
    print(f"running {args.episodes} episode(s) of {env_id} on backend {args.backend} (Ctrl-C stops cleanly)", flush=True)
    try:
        log = run_episodes(policy, env_id, args.episodes, args.seed, args.max_steps, epsilon=args.epsilon,
                           on_step=compare)
    finally:
        policy.close()
    names = [f"L{i}-{layer.kind}" for i, layer in enumerate(net.layers)]
    names[-1] = f"L{len(names) - 1}-readout"
    counter = policy.counter
    energy = energy_report(counter.totals, profile, ann_macs(net.layers), names,
                           [x.tolist() for x in counter.spikes_per_step], [layer.n_neurons for layer in net.layers],
                           layers=net.layers, timesteps=net.timesteps)
    steps = int(sum(log.lengths))
    report = {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION, "toolchain_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(path), "sha256": file_sha256(path), "source_checkpoint_sha256": meta.get("source_checkpoint_sha256")},
        "backend": args.backend, "env_id": env_id, "timesteps": net.timesteps,
        "episodes": {"returns": log.returns, "lengths": log.lengths, "mean_return": float(np.mean(log.returns)),
                     "std_return": float(np.std(log.returns)), "seed": args.seed, "max_steps": args.max_steps,
                     "epsilon": args.epsilon, "score": score_summary(env_id, log.returns)},
        "timing": {"seconds": log.seconds, "env_steps_per_s": steps / max(1e-9, log.seconds)},
        "overflow_events": policy.overflow,
        "energy": energy,
        "train_final_eval": meta.get("train_final_eval", {}),
        "raster": {"inference": 0, "max_neurons": counter.RASTER_NEURONS, "layers": counter.raster or []},
    }
    if compare is not None:
        report["fidelity"] = compare.summary()
    atomic_write_text(report_path, json.dumps(report, indent=2))
    if args.html:
        from dsqn.hw_sim.report_html import write_html

        write_html(report, Path(args.html))
        print(f"wrote {args.html}")
    print(f"{env_id} on backend {args.backend}: returns {[round(r, 1) for r in log.returns]} "
          f"(mean {report['episodes']['mean_return']:.1f}; {steps} steps, {report['timing']['env_steps_per_s']:.1f} steps/s)")
    if compare is not None:
        f = report["fidelity"]
        print(f"the trained model ({args.compare}) chose the same action on {f['same_action']}/{f['steps']} steps")
    print(format_energy(energy))
    print(f"wrote {report_path}")
    return 0
