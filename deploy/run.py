"""One deployment: an exported network closed-loop on a backend, its activity counted and priced. ``dsqn-deploy``
and ``dsqn.deploy(...)`` both call :func:`deploy`; the report dict it returns is what the CLI prints and writes."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsqn.envs import FINAL_EVAL_SEED
from dsqn.errors import UserError, stop_on_signals
from dsqn.files.fileio import atomic_write_text, check_distinct_outputs, check_input_file, check_output_file
from dsqn.stats import score_summary, truncated_episodes
from dsqn.version import __version__

REPORT_FORMAT = "dsqn-report"
REPORT_VERSION = 1
BACKENDS = ("sim", "emu", "loihi2")
DEFAULT_PROFILE = "loihi1-davies2018"


@dataclass(frozen=True)
class DeployOptions:
    """What ``dsqn-deploy`` takes (its --help says each); ``report`` '' = <model>.<backend>.report.json."""

    model: str
    backend: str = "emu"
    episodes: int = 3
    seed: int = FINAL_EVAL_SEED
    epsilon: float = 0.0
    max_steps: int = 0
    env_id: str = ""
    profile: str = DEFAULT_PROFILE
    report: str = ""
    html: str = ""
    compare: str = ""
    progress: bool = True


def check_options(opt: DeployOptions) -> tuple[Path, Path, list[Path]]:
    """Every option and path checked before any work: (model, report path, inputs)."""
    if opt.backend not in BACKENDS:
        raise UserError(f"--backend {opt.backend!r}: expected one of {', '.join(BACKENDS)}")
    if opt.episodes <= 0:
        raise UserError(f"--episodes {opt.episodes}: must be positive")
    if opt.max_steps < 0:
        raise UserError(f"--max-steps {opt.max_steps}: must not be negative (0 = no cap)")
    if opt.seed < 0:
        raise UserError(f"--seed {opt.seed}: must not be negative")
    if not 0.0 <= opt.epsilon <= 1.0:  # also NaN
        raise UserError(f"--epsilon {opt.epsilon}: must lie in [0, 1]")
    path = check_input_file(opt.model)
    inputs: list[Path] = [path]
    if opt.profile and Path(opt.profile).exists():  # a profile file (built-in profiles are names)
        inputs.append(check_input_file(opt.profile))
    if opt.compare:
        inputs.append(check_input_file(opt.compare))
    report_path = Path(opt.report) if opt.report else path.with_name(f"{path.stem}.{opt.backend}.report.json")
    check_output_file(report_path, inputs, "report")
    outputs = {"--report": report_path}
    if opt.html:
        outputs["--html"] = check_output_file(Path(opt.html), inputs, "HTML page")
    check_distinct_outputs(outputs)
    return path, report_path, inputs


def read_deployable(path: Path):  # type: ignore[no-untyped-def]
    """The NetX file, read in a forked process first (a damaged file from a stranger may crash libhdf5 itself)."""
    from dsqn.files.netfile_read import read_netfile

    try:
        return read_netfile(path, crash_safe=True)
    except UserError:
        from dsqn.export.nir_export import is_nir_file

        if is_nir_file(path):  # the forked read above did not crash on it: safe to open here
            raise UserError(f"{path} is a NIR graph, not a NetX file: run it with a NIR tool (snnTorch: "
                            "snntorch.import_from_nir, Norse: norse.torch.from_nir; python -m dsqn.export.nir_check "
                            "checks it against its checkpoint); dsqn-deploy runs NetX files from dsqn-export "
                            "--format netx") from None
        raise


def comparison(checkpoint: Path, meta: dict):  # type: ignore[no-untyped-def]
    """--compare: the trained model of the checkpoint this file was exported from (refused for any other)."""
    from dsqn.files.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint

    from .closed_loop import ActionComparison

    sha = file_sha256(checkpoint)
    if sha != meta.get("source_checkpoint_sha256"):
        raise UserError(f"--compare {checkpoint}: the file was not exported from this checkpoint (source checkpoint "
                        "SHA-256 differs)")
    model, _, _, _ = model_from_checkpoint(load_checkpoint(checkpoint), checkpoint)
    return ActionComparison(model, checkpoint, sha)


def deploy(opt: DeployOptions, log_line=print) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Run the episodes, write the report JSON (and HTML), return the report. Ctrl-C and SIGTERM stop the backend."""
    path, report_path, _ = check_options(opt)
    from dsqn.files.checkpoint import file_sha256
    from dsqn.hw_sim.counters import ann_macs
    from dsqn.report.energy import energy_report
    from dsqn.report.profiles import load_profile

    from .closed_loop import check_environment, make_policy, run_episodes

    net = read_deployable(path)
    meta = net.meta
    profile = load_profile(opt.profile)
    env_id = opt.env_id or meta["env_id"]
    check_environment(net, env_id)
    if opt.epsilon > 0 and net.readout.kind != "q":
        raise UserError(f"--epsilon {opt.epsilon}: epsilon-greedy evaluates Q-networks; {path} is an actor "
                        "(continuous actions)")
    compare = comparison(Path(opt.compare), meta) if opt.compare else None
    with stop_on_signals():
        policy = make_policy(net, opt.backend)
        log_line(f"dsqn-deploy: {opt.episodes} episode(s) of {env_id} on backend {opt.backend}, seeds {opt.seed}.. "
                 "(Ctrl-C stops cleanly)")
        from dsqn.progress import progress

        bar = progress(opt.episodes, desc=f"{env_id} on {opt.backend}", unit="episode", enabled=opt.progress,
                       final=False)  # the summary follows
        try:
            def on_episode(ep: int, ret: float, length: int) -> None:
                bar.update(1)
                bar.set_postfix(ret=f"{ret:.1f}", steps=length)

            log = run_episodes(policy, env_id, opt.episodes, opt.seed, opt.max_steps, epsilon=opt.epsilon,
                               on_step=compare, on_episode=on_episode)
        finally:
            bar.close()
            policy.close()
    names = [f"L{i}-{layer.kind}" for i, layer in enumerate(net.layers)]
    names[-1] = f"L{len(names) - 1}-readout"
    counter = policy.counter
    energy = energy_report(counter.totals, profile, ann_macs(net.layers), names,
                           [x.tolist() for x in counter.spikes_per_step], [layer.n_neurons for layer in net.layers],
                           layers=net.layers, timesteps=net.timesteps)
    steps = int(sum(log.lengths))
    cut = truncated_episodes(env_id, log.capped, opt.max_steps)
    report = {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION, "toolchain_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(path), "sha256": file_sha256(path), "source_checkpoint_sha256": meta.get("source_checkpoint_sha256")},
        "backend": opt.backend, "env_id": env_id, "timesteps": net.timesteps,
        "episodes": {"returns": log.returns, "lengths": log.lengths, "mean_return": float(np.mean(log.returns)),
                     "std_return": float(np.std(log.returns)), "seed": opt.seed, "max_steps": opt.max_steps,
                     "epsilon": opt.epsilon, "score": score_summary(env_id, log.returns, cut)},
        "timing": {"seconds": log.seconds, "env_steps_per_s": steps / max(1e-9, log.seconds)},
        "overflow_events": policy.overflow,
        "energy": energy,
        "train_final_eval": meta.get("train_final_eval", {}),
        "raster": {"inference": 0, "max_neurons": counter.RASTER_NEURONS, "layers": counter.raster or []},
    }
    if compare is not None:
        report["fidelity"] = compare.summary()
    atomic_write_text(report_path, json.dumps(report, indent=2))
    report["report_path"] = str(report_path)  # where it went; not a number of the run, so not written into it
    if opt.html:
        from dsqn.report.html import write_html

        write_html({k: v for k, v in report.items() if k != "report_path"}, Path(opt.html))
    return report


def summary_lines(report: dict[str, Any], opt: DeployOptions) -> list[str]:
    """What dsqn-deploy prints after the run (the energy table comes from report.energy.format_energy)."""
    from dsqn.report.energy import format_energy

    ep = report["episodes"]
    steps = int(sum(ep["lengths"]))
    cut = ep["score"].get("truncated", 0)
    shown = f"; truncated: {cut} of {len(ep['returns'])} episodes cut at --max-steps {opt.max_steps}, not a score" if cut else ""
    lines = []
    if opt.html:
        lines.append(f"wrote {opt.html}")
    lines.append(f"{report['env_id']} on backend {report['backend']}: returns {[round(r, 1) for r in ep['returns']]} "
                 f"(mean {ep['mean_return']:.1f}; {steps} steps, {report['timing']['env_steps_per_s']:.1f} steps/s{shown})")
    if "fidelity" in report:
        f = report["fidelity"]
        lines.append(f"the trained model ({opt.compare}) chose the same action on {f['same_action']}/{f['steps']} steps")
    lines.append(format_energy(report["energy"]))
    lines.append(f"wrote {report['report_path']}")
    return lines
