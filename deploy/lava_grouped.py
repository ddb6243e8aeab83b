"""Heterogeneous (CUBA_GROUPS) networks on Lava, built from Lava's own processes.

Stock netx (``lava.lib.dl.netx.hdf5.Network``) cannot build a file with a ``CUBA_GROUPS`` neuron group: Lava's LIF
process holds one ``du``, ``dv`` and ``vth`` per process, and netx's ``get_neuron_params`` knows no such neuron
type (it returns None, and the block fails on it). Here each neuron group of a layer is one ``LIFReset`` process
with its group's integers, fed by one ``Dense`` per (source process, group) pair holding the rows of the group's
neurons (and the columns of the source group's neurons, where the previous layer is grouped too); Lava sums every
connection into a group's ``a_in``. A homogeneous layer is one group: the graph built for a homogeneous file is
what netx builds (same processes and parameters, tested step by step against :class:`LavaNetwork`).

netx's semantics, copied (``netx/hdf5.py``, ``netx/blocks/process.py``, ``netx/utils.py``, lava-dl 0.6):
- an ``input`` layer without neurons only sets the input shape: the Injector feeds the first Dense directly;
- the first Dense gets ``num_message_bits = input_message_bits`` (graded payloads), every later one the previous
  neuron group's ``messageBits`` (0 when absent: binary spikes);
- weights go through ``optimize_weight_bits`` (left-shifted by the scale it finds, ``weight_exp`` = minus that shift,
  ``num_weight_bits`` from the rounding it finds); here per sub-matrix, which gives the same sums: the synapse
  right-shifts the accumulated (exact) sum back by exactly the shift it was scaled by;
- neurons: ``vth = vThMant``, ``du = iDecay - 1``, ``dv = vDecay``, ``bias_exp = 6``, ``bias_mant`` = the layer's
  bias (per neuron), ``LIFReset`` with ``reset_interval`` and ``reset_offset = file reset_offset + 1 + i`` for
  layer i (netx counts time from 1 and gives every layer the next phase); plain ``LIF`` without a reset interval;
- the readout is the last layer like any other (its bias is its neurons' ``bias_mant``; read its ``v``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from dsqn.errors import UserError
from dsqn.extras import import_lava_dl, ready_for_lava
from dsqn.files.netfile import Layer, NetFile

from .lava_graph import LavaGraph, Part, lava_run_config


def _message_bits(path: Path, layer: Layer) -> int:
    """The neuron group's ``messageBits`` (what netx gives the next layer's Dense), 0 when absent as in netx."""
    with h5py.File(path, "r") as f:
        key = f"layer/{layer.index}/neuron/messageBits"
        return int(np.asarray(f[key][()]).reshape(-1)[0]) if key in f else 0


def _as_lava_stores(weight: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """The weights Lava's bit-accurate Dense model computes with (``lava/proc/dense/models.py``: the sign mode it
    determines itself, ``clip_weights`` to 8 bits, ``truncate_weights`` to ``num_weight_bits``)."""
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    mode = determine_sign_mode(weight)
    return truncate_weights(clip_weights(weight, mode, num_bits=8), mode, num_weight_bits)


def synapse_params(weight: np.ndarray, optimize_weight_bits) -> tuple[np.ndarray, int, int]:  # type: ignore[no-untyped-def]
    """(weights, num_weight_bits, weight_exp) of a Dense holding the integer matrix ``weight`` (not all zero):
    netx's ``optimize_weight_bits`` where Lava's Dense model then computes exactly ``weight``'s sums -- always for the
    mixed-sign matrices of whole layers. A sub-matrix can be all of one sign, and there netx's choice can lose bits:
    Lava's model clips an inhibitory matrix to -255 where netx scales the smallest weight to -256, and sees a
    matrix of zeros and negatives as inhibitory where netx scales it as mixed. Then the first exact choice of
    (shift k, num_weight_bits) is taken: weights ``weight * 2**k``, ``weight_exp = -k`` (the synapse shifts the
    accumulated sum back, exactly)."""
    try:
        with np.errstate(divide="ignore"):  # netx divides 127 by a largest weight of 0 (then takes the other scale)
            w, bits, exp, _ = optimize_weight_bits(weight.astype(int))
        if np.array_equal(_as_lava_stores(np.asarray(w), bits), w):
            return np.asarray(w), int(bits), int(exp)
    except (OverflowError, ValueError):
        pass
    for k in (0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5, -6, 6, -7, 7, -8, 8):
        if k < 0 and np.any(weight % (1 << -k)):
            continue
        scaled = weight * (1 << k) if k >= 0 else weight // (1 << -k)
        if np.abs(scaled).max() > 256:
            continue
        for bits in range(8, 0, -1):
            if np.array_equal(_as_lava_stores(scaled, bits), scaled):
                return scaled.astype(int), bits, -k
    raise UserError(f"no Lava Dense weight encoding holds the weights {weight.min()}..{weight.max()} exactly")


def _groups(layer: Layer) -> list[tuple[np.ndarray, int, int, int]]:
    """(neuron indices, iDecay, vDecay, vThMant) of every non-empty group of the layer, in group order; one group
    holding every neuron for a homogeneous layer."""
    if layer.group is None:
        return [(np.arange(layer.n_neurons), int(layer.i_decay), int(layer.v_decay), int(layer.vth_mant))]
    out = []
    i_decay, v_decay, vth = (np.asarray(x).reshape(-1) for x in (layer.i_decay, layer.v_decay, layer.vth_mant))
    for k in range(i_decay.size):
        rows = np.flatnonzero(layer.group == k)
        if rows.size:
            out.append((rows, int(i_decay[k]), int(v_decay[k]), int(vth[k])))
    return out


class GroupedLavaNetwork(LavaGraph):
    """A dense network from a :class:`NetFile` (homogeneous or CUBA_GROUPS hidden layers, the readout last) as Lava
    processes: one LIF(Reset) per neuron group, one Dense per (source process, group) pair, an Injector in front and
    an Extractor behind every neuron process. Spikes, u and v come back in the file's neuron order."""

    def __init__(self, net: NetFile, backend: str = "sim") -> None:
        ready_for_lava()
        from lava.proc.dense.process import Dense
        from lava.proc.io.extractor import Extractor
        from lava.proc.io.injector import Injector
        from lava.proc.lif.process import LIF, LIFReset

        optimize_weight_bits = import_lava_dl("netx.utils").optimize_weight_bits
        for layer in net.layers:
            if layer.kind != "dense":
                raise UserError(f"layer {layer.index}: the grouped Lava graph builds dense layers only, not {layer.kind}")
        self.net = net
        self.T = int(net.timesteps)
        reset_interval = net.reset_interval
        self.n_in = int(net.layers[0].weight.shape[1])
        self.injector = Injector(shape=(self.n_in,), buffer_size=self.T + 1)
        self._root = self.injector
        self.n_dense = 0  # Dense processes built (all-zero blocks are left out: they add nothing)
        sources: list[tuple[object, np.ndarray | None]] = [(self.injector.out_port, None)]  # (OutPort, its columns)
        message_bits = int(net.input_message_bits)
        self._layers = []
        for i, layer in enumerate(net.layers):
            bias = layer.bias_per_neuron() if layer.bias is not None else None
            parts: list[Part] = []
            for rows, i_decay, v_decay, vth in _groups(layer):
                params: dict = {"shape": (int(rows.size),), "vth": vth, "du": i_decay - 1, "dv": v_decay, "bias_exp": 6}
                if bias is not None:
                    params["bias_mant"] = bias[rows].astype(np.int32)
                if reset_interval is None:
                    neuron = LIF(**params)
                else:
                    neuron = LIFReset(**params, reset_interval=reset_interval, reset_offset=net.reset_offset + 1 + i)
                for port, cols in sources:
                    w = layer.weight[rows] if cols is None else layer.weight[np.ix_(rows, cols)]
                    if not w.any():
                        continue  # netx's optimize_weight_bits cannot scale an all-zero matrix; it adds nothing
                    weight, num_weight_bits, weight_exp = synapse_params(w, optimize_weight_bits)
                    syn = Dense(weights=weight, weight_exp=weight_exp, num_weight_bits=num_weight_bits,
                                num_message_bits=message_bits)
                    port.connect(syn.s_in)  # type: ignore[attr-defined]
                    syn.a_out.connect(neuron.a_in)
                    self.n_dense += 1
                ex = Extractor(shape=(int(rows.size),), buffer_size=self.T + 1)
                neuron.s_out.connect(ex.in_port)
                parts.append(Part(neuron, ex, rows))
            self._layers.append(parts)
            sources = [(p.neuron.s_out, p.index) for p in parts]
            message_bits = _message_bits(net.path, layer)
        self.run_cfg = lava_run_config(backend)
        self._register()

    @classmethod
    def from_netfile(cls, net: NetFile, backend: str = "sim") -> GroupedLavaNetwork:
        return cls(net, backend)

    @property
    def n_neuron_processes(self) -> list[int]:
        """Neuron processes (groups) per layer."""
        return [len(parts) for parts in self._layers]

    def _to_lava(self, payload: np.ndarray) -> np.ndarray:
        return np.asarray(payload).reshape(self.n_in).astype(np.float64)
