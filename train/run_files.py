"""What a run keeps on disk besides the network: its folder (never silently reused), the resumable state, the Atari
frame store beside model.pt, metrics.csv kept in step with the checkpoint, and the optional W&B mirror."""

from __future__ import annotations

import csv
import dataclasses
import json
import secrets
import shutil
import time
from pathlib import Path

from dsqn.envs import make_env
from dsqn.errors import UserError
from dsqn.files.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from dsqn.files.fileio import atomic_write_text, check_output_dir

from .config import FIELD_DEFAULTS, TrainConfig, migrate, validate
from .replay import FrameReplay, ReplayBuffer

RESUME_OVERRIDES = ("resume", "total_timesteps", "out", "device", "progress")


def resume_config(cfg: TrainConfig, explicit: set[str] | None = None) -> tuple[TrainConfig, dict]:
    """The config and the checkpoint of a run to continue. The saved config is kept; ``--total-timesteps`` (default: the
    saved budget), ``--out`` (default: the checkpoint's folder), ``--device`` and ``--[no-]progress`` may change.
    ``explicit`` holds the options given on the command line (None: those of RESUME_OVERRIDES that differ from
    their defaults). Other options given with a value other than the saved one are refused in one line."""
    path = Path(cfg.resume)
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path)
    try:
        saved_kw = json.loads(ckpt["config_json"])
    except ValueError:
        raise UserError(f"{path}: its config is not valid JSON; cannot resume") from None
    if not isinstance(saved_kw, dict):
        raise UserError(f"{path}: its config is not a JSON object; cannot resume")
    saved = TrainConfig(**{**FIELD_DEFAULTS, **migrate(saved_kw, f"{path}: cannot resume")})
    if not saved.algo:  # written before --algo existed: every such run was DQN
        saved = dataclasses.replace(saved, algo="dqn")
    if explicit is None:
        explicit = {k for k in RESUME_OVERRIDES if getattr(cfg, k) != FIELD_DEFAULTS[k]}
    else:
        changed = sorted(k for k in set(explicit) - set(RESUME_OVERRIDES) if k in FIELD_DEFAULTS and getattr(cfg, k) != getattr(saved, k))
        if changed:
            raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in changed)}: a resumed run keeps its saved config; "
                            "only --total-timesteps, --out, --device and --[no-]progress can change")
    merged = dataclasses.replace(
        saved, resume=str(path),
        total_timesteps=cfg.total_timesteps if "total_timesteps" in explicit else saved.total_timesteps,
        out=cfg.out if "out" in explicit and cfg.out else str(path.parent),  # never the saved out: relative to another cwd
        device=cfg.device if "device" in explicit else saved.device,
        progress=cfg.progress if "progress" in explicit else saved.progress,
    )
    try:
        validate(merged)
    except UserError as exc:
        if str(exc).startswith(tuple("--" + k.replace("_", "-") + " " for k in explicit)):
            raise  # an option given now
        raise UserError(f"{path}: cannot resume: its config: {exc}") from None
    if merged.total_timesteps < ckpt["step"]:
        raise UserError(f"--total-timesteps {merged.total_timesteps}: {path} is already at step {ckpt['step']}")
    return merged, ckpt


def save_frame_replay(rb: FrameReplay, run_dir: Path, step: int, cfg: TrainConfig) -> dict:
    """Write the Atari frame store beside model.pt; returns what model.pt records of it (file, token, env, preset)."""
    token = secrets.token_hex(8)  # a new file each time: the one model.pt names is never overwritten
    rec = {"file": f"replay-{step}-{token}.npz", "token": token, "env_id": cfg.env_id, "preset": cfg.preset,
           "transitions": len(rb)}
    rb.save(run_dir / rec["file"], {k: rec[k] for k in ("token", "env_id", "preset")} | {"step": step})
    return rec


def load_frame_replay(rb: FrameReplay, ckpt: Path, rec: dict, cfg: TrainConfig) -> None:
    """Refill the frame store from the file model.pt names; one-line UserError if it is missing or not that file."""
    name = rec.get("file") if isinstance(rec, dict) else None
    if not isinstance(name, str) or "/" in name or not name.startswith("replay-"):
        raise UserError(f"{ckpt}: cannot resume: the checkpoint names no replay file (written before the frame store "
                        "was checkpointed?)")
    if rec.get("env_id") != cfg.env_id or rec.get("preset") != cfg.preset:
        raise UserError(f"{ckpt}: cannot resume: its replay was recorded for {rec.get('env_id')} / preset "
                        f"{rec.get('preset')!r}, the checkpoint's run is {cfg.env_id} / {cfg.preset!r}")
    path = ckpt.parent / name
    if not path.is_file():
        raise UserError(f"{ckpt}: cannot resume: its replay memory {path} is missing")
    try:
        rb.load(path, {"token": rec.get("token"), "env_id": cfg.env_id, "preset": cfg.preset})
    except (ValueError, OSError, KeyError, EOFError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"{ckpt}: cannot resume: its replay memory does not match: {msg}") from None


