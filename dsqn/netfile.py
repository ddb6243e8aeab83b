"""The ``model.net`` file format: a NetX HDF5 network plus this project's metadata.

The layer groups are exactly what lava-dl's blocks write and ``lava.lib.dl.netx.hdf5.Network`` reads
(``layer/<i>/{type, shape, weight, ..., neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}}``).
Our metadata lives in root attributes, which netx never reads. Key names are defined here only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from dsqn.errors import UserError
from dsqn.fixed_point import DECAY_SCALE, READOUT_VTH_MANT, VTH_MANT_MAX, WEIGHT_INT_MAX, WEIGHT_INT_MIN

FORMAT_NAME = "dsqn-netx"
FORMAT_VERSION = 1
ATTR_FORMAT = "dsqn_format"
ATTR_VERSION = "dsqn_format_version"
ATTR_META = "dsqn_meta"  # JSON: env_id, timesteps, encoder, readout, n_actions, source checkpoint hash
SUPPORTED_LAYERS = ("input", "dense", "conv", "flatten")
NEURON_KEYS = ("iDecay", "vDecay", "vThMant")


@dataclass
class Layer:
    """One neuron layer of a netx file in this project's (C, H, W) / (N,) convention."""

    index: int
    kind: str  # "dense" | "conv"
    weight: np.ndarray  # dense: (out, in); conv: (out, in, kH, kW) in slayer's orientation
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    i_decay: int
    v_decay: int
    vth_mant: int
    bias: np.ndarray | None = None  # bias_mant per neuron
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    flatten_before: bool = False

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.out_shape))


@dataclass
class NetFile:
    path: Path
    layers: list[Layer]
    meta: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()


