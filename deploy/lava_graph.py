"""What the plain (netx) and the grouped Lava graphs share: the integer Injector model, the run configuration per
backend, a layer's parts (neuron process + Extractor) and :class:`LavaGraph` -- T-step inferences and a close() that
always stops the runtime, bounded in time, leaving no process and no shared-memory segment (dsqn.deploy.lava_runtime).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from dsqn.errors import UserError
from dsqn.extras import ready_for_lava

from . import lava_runtime as rt


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
        rt.open_networks.add(self)

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
            rt.guard_forks()
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

        timeout_s = max(rt.STOP_TIMEOUT_S, rt.STOP_S_PER_PROCESS * len(rt.live_children())
                        + rt.STOP_S_PER_SEGMENT * len(self._segment_names()))
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
        rt.open_networks.discard(self)
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
                rt.kill_children(0.0)
                if runtime is not None:
                    runtime._is_started = False  # its __del__ would call stop() again and wait on dead processes
            else:
                rt.kill_children(1.0)  # stopped: its processes exit by themselves
            # the stop may have outrun its bound inside the manager's unlinking (handles already forgotten, server
            # killed above): nothing of this network's shared memory may outlive close()
            rt.release_segments(segments, self._manager_alive, rt.SEGMENT_WAIT_S)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def __enter__(self: _G) -> _G:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
