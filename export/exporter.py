"""Write a trained SpikingQNet as a NetX HDF5 file that stock netx loads, plus deployment metadata."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from dsqn import __version__
from dsqn.encoding import Encoder
from dsqn.errors import UserError
from dsqn.fixed_point import DECAY_SCALE, READOUT_VTH_MANT, STATE_SCALE, WEIGHT_INT_MAX, WEIGHT_INT_MIN, WEIGHT_SCALE
from dsqn.netfile import atomic_write_h5, read_netfile, write_meta
from dsqn.train.model import NetSpec, SpikingQNet

RESET_OFFSET = 1  # input is presented from the first step of each interval (see train/model.py)


@dataclass
class LayerRow:
    index: int
    kind: str
    shape: tuple[int, ...]
    w_min: int
    w_max: int
    clipped: int
    vth_mant: int
    i_decay: int
    v_decay: int


def _clipped_count(weight: torch.Tensor) -> int:
    """Weights whose 8-bit rounding fell outside [-256, 254] and were clipped by quantize_8bit."""
    raw = torch.round(weight.detach().double() * WEIGHT_SCALE / 2.0) * 2.0
    return int(((raw < WEIGHT_INT_MIN) | (raw > WEIGHT_INT_MAX)).sum())


def network_meta(spec: NetSpec, encoder: Encoder, env_id: str, source_sha256: str, extra: dict) -> dict:
    return {
        "toolchain_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "env_id": env_id,
        "timesteps": spec.timesteps,
        "n_actions": spec.n_actions,
        "input_shape": list(spec.input_shape),
        "encoder": encoder.to_dict(),
        "input_message_bits": encoder.payload_bits,
        "reset_interval": spec.timesteps,
        "reset_offset": RESET_OFFSET,
        "readout": {
            "layer": spec.n_layers - 1,
            "state": "v",
            "q_scale": spec.q_scale,
            "divisor": spec.timesteps * STATE_SCALE,
            "formula": "Q = q_scale * v / (timesteps * 4096), v read after the last step of the inference",
        },
        "source_checkpoint_sha256": source_sha256,
        **extra,
    }


def export_model(model: SpikingQNet, encoder: Encoder, out: Path, meta: dict) -> list[LayerRow]:
    """Write ``out`` atomically and return the per-layer table. The model is not modified."""
    spec = model.spec
    rows: list[LayerRow] = []
    with torch.no_grad():
        model(torch.zeros(1, *spec.input_shape))  # slayer learns neuron shapes lazily

    def write(f: h5py.File) -> None:
        layers = f.create_group("layer")
        g = layers.create_group("0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g.create_dataset("shape", data=np.array(spec.input_shape))
        idx = 1
        neuron_idx = 0
        for block in model.blocks:
            g = layers.create_group(str(idx))
            block.export_hdf5(g)  # lava-dl's own writer for CUBA blocks and flatten
            if "weight" in g:
                w = np.asarray(g["weight"][()])
                rows.append(
                    LayerRow(neuron_idx, str(np.asarray(g["type"][()]).reshape(-1)[0].decode()), tuple(int(s) for s in np.asarray(g["shape"][()]).reshape(-1)),
                             int(w.min()), int(w.max()), _clipped_count(block.synapse.weight),
                             int(g["neuron/vThMant"][()]), int(g["neuron/iDecay"][()]), int(g["neuron/vDecay"][()]))
                )
                neuron_idx += 1
            idx += 1
        syn = model.readout.synapse
        w = syn.pre_hook_fx(syn.weight, descale=True).reshape(syn.weight.shape[:2]).detach().cpu().numpy()
        bias = np.round(model.quantized_bias().detach().cpu().numpy() * WEIGHT_SCALE).astype(np.int32)
        g = layers.create_group(str(idx))
        g.create_dataset("type", (1,), "S10", [b"dense"])
        g.create_dataset("shape", data=np.array([spec.n_actions]))
        g.create_dataset("inFeatures", data=w.shape[1])
        g.create_dataset("outFeatures", data=w.shape[0])
        g.create_dataset("weight", data=w)
        g.create_dataset("bias", data=bias)
        # Non-spiking accumulator: u = input of this step, v integrates u (saturating, never spikes).
        for key, value in {"type": "CUBA", "iDecay": DECAY_SCALE, "vDecay": 0, "vThMant": READOUT_VTH_MANT,
                           "refDelay": 1, "gradedSpike": False}.items():
            g.create_dataset(f"neuron/{key}", data=value)
        rows.append(LayerRow(neuron_idx, "readout", (spec.n_actions,), int(w.min()), int(w.max()),
                             _clipped_count(syn.weight), READOUT_VTH_MANT, DECAY_SCALE, 0))
        write_meta(f, meta)

    atomic_write_h5(out, write)
    return rows


def verify_with_netx(path: Path, meta: dict) -> str:
    """Re-read the written file with the stock netx loader (builds the Lava processes, runs nothing)."""
    from lava.lib.dl import netx

    try:
        net = netx.hdf5.Network(
            net_config=str(path),
            input_message_bits=int(meta["input_message_bits"]),
            reset_interval=int(meta["reset_interval"]),
            reset_offset=int(meta["reset_offset"]),
        )
    except Exception as exc:  # noqa: BLE001 - any failure of the stock loader is a failed export
        raise UserError(f"{path}: stock netx could not load the exported file ({exc.__class__.__name__}: {exc})") from None
    read_netfile(path)  # our own reader validates the same file
    return str(net)


def format_table(rows: list[LayerRow]) -> str:
    head = f"{'layer':>5} {'kind':<8} {'shape':<14} {'weight range':<14} {'clipped':>7} {'vThMant':>8} {'iDecay':>6} {'vDecay':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.index:>5} {r.kind:<8} {'x'.join(map(str, r.shape)):<14} {f'[{r.w_min}, {r.w_max}]':<14} "
            f"{r.clipped:>7} {r.vth_mant:>8} {r.i_decay:>6} {r.v_decay:>6}"
        )
    return "\n".join(lines)