def check_extras(cfg: TrainConfig) -> None:
    """The optional packages an option needs, checked before anything is written (one line naming the install)."""
    import importlib.util

    from dsqn.extras import require

    if cfg.track and importlib.util.find_spec("wandb") is None:
        raise UserError("--track needs Weights & Biases: pip install wandb")
    if cfg.capture_video:
        require("--capture-video", "video", "moviepy")
        try:  # a frame now, not after hours of training (pygame for classic control, a GL context for MuJoCo)
            env = make_env(cfg.env_id, render_mode="rgb_array")
            try:
                env.reset(seed=cfg.seed)
                env.render()
            finally:
                env.close()
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - rendering back ends fail in many ways
            raise UserError(f"--capture-video: {cfg.env_id} cannot render frames here: {' '.join(str(exc).split())[:200]}") from None


def start_tracking(cfg: TrainConfig, run_dir: Path):  # type: ignore[no-untyped-def]
    """--track: a Weights & Biases run that mirrors the TensorBoard files (as CleanRL's ``--track``); None otherwise."""
    if not cfg.track:
        return None
    import wandb

    return wandb.init(project=cfg.wandb_project_name, entity=cfg.wandb_entity or None, sync_tensorboard=True,
                      config=dataclasses.asdict(cfg), name=run_dir.name, dir=str(run_dir), save_code=False)


def truncate_metrics(path: Path, step: int) -> None:
    """Keep metrics.csv's rows up to ``step`` (the checkpoint a run resumes from): the steps after it run again."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [r for i, r in enumerate(rows) if i == 0 or (r and r[0].isdigit() and int(r[0]) <= step)]
    if len(keep) != len(rows):
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        atomic_write_text(path, buf.getvalue())


def prepare_run_dir(cfg: TrainConfig, overwrite: bool) -> Path:
    """The run folder, checked before anything is written: a non-empty folder is another run's (or a resumed run's
    own), never silently reused. ``overwrite`` moves it aside to ``<out>.old-<time>`` (one rename, nothing deleted)."""
    run_dir = Path(cfg.out)
    check_output_dir(run_dir)
    own = cfg.resume and Path(cfg.resume).parent.absolute() == run_dir.absolute()
    if run_dir.is_dir() and any(run_dir.iterdir()) and not own:
        if not overwrite:
            raise UserError(f"{run_dir}: the run folder exists and is not empty; continue that run with --resume "
                            f"{run_dir / 'model.pt'}, move it aside with --overwrite, or choose another --out")
        aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            aside, n = aside.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
        try:
            run_dir.rename(aside)
        except OSError as exc:
            raise UserError(f"{run_dir}: cannot move it aside to {aside} ({exc.strerror or exc.__class__.__name__})") from None
        print(f"dsqn-train: moved the existing {run_dir} to {aside} (--overwrite)", flush=True)
    return run_dir


def write_checkpoint(ckpt_path: Path, state: dict, rb: ReplayBuffer | FrameReplay, step: int, cfg: TrainConfig) -> None:
    """model.pt, atomically, with the replay memory (``state["replay"]`` is filled here). save_checkpoint removes its
    temporary file on failure: a full disk leaves the previous checkpoint as it was. The Atari frame store goes to its
    own file first (replay-<step>-<token>.npz); model.pt names it; the older one goes last, and a new one that model.pt
    never came to name is removed again."""
    run_dir = ckpt_path.parent
    frames = not isinstance(rb, ReplayBuffer)
    before = ckpt_path.stat().st_ino if ckpt_path.exists() else None
    try:
        replay = save_frame_replay(rb, run_dir, step, cfg) if frames else rb.state()
        try:
            save_checkpoint(ckpt_path, {**state, "replay": replay})
        except BaseException:
            # only if model.pt was not replaced: a signal just after the rename must not take its replay away
            if frames and (ckpt_path.stat().st_ino if ckpt_path.exists() else None) == before:
                (run_dir / replay["file"]).unlink(missing_ok=True)
            raise
        if frames:
            for old in run_dir.glob("replay-*.npz"):
                if old.name != replay["file"]:
                    old.unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"{ckpt_path}: cannot write the checkpoint ({exc.strerror or exc.__class__.__name__})") from None
    except RuntimeError as exc:  # torch's zip writer reports a failed write as a RuntimeError
        if not any(w in str(exc) for w in ("write", "unexpected pos", "iostream")):
            raise
        why = "No space left on device" if shutil.disk_usage(run_dir).free < (1 << 20) else " ".join(str(exc).split())[:120]
        raise UserError(f"{ckpt_path}: cannot write the checkpoint ({why})") from None
