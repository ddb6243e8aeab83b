"""Run an exported network on Lava: the CPU simulator (``fixed_pt``) or Loihi 2 (``lava-loihi``).

Each inference runs ``T`` steps: the encoded observation is sent through an Injector on every step,
each layer's spikes flow to an Extractor (for the counters), and the readout layer's voltage is read
after the last step. netx's per-layer reset (``reset_interval=T``, ``reset_offset`` from the file)
clears neuron state between inferences exactly where the training model starts from zero.

The runtime is always stopped (``close``/context manager), also on exceptions, Ctrl-C and SIGTERM, so no Lava
processes are left behind (lava issues #88, #231, #716):
- every process this one forks once Lava starts (Lava's workers, its shared-memory and watchdog managers)
  ignores SIGINT -- a terminal's Ctrl-C reaches the whole process group, and only this process handles it, by
  stopping the runtime -- and dies with this process (Linux ``PR_SET_PDEATHSIG``), so even a SIGKILL of this
  process leaves none of them running;
- ``close`` is bounded in time: a runtime that does not stop within ``STOP_TIMEOUT_S`` (a worker already dead;
  ``STOP_S_PER_PROCESS`` per process and ``STOP_S_PER_SEGMENT`` per shared-memory segment for large graphs) has its
  processes killed;
- when ``close`` returns, every shared-memory segment (/dev/shm/psm_*) of the network is gone, whatever the machine's
  load: Lava's SharedMemoryManager unlinks them in its server process while the runtime stops, after it has already
  forgotten their handles, so a stop that outran its time bound there and had that server killed used to leave the
  rest behind (issue 27: 9 of the 309 segments of a per-neuron grouped network). ``close`` notes the names before
  stopping and unlinks any still there once the manager is gone (waiting at most ``SEGMENT_WAIT_S`` for a live one);
- at exit, networks not closed are closed before multiprocessing joins its children;
- multiprocessing's socket folder is ``dsqn-lava-<pid>-*`` in the temp folder, removed at exit (after a SIGKILL,
  by the next deploy, whatever its backend, or the next Lava start).
"""

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
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dsqn.errors import UserError
from dsqn.extras import import_lava_dl, ready_for_lava
from dsqn.netfile import NetFile

STOP_TIMEOUT_S = 5.0  # how long close() waits for Lava's runtime to stop before it kills the processes
STOP_S_PER_PROCESS = 0.1  # ... or this long per Lava process, if longer (a grouped graph can hold hundreds)
STOP_S_PER_SEGMENT = 0.01  # ... plus this long per shared-memory segment (the manager unlinks them one by one)
SEGMENT_WAIT_S = 3.0  # how long close() lets a still-running shared-memory manager unlink its segments itself

_PR_SET_PDEATHSIG = 1
_forking_pid = 0  # set in the parent just before a fork; the child reads its parent's pid from it
_fork_guard_installed = False
_open_networks: weakref.WeakSet = weakref.WeakSet()


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
    """Remove the ``dsqn-lava-<pid>-*`` socket folders (see :func:`_own_temp_dir`) of processes no longer alive --
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


def _own_temp_dir() -> None:
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


def _guard_forks() -> None:
    """Before Lava's runtime starts its processes (see the module docstring)."""
    global _fork_guard_installed
    if not _fork_guard_installed:
        _own_temp_dir()
        os.register_at_fork(before=_before_fork, after_in_child=_in_forked_child)
        atexit.register(_close_open_networks)  # runs before multiprocessing's own exit handler joins the children
        _fork_guard_installed = True


def _close_open_networks() -> None:
    for net in list(_open_networks):
        with contextlib.suppress(Exception):
            net.close()
    _kill_children(0.5)


def _live_children() -> list[multiprocessing.process.BaseProcess]:
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


def _kill_children(grace_s: float) -> None:
    """Kill the multiprocessing children of this process still alive after ``grace_s`` seconds."""
    # BaseProcess.join, not child.join: Lava's SystemProcess overrides join() without a timeout argument
    join = multiprocessing.process.BaseProcess.join
    children = _live_children()
    for child in children:
        with contextlib.suppress(AttributeError, ValueError):
            join(child, grace_s)
        grace_s = 0.0
    for child in children:
        with contextlib.suppress(AttributeError, ValueError):
            if child.is_alive():
                child.kill()
                join(child, 1.0)


