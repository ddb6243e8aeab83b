"""The process hygiene every Lava runtime of this toolchain gets (see dsqn.deploy.lava_backend's docstring): forked
children that ignore SIGINT and die with this process, multiprocessing's socket folder named after this process
(stale ones of dead processes removed), children killed after a bounded wait, and the runtime's shared-memory
segments made sure gone. Nothing here imports Lava."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import multiprocessing.util
import os
import shutil
import signal
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path

STOP_TIMEOUT_S = 5.0  # how long close() waits for Lava's runtime to stop before it kills the processes
STOP_S_PER_PROCESS = 0.1  # ... or this long per Lava process, if longer (a grouped graph can hold hundreds)
STOP_S_PER_SEGMENT = 0.01  # ... plus this long per shared-memory segment (the manager unlinks them one by one)
SEGMENT_WAIT_S = 3.0  # how long close() lets a still-running shared-memory manager unlink its segments itself

_PR_SET_PDEATHSIG = 1
_forking_pid = 0  # set in the parent just before a fork; the child reads its parent's pid from it
_fork_guard_installed = False
open_networks: weakref.WeakSet = weakref.WeakSet()


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _in_forked_child() -> None:
    """In every process forked (from then on) by the process that started Lava: ignore SIGINT, and die with the
    parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if _forking_pid and os.getppid() != _forking_pid:  # the parent died before PR_SET_PDEATHSIG took effect
        os._exit(1)


TEMPDIR_PREFIX = "dsqn-lava-"


def remove_stale_temp_dirs(min_age_s: float = 0.0) -> int:
    """Remove the ``dsqn-lava-<pid>-*`` socket folders (see :func:`own_temp_dir`) of processes no longer alive --
    a SIGKILLed run cannot remove its own -- left untouched for at least ``min_age_s`` seconds; how many were
    removed. Folders of live processes (also other users', which this process may not signal) stay."""
    removed = 0
    now = time.time()
    for old in Path(tempfile.gettempdir()).glob(f"{TEMPDIR_PREFIX}*"):
        pid = old.name[len(TEMPDIR_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or not old.is_dir() or old.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                if now - old.stat().st_mtime < min_age_s:
                    continue
            shutil.rmtree(old, ignore_errors=True)
            removed += not old.exists()
        except OSError:
            pass
    return removed


def own_temp_dir() -> None:
    """multiprocessing's sockets go to a folder named after this process (``dsqn-lava-<pid>-*`` instead of
    ``pymp-*``), removed at exit; a SIGKILLed run cannot remove its folder, so the next run removes those of
    processes no longer alive (here, and at the start of every deploy: dsqn.deploy.closed_loop.make_policy)."""
    cfg = multiprocessing.current_process()._config
    if cfg.get("tempdir") is not None:
        return
    remove_stale_temp_dirs()
    folder = tempfile.mkdtemp(prefix=f"{TEMPDIR_PREFIX}{os.getpid()}-")
    cfg["tempdir"] = folder
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=-100)


def guard_forks() -> None:
    """Before Lava's runtime starts its processes (see the module docstring)."""
    global _fork_guard_installed
    if not _fork_guard_installed:
        own_temp_dir()
        os.register_at_fork(before=_before_fork, after_in_child=_in_forked_child)
        atexit.register(_close_open_networks)  # runs before multiprocessing's own exit handler joins the children
        _fork_guard_installed = True


def _close_open_networks() -> None:
    for net in list(open_networks):
        with contextlib.suppress(Exception):
            net.close()
    kill_children(0.5)


def live_children() -> list[multiprocessing.process.BaseProcess]:
    """multiprocessing's live children of this process. Lava's runtime may be closing them in its stop thread
    meanwhile (a stop that outran its time bound): a child closed under our feet is skipped, not an error."""
    try:
        return multiprocessing.active_children()
    except (AttributeError, ValueError):  # a child's _popen set to None / closed between the snapshot and poll()
        children = []
        for child in list(multiprocessing.process._children):  # type: ignore[attr-defined]
            with contextlib.suppress(AttributeError, ValueError):
                if child.is_alive():
                    children.append(child)
        return children


def kill_children(grace_s: float) -> None:
    """Kill the multiprocessing children of this process still alive after ``grace_s`` seconds."""
    # BaseProcess.join, not child.join: Lava's SystemProcess overrides join() without a timeout argument
    join = multiprocessing.process.BaseProcess.join
    children = live_children()
    for child in children:
        with contextlib.suppress(AttributeError, ValueError):
            join(child, grace_s)
        grace_s = 0.0
    for child in children:
        with contextlib.suppress(AttributeError, ValueError):
            if child.is_alive():
                child.kill()
                join(child, 1.0)


def segment_exists(name: str) -> bool:
    """Whether the POSIX shared-memory segment ``name`` (``/psm_...``) still exists."""
    import _posixshmem

    try:
        fd = _posixshmem.shm_open(name, os.O_RDONLY, 0o600)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but not ours to open
    os.close(fd)
    return True


def _unlink_segment(name: str) -> None:
    """Unlink a segment this process created (Lava's channels are made here), and tell multiprocessing's resource
    tracker, as SharedMemory.unlink does: else it warns of a 'leaked' segment at exit."""
    import _posixshmem
    from multiprocessing import resource_tracker

    try:
        _posixshmem.shm_unlink(name)
    except FileNotFoundError:
        return
    resource_tracker.unregister(name, "shared_memory")


def release_segments(names: list[str], manager_alive: Callable[[], bool], wait_s: float) -> list[str]:
    """Make sure the shared-memory segments ``names`` are gone: while their manager process is alive, wait up to
    ``wait_s`` for it to unlink them; then unlink the rest here. Returns those still there (none, unless the
    system refuses the unlink)."""
    deadline = time.monotonic() + wait_s
    left = [n for n in names if segment_exists(n)]
    while left and manager_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [n for n in left if segment_exists(n)]
    for name in left:
        with contextlib.suppress(OSError):
            _unlink_segment(name)
    return [n for n in left if segment_exists(n)]