def atomic_write_h5(path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    """Write an HDF5 file through a temporary file in the same folder and rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            writer(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_meta(f: h5py.File, meta: dict) -> None:
    f.attrs[ATTR_FORMAT] = FORMAT_NAME
    f.attrs[ATTR_VERSION] = FORMAT_VERSION
    f.attrs[ATTR_META] = json.dumps(meta, sort_keys=True)


def _scalar(group: h5py.Group, key: str, where: str) -> float:
    if key not in group:
        raise UserError(f"{where}: missing key '{key}'")
    arr = np.asarray(group[key][()])
    if arr.size != 1:
        raise UserError(f"{where}/{key}: expected a scalar, got shape {arr.shape}")
    val = arr.reshape(-1)[0]
    if isinstance(val, (bytes, np.bytes_)):
        raise UserError(f"{where}/{key}: expected a number, got a string")
    val = float(val)
    if not np.isfinite(val):
        raise UserError(f"{where}/{key}: value is not finite")
    return val


def _pair(group: h5py.Group, key: str, default: int) -> tuple[int, int]:
    if key not in group:
        return default, default
    arr = np.asarray(group[key][()]).reshape(-1)
    if arr.size == 1:
        return int(arr[0]), int(arr[0])
    # slayer writes (H, W) pairs; netx reverses them to its (x, y) order when it builds the process.
    return int(arr[0]), int(arr[1])


def _layer_type(group: h5py.Group, where: str) -> str:
    if "type" not in group:
        raise UserError(f"{where}: missing key 'type'")
    raw = np.asarray(group["type"][()]).reshape(-1)[0]
    return raw.decode("ascii", "replace") if isinstance(raw, (bytes, np.bytes_)) else str(raw)


def _int_array(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group:
        raise UserError(f"{where}: missing key '{key}'")
    arr = np.asarray(group[key][()])
    if arr.dtype.kind not in "iuf":
        raise UserError(f"{where}/{key}: expected numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise UserError(f"{where}/{key}: contains NaN or infinite values")
        if not np.all(arr == np.round(arr)):
            raise UserError(f"{where}/{key}: expected integers (Loihi fixed point), found fractions")
    return arr.astype(np.int64)


def read_netfile(path: str | Path, require_meta: bool = True, input_shape: tuple[int, ...] | None = None) -> NetFile:
    """Read and validate a NetX HDF5 file; every problem is a one-line UserError naming layer and key.

    Files written by lava-dl directly carry no metadata (``require_meta=False``); a conv-first file
    without an input layer then needs ``input_shape`` (C, H, W), as netx needs it."""
    path = Path(path)
    input_shape_arg = input_shape
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc.__class__.__name__})") from None
    with f:
        meta: dict = {}
        if ATTR_META in f.attrs:
            if int(f.attrs.get(ATTR_VERSION, -1)) != FORMAT_VERSION:
                raise UserError(
                    f"{path}: {ATTR_VERSION}={f.attrs.get(ATTR_VERSION)!r}, this toolchain reads version {FORMAT_VERSION}"
                )
            try:
                meta = json.loads(f.attrs[ATTR_META])
            except (TypeError, ValueError):
                raise UserError(f"{path}: attribute {ATTR_META} is not valid JSON") from None
        elif require_meta:
            raise UserError(f"{path}: not a dsqn-export file (attribute '{ATTR_META}' missing)")
        if "layer" not in f:
            raise UserError(f"{path}: missing group 'layer'")
        group = f["layer"]
        try:
            indices = sorted(int(k) for k in group.keys())
        except ValueError:
            raise UserError(f"{path}: layer names must be integers 0..N-1") from None
        if indices != list(range(len(indices))) or not indices:
            raise UserError(f"{path}: layers must be numbered 0..N-1 without gaps, found {indices}")
        layers: list[Layer] = []
        input_shape: tuple[int, ...] = ()
        shape: tuple[int, ...] | None = None
        flatten_next = False
        for i in indices:
            g = group[str(i)]
            where = f"layer {i}"
            kind = _layer_type(g, where)
            if kind not in SUPPORTED_LAYERS:
                raise UserError(f"{where}: unsupported layer type '{kind}' (supported: {', '.join(SUPPORTED_LAYERS)})")
            if kind == "input":
                if "neuron" in g:
                    raise UserError(f"{where}: input layers with neurons are not supported")
                # Stored as (C, H, W) like slayer's blocks write it; netx reverses it to (W, H, C).
                shp = tuple(int(s) for s in _int_array(g, "shape", where).reshape(-1))
                input_shape = shp
                shape = shp
                continue
            if kind == "flatten":
                flatten_next = True
                continue
            if shape is None:
                if meta.get("input_shape"):
                    shape = tuple(int(s) for s in meta["input_shape"])
                elif input_shape_arg is not None:
                    shape = tuple(int(s) for s in input_shape_arg)
                elif kind == "dense" and "inFeatures" in g:
                    shape = (int(_scalar(g, "inFeatures", where)),)
                else:
                    raise UserError(f"{where}: input shape unknown (no input layer before it; pass input_shape)")
                input_shape = shape
            weight = _int_array(g, "weight", where)
            if weight.min(initial=0) < WEIGHT_INT_MIN or weight.max(initial=0) > WEIGHT_INT_MAX:
                raise UserError(
                    f"{where}/weight: values outside the 8-bit range [{WEIGHT_INT_MIN}, {WEIGHT_INT_MAX}] "
                    f"(found {weight.min()}..{weight.max()})"
                )
            if "neuron" in g:
                n = g["neuron"]
                ntype = _layer_type(n, f"{where}/neuron")
                if ntype != "CUBA":
                    raise UserError(f"{where}/neuron/type: '{ntype}' is not supported (only CUBA)")
                i_decay = int(_scalar(n, "iDecay", f"{where}/neuron"))
                v_decay = int(_scalar(n, "vDecay", f"{where}/neuron"))
                vth = int(_scalar(n, "vThMant", f"{where}/neuron"))
            else:  # netx's default non-leaky integrator
                i_decay, v_decay, vth = 0, DECAY_SCALE, READOUT_VTH_MANT
            for key, val in (("iDecay", i_decay), ("vDecay", v_decay)):
                if not 0 <= val <= DECAY_SCALE:
                    raise UserError(f"{where}/neuron/{key}: {val} outside 0..{DECAY_SCALE}")
            if not 0 <= vth <= max(VTH_MANT_MAX, READOUT_VTH_MANT):
                raise UserError(f"{where}/neuron/vThMant: {vth} outside 0..{READOUT_VTH_MANT}")
            in_shape = shape
            if kind == "dense":
                if flatten_next or len(in_shape) != 1:
                    in_shape_flat = (int(np.prod(in_shape)),)
                    flatten_before = True
                else:
                    in_shape_flat, flatten_before = in_shape, False
                out_n = int(np.prod(_int_array(g, "shape", where)))
                if weight.ndim != 2:
                    weight = weight.reshape(out_n, -1)
                if weight.shape != (out_n, in_shape_flat[0]):
                    raise UserError(
                        f"{where}/weight: shape {weight.shape} inconsistent with {in_shape_flat[0]} inputs and {out_n} neurons"
                    )
                out_shape: tuple[int, ...] = (out_n,)
                layer = Layer(i, "dense", weight, in_shape, out_shape, i_decay, v_decay, vth, flatten_before=flatten_before)
            else:
                if len(in_shape) != 3:
                    raise UserError(f"{where}: conv layer needs a (C, H, W) input, got {in_shape}")
                w = weight.reshape(weight.shape[:4])
                stride = _pair(g, "stride", 1)
                padding = _pair(g, "padding", 0)
                if "groups" in g and int(_scalar(g, "groups", where)) != 1:
                    raise UserError(f"{where}/groups: only groups=1 is supported")
                if "dilation" in g and _pair(g, "dilation", 1) != (1, 1):
                    raise UserError(f"{where}/dilation: only dilation 1 is supported")
                if w.shape[1] != in_shape[0]:
                    raise UserError(f"{where}/weight: {w.shape[1]} input channels, previous layer has {in_shape[0]}")
                oh = (in_shape[1] + 2 * padding[0] - w.shape[2]) // stride[0] + 1
                ow = (in_shape[2] + 2 * padding[1] - w.shape[3]) // stride[1] + 1
                out_shape = (int(w.shape[0]), oh, ow)
                declared = tuple(int(s) for s in _int_array(g, "shape", where).reshape(-1))
                if declared != out_shape:
                    raise UserError(f"{where}/shape: declared {declared} but weights and input give {out_shape}")
                layer = Layer(i, "conv", w, in_shape, out_shape, i_decay, v_decay, vth, stride=stride, padding=padding)
            if "bias" in g:
                bias = _int_array(g, "bias", where).reshape(-1)
                if bias.size not in (1, layer.n_neurons, layer.out_shape[0]):
                    raise UserError(f"{where}/bias: {bias.size} values for {layer.n_neurons} neurons")
                layer.bias = bias
            flatten_next = False
            layers.append(layer)
            shape = layer.out_shape
        if not layers:
            raise UserError(f"{path}: no dense or conv layer")
        return NetFile(path=path, layers=layers, meta=meta, input_shape=input_shape)