def _segment_exists(name: str) -> bool:
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
    left = [n for n in names if _segment_exists(n)]
    while left and manager_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [n for n in left if _segment_exists(n)]
    for name in left:
        with contextlib.suppress(OSError):
            _unlink_segment(name)
    return [n for n in left if _segment_exists(n)]


def _int_injector_model():  # type: ignore[no-untyped-def]
    """Lava's Injector model sends float arrays; graded spikes into a fixed-point Dense must be
    integers (PyDenseModelBitAcc right-shifts the accumulated input), so send int32 payloads."""
    ready_for_lava()
    from lava.magma.core.model.py.ports import PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.proc.io.injector import PyLoihiInjectorModel

    class PyIntInjectorModel(PyLoihiInjectorModel):
        out_port: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

        def run_spk(self) -> None:
            self._zeros.fill(0)
            if self.in_port.csp_ports[-1]._queue.qsize() == 0:
                data = self._receive_when_empty(self.in_port, self._zeros)
            else:
                data = self._receive_when_not_empty(self.in_port, self._zeros, self.in_port.csp_ports[-1]._queue.qsize())
            self.out_port.send(np.asarray(data).astype(np.int32))

    return PyIntInjectorModel


def loihi2_available() -> bool:
    ready_for_lava()
    try:
        import lava.magma.compiler.subcompilers.nc.ncproc_compiler  # noqa: F401  (part of lava-loihi)
        import lava.utils.loihi2_profiler_api  # noqa: F401
        from lava.magma.core.run_configs import Loihi2HwCfg  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Inference:
    readout_v: np.ndarray  # (A,) readout voltage after the last step
    spikes: list[np.ndarray]  # per layer (N, T) bool, in (C, H, W)-flattened neuron order
    u: list[np.ndarray] | None = None  # per layer (N, T), only with record_state
    v: list[np.ndarray] | None = None


def _whc_to_chw_flat(arr: np.ndarray) -> np.ndarray:
    """netx (W, H, C) neuron order -> our (C, H, W) order, flattened."""
    if arr.ndim == 3:
        return arr.transpose(2, 1, 0).reshape(-1)
    return arr.reshape(-1)


@dataclass
class Part:
    """One Lava neuron process of a layer and the Extractor behind it. ``index``: where its neurons sit in the
    layer's (file) neuron order; None: it is the whole layer, in netx's (W, H, C) order."""

    neuron: Any  # a LIF / LIFReset process (or anything with u, v Vars)
    extractor: Any  # the Extractor its spikes flow to
    index: np.ndarray | None = None


def _assemble(parts: list[Part], get: Callable[[Part], np.ndarray]) -> np.ndarray:
    """One layer's values in the file's neuron order: from its parts (scattered by their index sets)."""
    if len(parts) == 1 and parts[0].index is None:
        return _whc_to_chw_flat(np.asarray(get(parts[0])))
    n = sum(int(p.index.size) for p in parts)  # type: ignore[union-attr]
    out: np.ndarray | None = None
    for p in parts:
        vals = np.asarray(get(p)).reshape(-1)
        if out is None:
            out = np.zeros(n, dtype=vals.dtype)
        out[p.index] = vals
    assert out is not None
    return out


