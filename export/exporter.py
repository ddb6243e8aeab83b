"""Write a trained SpikingQNet as a NetX HDF5 file that stock netx loads, plus deployment metadata."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dsqn.encoding import Encoder
from dsqn.errors import UserError
from dsqn.extras import lava_available
from dsqn.files.netfile import write_netfile
from dsqn.files.netfile_read import read_netfile
from dsqn.kernels import timing
from dsqn.kernels.fixed_point import WEIGHT_INT_MAX, WEIGHT_INT_MIN, WEIGHT_SCALE
from dsqn.layers.cuba import Conv, Flatten
from dsqn.layers.exact import quantize_8bit
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec
from dsqn.version import __version__


@dataclass
class LayerRow:
    index: int
    kind: str
    shape: tuple[int, ...]
    w_min: int
    w_max: int
    clipped: int
    vth_mant: int | str  # "lo..hi" for heterogeneous neurons
    i_decay: int | str
    v_decay: int | str
    groups: int = 0  # heterogeneous neurons: groups in the layer (0: one value for the layer)


def _span(values: np.ndarray) -> int | str:
    """A layer's value, or its range over heterogeneous neurons."""
    values = np.asarray(values)
    return int(values) if values.ndim == 0 else f"{int(values.min())}..{int(values.max())}"


def _clipped_count(weight: torch.Tensor) -> int:
    """Weights whose 8-bit rounding fell outside [-256, 254] and were clipped by quantize_8bit."""
    raw = torch.round(weight.detach().double() * WEIGHT_SCALE / 2.0) * 2.0
    return int(((raw < WEIGHT_INT_MIN) | (raw > WEIGHT_INT_MAX)).sum())


def network_meta(spec: NetSpec, encoder: Encoder, env_id: str, source_sha256: str, extra: dict) -> dict:
    """Deployment metadata; each number once (reset interval and readout divisor follow from T)."""
    return {
        "toolchain_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "env_id": env_id,
        "timesteps": spec.timesteps,
        "reset_offset": timing.RESET_OFFSET,
        "n_actions": spec.n_actions,
        "input_shape": list(spec.input_shape),
        "encoder": encoder.to_dict(),
        "input_message_bits": encoder.payload_bits,
        "readout": {k: v for k, v in spec.readout.to_dict().items() if k != "timesteps"},
        "source_checkpoint_sha256": source_sha256,
        **extra,
    }


def export_model(model: SpikingQNet, encoder: Encoder, out: Path, meta: dict) -> list[LayerRow]:
    """Write ``out`` atomically and return the per-layer table. The model is not modified."""
    spec = model.spec
    try:
        spec.validate()
    except ValueError as exc:
        raise UserError(f"cannot export: {exc}") from None
    rows: list[LayerRow] = []
    writers = []

    def input_layer(g) -> None:  # type: ignore[no-untyped-def]
        g.create_dataset("type", (1,), "S10", [b"input"])
        g.create_dataset("shape", data=np.array(spec.input_shape))

    writers.append(input_layer)
    for block in model.blocks:
        writers.append(block.export_hdf5)
        if isinstance(block, Flatten):
            continue
        w = block.synapse.weight_int()
        n = block.neuron.loihi(f"layer {len(rows)}")
        rows.append(LayerRow(len(rows), "conv" if isinstance(block, Conv) else "dense", tuple(block.neuron.shape), int(w.min()), int(w.max()),
                             _clipped_count(block.synapse.weight), _span(n.vth_mant), _span(n.i_decay), _span(n.v_decay),
                             0 if block.neuron.groups is None else int(block.neuron.groups[1].i_decay.size)))
    syn = model.readout.synapse
    w = (quantize_8bit(syn.weight).detach() * WEIGHT_SCALE).reshape(syn.weight.shape[:2]).cpu().numpy().astype(np.float32)
    bias = np.rint(model.quantized_bias().detach().cpu().numpy().astype(np.float64) * WEIGHT_SCALE).astype(np.int64)
    readout = model.readout.loihi(bias)
    readout.validate("readout")

    def readout_layer(g) -> None:  # type: ignore[no-untyped-def]
        g.create_dataset("type", (1,), "S10", [b"dense"])
        g.create_dataset("shape", data=np.array([spec.n_actions]))
        g.create_dataset("inFeatures", data=w.shape[1])
        g.create_dataset("outFeatures", data=w.shape[0])
        g.create_dataset("weight", data=w)
        g.create_dataset("bias", data=bias.astype(np.int32))
        # Non-spiking accumulator: u = input of this step, v integrates u (saturating; see dsqn.kernels.fixed_point).
        for key, value in {"type": "CUBA", "iDecay": int(readout.i_decay), "vDecay": int(readout.v_decay),
                           "vThMant": int(readout.vth_mant), "refDelay": 1, "gradedSpike": False}.items():
            g.create_dataset(f"neuron/{key}", data=value)

    writers.append(readout_layer)
    rows.append(LayerRow(len(rows), "readout", (spec.n_actions,), int(w.min()), int(w.max()), _clipped_count(syn.weight),
                         int(readout.vth_mant), int(readout.i_decay), int(readout.v_decay)))
    write_netfile(out, writers, meta)
    return rows


NETX_OK = "re-read with lava.lib.dl.netx.hdf5.Network: ok"
NETX_NO_LAVA = "checked with dsqn's reader (stock netx not re-read: the lava extra is not installed)"
NETX_HETERO = ("checked with dsqn's reader (heterogeneous neurons: stock netx does not load CUBA_GROUPS layers; "
               "dsqn-deploy --backend sim builds their Lava graph)")


def verify_with_netx(path: Path) -> str:
    """Re-read the written file with our validating reader and, where the lava extra is installed and the file is
    one stock netx can load (no heterogeneous layers), with the stock netx loader (builds the Lava processes, runs
    nothing). Returns what checked it (one of NETX_OK, NETX_NO_LAVA, NETX_HETERO)."""
    net = read_netfile(path)
    if any(layer.heterogeneous for layer in net.layers):
        return NETX_HETERO
    if not lava_available():
        return NETX_NO_LAVA
    from dsqn.extras import import_lava_dl

    netx = import_lava_dl("netx")
    try:
        netx.hdf5.Network(net_config=str(path), input_message_bits=net.input_message_bits,
                          reset_interval=net.reset_interval, reset_offset=net.reset_offset)
    except Exception as exc:  # noqa: BLE001 - any failure of the stock loader is a failed export
        raise UserError(f"{path}: stock netx could not load the exported file ({exc.__class__.__name__}: {exc})") from None
    return NETX_OK


def format_table(rows: list[LayerRow]) -> str:
    hetero = any(r.groups for r in rows)
    head = f"{'layer':>5} {'kind':<8} {'shape':<14} {'weight range':<14} {'clipped':>7} {'vThMant':>11} {'iDecay':>10} {'vDecay':>10}"
    head += f" {'groups':>6}" if hetero else ""
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.index:>5} {r.kind:<8} {'x'.join(map(str, r.shape)):<14} {f'[{r.w_min}, {r.w_max}]':<14} "
            f"{r.clipped:>7} {r.vth_mant:>11} {r.i_decay:>10} {r.v_decay:>10}" + (f" {r.groups or '-':>6}" if hetero else "")
        )
    return "\n".join(lines)
