"""A study's trial folders as a report names them: found again after the study folder moved, named relative to the
study folder, and their small files copied beside the report (dsqn-sweep report --copy-trials)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dsqn.files.fileio import atomic_write_text


def locate_trial_dir(stored: str | None, study_dir: Path) -> Path | None:
    """Where a trial's folder is now: as stored (absolute, where its worker wrote it; or relative to the study folder,
    as report.json keeps it), else -- the study folder was moved -- its ``trial_NNNN`` folder in the study folder."""
    if not stored:
        return None
    path = Path(stored)
    if not path.is_absolute():
        return study_dir / path
    if path.exists():
        return path
    moved = study_dir / path.name
    return moved if moved.is_dir() else path


def study_relative(path: Path | None, study_dir: Path) -> str | None:
    """``path`` relative to the study folder (POSIX separators) where it lies inside it; a folder elsewhere (another
    worker's --out, another machine) stays absolute: no relative path would survive moving the study anyway."""
    if path is None:
        return None
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(study_dir)).as_posix()
    except ValueError:
        return str(path)


TRIAL_FILES = ("model.net", "report.emu.json", "config.json", "metrics.csv")


def copy_trials(rows: list[dict], out: Path, study_dir: Path) -> tuple[int, int, list[str]]:
    """Each completed trial's small files (model.net, emulator report, config, metrics) and its command into
    out/trial_NNNN/. A trial folder that is gone (another machine, a fresh clone) keeps what an earlier copy left
    there. ``rows``: report.json's, their folders relative to ``study_dir``. Returns (copied, already there, missing
    trial names)."""
    copied, kept, missing = 0, 0, []
    for r in rows:
        if r["state"] != "COMPLETE" or not r.get("trial_dir"):
            continue
        src = study_dir / r["trial_dir"]  # an absolute trial_dir stays itself
        dst = out / src.name
        if all((src / f).is_file() for f in TRIAL_FILES):
            dst.mkdir(parents=True, exist_ok=True)
            for f in TRIAL_FILES:
                if not (dst / f).exists() or (dst / f).read_bytes() != (src / f).read_bytes():
                    shutil.copyfile(src / f, dst / f)
            atomic_write_text(dst / "command.txt", (r.get("command") or "") + "\n")
            copied += 1
        elif all((dst / f).is_file() for f in TRIAL_FILES):
            kept += 1
        else:
            missing.append(src.name)
    return copied, kept, missing
