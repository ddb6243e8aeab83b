"""The ``model.net`` file format: a NetX HDF5 network plus this project's metadata.

The layer groups are exactly what lava-dl's blocks write and ``lava.lib.dl.netx.hdf5.Network`` reads
(``layer/<i>/{type, shape, weight, ..., neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}}``).
Our metadata lives in root attributes, which netx never reads. Key names are defined here only.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from dsqn.errors import UserError
from dsqn.files.fileio import atomic_write_bytes
from dsqn.files.format import (
    ATTR_FORMAT,
    ATTR_META,
    ATTR_VERSION,
    FORMAT_NAME,
    FORMAT_VERSION,
)
from dsqn.kernels import timing
from dsqn.kernels.fixed_point import (
    LoihiNeuron,
)
from dsqn.layers.readout import Readout


@dataclass
class Layer:
    """One neuron layer of a netx file in this project's (C, H, W) / (N,) convention."""

    index: int
    kind: str  # "dense" | "conv"
    weight: np.ndarray  # dense: (out, in); conv: (out, in, kH, kW) in slayer's orientation
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    i_decay: int | np.ndarray  # one value, or one per group (with ``group``)
    v_decay: int | np.ndarray
    vth_mant: int | np.ndarray
    bias: np.ndarray | None = None  # bias_mant per neuron
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    flatten_before: bool = False
    group: np.ndarray | None = None  # heterogeneous neurons: the group of every neuron (CUBA_GROUPS)

    @property
    def heterogeneous(self) -> bool:
        return self.group is not None

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.out_shape))

    def bias_per_neuron(self) -> np.ndarray:
        """bias_mant of every neuron; netx accepts one value, one per channel or one per neuron."""
        if self.bias is None:
            return np.zeros(self.n_neurons, dtype=np.int64)
        b = self.bias.astype(np.int64).reshape(-1)
        if b.size == self.n_neurons:
            return b
        if b.size == self.out_shape[0]:
            return np.repeat(b, self.n_neurons // self.out_shape[0])
        return np.full(self.n_neurons, b[0])

    def neuron(self) -> LoihiNeuron:
        """The layer's neurons in Loihi integers (what the emulator's kernel runs): per neuron for grouped layers."""
        if self.group is not None:
            g = self.group
            return LoihiNeuron(i_decay=np.asarray(self.i_decay)[g], v_decay=np.asarray(self.v_decay)[g],
                               vth_mant=np.asarray(self.vth_mant)[g], bias_mant=self.bias_per_neuron())
        return LoihiNeuron(i_decay=self.i_decay, v_decay=self.v_decay, vth_mant=self.vth_mant, bias_mant=self.bias_per_neuron())


@dataclass
class NetFile:
    path: Path
    layers: list[Layer]
    meta: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    # Every reader takes T, the resets and the readout from here: each is written once in the file.
    @property
    def timesteps(self) -> int:
        return int(self.meta["timesteps"])

    @property
    def reset_offset(self) -> int:
        return int(self.meta["reset_offset"])

    @property
    def reset_interval(self) -> int:
        return timing.reset_interval(self.timesteps)

    @property
    def input_message_bits(self) -> int:
        return int(self.meta["input_message_bits"])

    @property
    def readout(self) -> Readout:
        return Readout.from_dict(self.meta["readout"], self.timesteps)


def atomic_write_h5(path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    """Build the HDF5 file in memory, then write it through a temporary file in the same folder and rename it
    into place: libhdf5 never writes to the disk itself, so a full disk is one OSError (-> UserError, no partial
    file) instead of an HDF5 error at close or a crash."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        writer(f)
    atomic_write_bytes(Path(path), buf.getvalue())


def write_meta(f: h5py.File, meta: dict) -> None:
    f.attrs[ATTR_FORMAT] = FORMAT_NAME
    f.attrs[ATTR_VERSION] = FORMAT_VERSION
    f.attrs[ATTR_META] = json.dumps(meta, sort_keys=True)












def check_read_in_child(path: Path, read, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Run ``read()`` (a reader of the HDF5 file ``path``) once in a forked child first: the HDF5 library itself can
    crash (SIGSEGV) on a damaged file, e.g. on a variable-length string whose global-heap entry was overwritten.
    A crash is a one-line UserError naming the signal; any other outcome is left to the caller's own read."""
    sig = _crashes_in_child(read, timeout_s)
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        raise UserError(f"{path}: damaged HDF5 file (the HDF5 library crashed reading it: {name})")


def _crashes_in_child(read, timeout_s: float) -> int:  # type: ignore[no-untyped-def]
    """The signal that killed a forked child running ``read()``, or 0 (it returned or raised, no fork is available,
    or it did not finish in time)."""
    if not hasattr(os, "fork"):
        return 0
    with warnings.catch_warnings():  # Python >= 3.12 warns about fork() in a multi-threaded process; the child only reads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: quiet, no core file, never returns into the caller's code
        code = 1
        try:
            import faulthandler
            import resource

            faulthandler.disable()
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            read()
            code = 0
        except BaseException:  # noqa: BLE001 - any outcome but a crash is the parent's to report
            code = 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        if time.monotonic() > deadline:  # stuck (say, a lock held at fork time): kill it and read in this process
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return 0
        time.sleep(0.002)












def write_netfile(path: Path, layer_writers: list, meta: dict) -> None:  # type: ignore[type-arg]
    """Write ``model.net`` atomically: ``layer/<i>`` groups filled by ``layer_writers[i](group)`` (the blocks'
    ``export_hdf5``) and the metadata in root attributes netx never reads."""

    def write(f: h5py.File) -> None:
        layers = f.create_group("layer")
        for i, writer in enumerate(layer_writers):
            writer(layers.create_group(str(i)))
        write_meta(f, meta)

    atomic_write_h5(path, write)
