"""Run an exported network on Lava: the CPU simulator (``fixed_pt``) or Loihi 2 (``lava-loihi``).

Each inference runs ``T`` steps: the encoded observation is sent through an Injector on every step,
each layer's spikes flow to an Extractor (for the counters), and the readout layer's voltage is read
after the last step. netx's per-layer reset (``reset_interval=T``, ``reset_offset`` from the file)
clears neuron state between inferences exactly where the training model starts from zero.

The runtime is always stopped (``close``/context manager), also on exceptions and Ctrl-C, so no Lava
processes are left behind (lava issues #88, #231, #716).
"""

from __future__ import annotations

import contextlib
import io
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsqn.errors import UserError
from dsqn.extras import ready_for_lava
from dsqn.netfile import NetFile


def _quiet_import_netx():  # type: ignore[no-untyped-def]
    # lava-dl prints optional-dependency warnings on import; keep the console output about our run.
    ready_for_lava()
    with contextlib.redirect_stdout(io.StringIO()):
        from lava.lib.dl import netx
    return netx


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


class LavaNetwork:
    """A netx network with an Injector in front and Extractors behind every layer."""

    def __init__(self, path: str | Path, timesteps: int, input_message_bits: int, reset_interval: int | None,
                 reset_offset: int, backend: str = "sim", input_shape: tuple[int, ...] | None = None) -> None:
        ready_for_lava()
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
        from lava.proc.io.injector import Injector

        netx = _quiet_import_netx()
        self.T = int(timesteps)
        self.net = netx.hdf5.Network(
            net_config=str(path),
            input_message_bits=int(input_message_bits),
            reset_interval=reset_interval,
            reset_offset=int(reset_offset),
            # netx wants (x, y, c) for a conv-first file without an input layer
            input_shape=None if input_shape is None or len(input_shape) != 3 else tuple(int(s) for s in input_shape[::-1]),
        )
        self.injector = Injector(shape=self.net.inp.shape, buffer_size=self.T + 1)
        self.injector.out_port.connect(self.net.inp)
        self.extractors = []
        for layer in self.net.layers:
            ex = Extractor(shape=layer.out.shape, buffer_size=self.T + 1)
            layer.out.connect(ex.in_port)
            self.extractors.append(ex)
        self.readout = self.net.layers[-1].neuron
        if backend == "sim":
            self.run_cfg = Loihi2SimCfg(
                select_tag="fixed_pt",
                exception_proc_model_map={Injector: _int_injector_model(), Extractor: PyLoihiExtractorModel},
            )
        elif backend == "loihi2":
            if not loihi2_available():
                raise UserError("backend loihi2 needs Intel's lava-loihi extension, which is not installed")
            from lava.magma.core.run_configs import Loihi2HwCfg

            self.run_cfg = Loihi2HwCfg(exception_proc_model_map={Injector: _int_injector_model(), Extractor: PyLoihiExtractorModel})
        else:
            raise UserError(f"unknown Lava backend {backend!r}")
        self._started = False
        self._closed = False

    @classmethod
    def from_netfile(cls, net: NetFile, backend: str = "sim") -> LavaNetwork:
        """T, resets and input width exactly as the file states them (dsqn.netfile.NetFile)."""
        return cls(net.path, net.timesteps, net.input_message_bits, net.reset_interval, net.reset_offset, backend)

    def _to_lava(self, payload: np.ndarray) -> np.ndarray:
        payload = np.asarray(payload)
        if payload.ndim == 3:  # (C, H, W) -> netx (W, H, C)
            payload = payload.transpose(2, 1, 0)
        return payload.reshape(self.net.inp.shape).astype(np.float64)

    def infer(self, payload: np.ndarray, record_state: bool = False) -> Inference:
        """One inference of T steps on the encoded observation ``payload`` (input_shape)."""
        from lava.magma.core.run_conditions import RunSteps

        data = self._to_lava(payload)
        us: list[list[np.ndarray]] = [[] for _ in self.net.layers]
        vs: list[list[np.ndarray]] = [[] for _ in self.net.layers]
        if record_state:
            for _ in range(self.T):
                self.net.run(condition=RunSteps(num_steps=1, blocking=False), run_cfg=self.run_cfg)
                self._started = True
                self.injector.send(data)
                self.net.wait()
                for i, layer in enumerate(self.net.layers):
                    us[i].append(_whc_to_chw_flat(layer.neuron.u.get()).astype(np.int64))
                    vs[i].append(_whc_to_chw_flat(layer.neuron.v.get()).astype(np.int64))
        else:
            self.net.run(condition=RunSteps(num_steps=self.T, blocking=False), run_cfg=self.run_cfg)
            self._started = True
            for _ in range(self.T):
                self.injector.send(data)
            self.net.wait()
        spikes = []
        for ex in self.extractors:
            spikes.append(np.stack([_whc_to_chw_flat(ex.receive()) != 0 for _ in range(self.T)], axis=-1))
        readout_v = _whc_to_chw_flat(self.readout.v.get()).astype(np.int64)
        if record_state:
            return Inference(readout_v, spikes, [np.stack(x, -1) for x in us], [np.stack(x, -1) for x in vs])
        return Inference(readout_v, spikes)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            # Ignore a second Ctrl-C while the runtime shuts down its processes.
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.net.stop()
            except RuntimeError as exc:
                # Interrupted mid-run, Lava's Runtime.stop() can receive the run's completion message where it expects
                # TERMINATED and raise ("Runtime Received [0.]"); its `finally` has already stopped the messaging
                # infrastructure (the worker processes). Stop the watchdog manager it skips, so nothing is left.
                if not str(exc).startswith("Runtime Received"):
                    raise
                watchdog = getattr(getattr(self.net, "runtime", None), "_watchdog_manager", None)
                if watchdog is not None:
                    watchdog.stop()
            finally:
                signal.signal(signal.SIGINT, old)

    def __enter__(self) -> LavaNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
