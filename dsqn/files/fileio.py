"""Files in and out of the console scripts: atomic writes (a temporary file in the same folder, renamed into
place, never half a file), and the checks every script makes on its paths before it does any work."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dsqn.errors import UserError

TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def temp_path(path: Path) -> Path:
    """The temporary file an atomic write of ``path`` goes through: ``.<name>.tmp<pid>`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_error(path: Path, exc: OSError) -> UserError:
    """The one-line error of a failed write (a full disk, a folder gone read-only)."""
    return UserError(f"{path}: cannot write ({exc.strerror or exc.__class__.__name__})")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` through a temporary file beside ``path`` (flushed to disk) and rename it into place. A failed
    write (ENOSPC, EIO, ...) leaves neither the temporary file nor a partial ``path``: one-line UserError."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers (a pid reused after a killed run) are stale too
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's live process, or not a pid at all: leave the file alone
    return True


def remove_stale_temp_files(folder: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Delete the ``.<name>.tmp<pid>`` files of atomic writes whose process no longer runs (a killed run
    leaves them behind); a live process's file is left alone. ``names``: only the temporary files of these
    file names (None: every such file, for folders only we write). Returns what was removed."""
    only = None if names is None else set(names)
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = TEMP_RE.match(p.name)
        if m is None or (only is not None and m["name"] not in only) or not p.is_file() or p.is_symlink() or _pid_alive(int(m["pid"])):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same resolved real path (symlinks, '..', other spellings) or,
    for files that exist, the same inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_input_file(path: str | Path) -> Path:
    """An input must be a readable regular file; a folder is named as one (not 'no such file')."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p}: is a directory, not a file")
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if not p.is_file():
        raise UserError(f"{p}: not a regular file")
    if not os.access(p, os.R_OK):
        raise UserError(f"{p}: permission denied (not readable)")
    return p


def _check_writable_folder(folder: Path) -> None:
    if not folder.exists():
        raise UserError(f"{folder}: output folder does not exist")
    if not folder.is_dir():
        raise UserError(f"{folder}: is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{folder}: output folder is not writable")


def check_output_file(path: str | Path, inputs: Iterable[str | Path] = (), what: str = "output") -> Path:
    """Before any work: an output file must not be one of the inputs (compared as real paths and inodes), must
    not be a folder, and its folder must exist and be writable. One-line UserError otherwise."""
    p = Path(path)
    for src in inputs:
        if same_file(p, src):
            raise UserError(f"{p}: the {what} would overwrite the input {src}")
    if p.is_dir():
        raise UserError(f"{p}: is a directory (the {what} must be a file path)")
    _check_writable_folder(p.parent)
    return p


def check_distinct_outputs(outputs: dict[str, str | Path]) -> None:
    """Two outputs of one run must not be the same file (one would silently replace the other)."""
    items = list(outputs.items())
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1:]:
            if same_file(a, b):
                raise UserError(f"{b}: {name_a} and {name_b} name the same file")


def check_output_dir(path: str | Path) -> Path:
    """A run folder: an existing writable folder, or one that can be created (its nearest existing ancestor is a
    writable folder). Nothing is created here."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{p}: exists and is not a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise UserError(f"{p}: output folder is not writable")
        return p
    anc = p.absolute().parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{anc}: is not a folder (cannot create {p} in it)")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"{anc}: folder is not writable (cannot create {p} in it)")
    return p


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """A JSON file's value; a missing, unreadable or malformed file is a one-line UserError naming ``what``."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{p}: not a valid {what} (not a JSON file)") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror or exc.__class__.__name__})") from None


def make_dir(path: str | Path, what: str = "folder") -> Path:
    """Create a folder (and its parents) if missing; a failure is a one-line UserError naming ``what``."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{p}: cannot create the {what} ({exc.strerror or exc.__class__.__name__})") from None
    return p
