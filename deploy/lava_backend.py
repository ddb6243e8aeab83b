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

The shared pieces live in dsqn.deploy.lava_graph (LavaGraph, parts, run configuration) and dsqn.deploy.lava_runtime
(process and shared-memory hygiene); the grouped builder (dsqn.deploy.lava_grouped) imports them, not this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsqn.extras import import_lava_dl, ready_for_lava
from dsqn.files.netfile import NetFile

from .lava_graph import Inference, LavaGraph, Part, lava_run_config, loihi2_available
from .lava_runtime import TEMPDIR_PREFIX, own_temp_dir, remove_stale_temp_dirs

__all__ = ["Inference", "LavaGraph", "LavaNetwork", "Part", "TEMPDIR_PREFIX", "lava_run_config", "loihi2_available",
           "remove_stale_temp_dirs"]
_own_temp_dir = own_temp_dir  # the name the SIGKILL test starts a folder cleanup by


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
        """T, resets and input width exactly as the file states them (dsqn.files.netfile.NetFile). A file with a
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