def lava_run_config(backend: str):  # type: ignore[no-untyped-def]
    """Lava's run configuration for ``sim`` (CPU, bit-accurate fixed_pt models) or ``loihi2`` (lava-loihi)."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.injector import Injector

    if backend == "sim":
        return Loihi2SimCfg(
            select_tag="fixed_pt",
            exception_proc_model_map={Injector: _int_injector_model(), Extractor: PyLoihiExtractorModel},
        )
    if backend == "loihi2":
        if not loihi2_available():
            raise UserError("backend loihi2 needs Intel's lava-loihi extension, which is not installed")
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg(exception_proc_model_map={Injector: _int_injector_model(), Extractor: PyLoihiExtractorModel})
    raise UserError(f"unknown Lava backend {backend!r}")


_G = TypeVar("_G", bound="LavaGraph")


class LavaGraph:
    """What every Lava graph of this toolchain shares: an Injector in front, an Extractor behind every neuron
    process, T-step inferences, and the runtime handling (fork guard, bounded close, shared-memory cleanup, closed at
    exit). A subclass builds the graph -- ``self.injector``, ``self._layers`` (per layer its :class:`Part` s, the
    readout last), ``self._root`` (a process of the graph: runs and stops it), ``self.run_cfg`` -- and calls
    :meth:`_register` at the end of its ``__init__``."""

    T: int
    injector: Any
    run_cfg: Any
    _root: Any
    _layers: list[list[Part]]

    def _register(self) -> None:
        self._started = False
        self._closed = False
        _open_networks.add(self)

    @property
    def extractors(self) -> list[Any]:
        return [p.extractor for parts in self._layers for p in parts]

    def _to_lava(self, payload: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def infer(self, payload: np.ndarray, record_state: bool = False) -> Inference:
        """One inference of T steps on the encoded observation ``payload`` (input_shape)."""
        from lava.magma.core.run_conditions import RunSteps

        data = self._to_lava(payload)
        us: list[list[np.ndarray]] = [[] for _ in self._layers]
        vs: list[list[np.ndarray]] = [[] for _ in self._layers]
        if record_state:
            for _ in range(self.T):
                self._start()
                self._root.run(condition=RunSteps(num_steps=1, blocking=False), run_cfg=self.run_cfg)
                self.injector.send(data)
                self._root.wait()
                for i, parts in enumerate(self._layers):
                    us[i].append(_assemble(parts, lambda p: p.neuron.u.get()).astype(np.int64))
                    vs[i].append(_assemble(parts, lambda p: p.neuron.v.get()).astype(np.int64))
        else:
            self._start()
            self._root.run(condition=RunSteps(num_steps=self.T, blocking=False), run_cfg=self.run_cfg)
            for _ in range(self.T):
                self.injector.send(data)
            self._root.wait()
        spikes = []
        for parts in self._layers:
            spikes.append(np.stack([_assemble(parts, lambda p: p.extractor.receive()) != 0 for _ in range(self.T)], axis=-1))
        readout_v = _assemble(self._layers[-1], lambda p: p.neuron.v.get()).astype(np.int64)
        if record_state:
            return Inference(readout_v, spikes, [np.stack(x, -1) for x in us], [np.stack(x, -1) for x in vs])
        return Inference(readout_v, spikes)

    def _start(self) -> None:
        if not self._started:
            if self._closed:
                raise RuntimeError(f"{type(self).__name__} used after close()")
            _guard_forks()
            self._started = True  # before the runtime exists: an interrupted start is stopped too

    def _stop_runtime(self) -> bool:
        """Stop the runtime in a thread, waited for STOP_TIMEOUT_S (or STOP_S_PER_PROCESS per process Lava started,
        if longer: its stop joins them one by one); whether it stopped."""
        errors: list[BaseException] = []

        def stop() -> None:
            try:
                self._root.stop()
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)

        timeout_s = max(STOP_TIMEOUT_S, STOP_S_PER_PROCESS * len(_live_children())
                        + STOP_S_PER_SEGMENT * len(self._segment_names()))
        thread = threading.Thread(target=stop, name="lava-stop", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        if errors:
            exc = errors[0]
            # Interrupted mid-run, Lava's Runtime.stop() can receive the run's completion message where it expects
            # TERMINATED and raise ("Runtime Received [0.]"); its `finally` has already stopped the messaging
            # infrastructure (the worker processes). Stop the watchdog manager it skips, so nothing is left.
            if isinstance(exc, RuntimeError) and str(exc).startswith("Runtime Received"):
                watchdog = getattr(getattr(self._root, "runtime", None), "_watchdog_manager", None)
                if watchdog is not None:
                    with contextlib.suppress(Exception):
                        watchdog.stop()
                return True
            return False
        return True

    def _smm(self) -> Any:
        """Lava's shared-memory manager of this runtime (lava.magma.runtime.message_infrastructure), or None."""
        messaging = getattr(getattr(self._root, "runtime", None), "_messaging_infrastructure", None)
        return getattr(messaging, "smm", None) if messaging is not None else None

    def _segment_names(self) -> list[str]:
        """The runtime's shared-memory segments (``/psm_...``) as its manager lists them now: its list is cleared
        when the runtime stops, before the segments are unlinked, so close() notes them first."""
        handles = list(getattr(self._smm(), "_shared_memory_handles", None) or [])
        return ["/" + str(h.name).lstrip("/") for h in handles]

    def _manager_alive(self) -> bool:
        """Whether the server process of the runtime's SharedMemoryManager (which unlinks the segments) still runs."""
        process = getattr(getattr(self._smm(), "_manager", None), "_process", None)
        with contextlib.suppress(AttributeError, ValueError):
            return bool(process is not None and process.is_alive())
        return False

    def _unlink_shared_memory(self) -> None:
        """The runtime's shared-memory segments (/dev/shm/psm_*), where its manager did not get to unlink them."""
        for handle in list(getattr(self._smm(), "_shared_memory_handles", None) or []):
            # unlink only: the stop thread may still read the mapping (unmapping it under that thread can crash this
            # process); the memory goes with the mapping, at the latest when this process exits
            with contextlib.suppress(FileNotFoundError, Exception):
                handle.unlink()

    def close(self) -> None:
        """Stop the runtime and its processes; bounded in time (STOP_TIMEOUT_S, then the processes are killed)."""
        if self._closed:
            return
        self._closed = True
        _open_networks.discard(self)
        if not self._started:
            return
        # Ignore further Ctrl-C / SIGTERM while the runtime shuts down its processes (main thread only).
        in_main = threading.current_thread() is threading.main_thread()
        old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
        try:
            runtime = getattr(self._root, "runtime", None)
            segments = self._segment_names()
            if runtime is None or not self._stop_runtime():
                self._unlink_shared_memory()
                _kill_children(0.0)
                if runtime is not None:
                    runtime._is_started = False  # its __del__ would call stop() again and wait on dead processes
            else:
                _kill_children(1.0)  # stopped: its processes exit by themselves
            # the stop may have outrun its bound inside the manager's unlinking (handles already forgotten, server
            # killed above): nothing of this network's shared memory may outlive close()
            release_segments(segments, self._manager_alive, SEGMENT_WAIT_S)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def __enter__(self: _G) -> _G:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LavaNetwork(LavaGraph):
    """A stock netx network (``netx.hdf5.Network``) with an Injector in front and Extractors behind every layer.
    ``from_netfile`` builds :class:`dsqn.deploy.lava_grouped.GroupedLavaNetwork` instead for files with
    heterogeneous (CUBA_GROUPS) layers, which stock netx cannot build."""

    def __init__(self, path: str | Path, timesteps: int, input_message_bits: int, reset_interval: int | None,
                 reset_offset: int, backend: str = "sim", input_shape: tuple[int, ...] | None = None) -> None:
        ready_for_lava()
        from lava.proc.io.extractor import Extractor
        from lava.proc.io.injector import Injector

        netx = import_lava_dl("netx")
        self.T = int(timesteps)
        self.net = netx.hdf5.Network(
            net_config=str(path),
            input_message_bits=int(input_message_bits),
            reset_interval=reset_interval,
            reset_offset=int(reset_offset),
            # netx wants (x, y, c) for a conv-first file without an input layer
            input_shape=None if input_shape is None or len(input_shape) != 3 else tuple(int(s) for s in input_shape[::-1]),
        )
        self._root = self.net
        self.injector = Injector(shape=self.net.inp.shape, buffer_size=self.T + 1)
        self.injector.out_port.connect(self.net.inp)
        self._layers = []
        for layer in self.net.layers:
            ex = Extractor(shape=layer.out.shape, buffer_size=self.T + 1)
            layer.out.connect(ex.in_port)
            self._layers.append([Part(layer.neuron, ex)])
        self.readout = self.net.layers[-1].neuron
        self.run_cfg = lava_run_config(backend)
        self._register()

    @classmethod
    def from_netfile(cls, net: NetFile, backend: str = "sim") -> LavaGraph:
        """T, resets and input width exactly as the file states them (dsqn.netfile.NetFile). A file with a
        heterogeneous layer gets the grouped graph (one LIF process per neuron group, dsqn.deploy.lava_grouped)."""
        if any(layer.heterogeneous for layer in net.layers):
            from .lava_grouped import GroupedLavaNetwork

            return GroupedLavaNetwork.from_netfile(net, backend)
        return cls(net.path, net.timesteps, net.input_message_bits, net.reset_interval, net.reset_offset, backend)

    def _to_lava(self, payload: np.ndarray) -> np.ndarray:
        payload = np.asarray(payload)
        if payload.ndim == 3:  # (C, H, W) -> netx (W, H, C)
            payload = payload.transpose(2, 1, 0)
        return payload.reshape(self.net.inp.shape).astype(np.float64)
