"""Reading ``model.net`` (the format: ``netfile.py``): every problem a one-line UserError naming the file, the layer
and the key; a file that may crash libhdf5 is read in a forked child first (``crash_safe``)."""


import json
from pathlib import Path

import h5py
import numpy as np

from dsqn.encoding import Encoder
from dsqn.errors import UserError
from dsqn.files.fileio import check_input_file
from dsqn.files.format import (
    ATTR_META,
    ATTR_VERSION,
    GROUPED_NEURON_TYPE,
    GROUPS_VERSION,
    NEURON_KEYS,
    READ_VERSIONS,
    REQUIRED_META,
    SUPPORTED_LAYERS,
)
from dsqn.files.netfile import Layer, NetFile, check_read_in_child
from dsqn.kernels.fixed_point import (
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_SCALE,
    NETX_DEFAULT_VTH_MANT,
    VTH_MANT_MAX,
    WEIGHT_INT_MAX,
    WEIGHT_INT_MIN,
)
from dsqn.layers.readout import Readout


def read_netfile(path: str | Path, require_meta: bool = True, input_shape: tuple[int, ...] | None = None,
                 crash_safe: bool = False) -> NetFile:
    """Read and validate a NetX HDF5 file; every problem is a one-line UserError naming layer and key.

    Files written by lava-dl directly carry no metadata (``require_meta=False``); a conv-first file
    without an input layer then needs ``input_shape`` (C, H, W), as netx needs it. ``crash_safe``: first read
    the file in a forked child, so that a file that crashes the HDF5 library is a UserError too (the console
    scripts read files from the user this way; a fork costs some milliseconds)."""
    path = check_input_file(path)
    if crash_safe:
        check_read_in_child(path, lambda: _read_netfile(path, require_meta, input_shape))
    return _read_netfile(path, require_meta, input_shape)


def _read_netfile(path: Path, require_meta: bool, input_shape: tuple[int, ...] | None) -> NetFile:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        try:
            with open(path, "rb") as raw:
                head = raw.read(4)
        except OSError:
            head = b""
        hint = "; it looks like a PyTorch checkpoint: export it with dsqn-export first" if head == b"PK\x03\x04" else ""
        raise UserError(f"{path}: not a readable HDF5 file ({exc.__class__.__name__}){hint}") from None
    try:
        with f:
            return _read_layers(f, path, require_meta, input_shape)
    except UserError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise UserError(f"{path}: {exc}") from None  # name the file as well as the layer and key
    except Exception as exc:  # noqa: BLE001 - a damaged file fails inside h5py in many ways
        msg = " ".join(str(exc).split())[:120]
        raise UserError(f"{path}: damaged or malformed HDF5 file ({exc.__class__.__name__}: {msg})") from None


def _read_layers(f: h5py.File, path: Path, require_meta: bool, input_shape_arg: tuple[int, ...] | None) -> NetFile:
    meta = _read_meta(f, path, require_meta)
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
            input_shape = shape = tuple(int(s) for s in _int_array(g, "shape", where).reshape(-1))
            continue
        if kind == "flatten":
            flatten_next = True
            continue
        if shape is None:
            input_shape = shape = _first_input_shape(g, kind, where, meta, input_shape_arg)
        layer = _read_layer(g, i, kind, shape, flatten_next, where)
        flatten_next = False
        layers.append(layer)
        shape = layer.out_shape
    if not layers:
        raise UserError(f"{path}: no dense or conv layer")
    if meta:
        meta = _check_meta(path, meta, layers)
    return NetFile(path=path, layers=layers, meta=meta, input_shape=input_shape)


def _read_meta(f: h5py.File, path: Path, require_meta: bool) -> dict:
    """The deployment metadata (checked later against the layers), or {} for a file of lava-dl's own."""
    if ATTR_META not in f.attrs:
        if require_meta:
            raise UserError(f"{path}: not a dsqn-export file (attribute '{ATTR_META}' missing)")
        return {}
    version = f.attrs.get(ATTR_VERSION, -1)
    if not isinstance(version, (int, np.integer)) or int(version) not in READ_VERSIONS:
        raise UserError(f"{path}: {ATTR_VERSION}={version!r}, this toolchain reads versions {READ_VERSIONS}")
    try:
        return json.loads(f.attrs[ATTR_META])
    except (TypeError, ValueError):
        raise UserError(f"{path}: attribute {ATTR_META} is not valid JSON") from None


def _first_input_shape(g: h5py.Group, kind: str, where: str, meta: dict, input_shape_arg: tuple[int, ...] | None) -> tuple[int, ...]:
    """The input shape of a network without an input layer: the metadata's, the caller's, or a dense layer's own."""
    if meta.get("input_shape"):
        return tuple(int(s) for s in meta["input_shape"])
    if input_shape_arg is not None:
        return tuple(int(s) for s in input_shape_arg)
    if kind == "dense" and "inFeatures" in g:
        return (int(_scalar(g, "inFeatures", where)),)
    raise UserError(f"{where}: input shape unknown (no input layer before it; pass input_shape)")


def _read_layer(g: h5py.Group, i: int, kind: str, in_shape: tuple[int, ...], flatten_next: bool, where: str) -> Layer:
    """One dense or conv layer: 8-bit weights, its neuron group (CUBA or CUBA_GROUPS), its bias; all checked."""
    weight = _int_array(g, "weight", where)
    if weight.min(initial=0) < WEIGHT_INT_MIN or weight.max(initial=0) > WEIGHT_INT_MAX:
        raise UserError(f"{where}/weight: values outside the 8-bit range [{WEIGHT_INT_MIN}, {WEIGHT_INT_MAX}] "
                        f"(found {weight.min()}..{weight.max()})")
    i_decay, v_decay, vth, groups = _read_neuron(g, where)
    if kind == "dense":
        layer = _dense_layer(g, i, weight, in_shape, flatten_next, (i_decay, v_decay, vth), where)
    else:
        layer = _conv_layer(g, i, weight, in_shape, (i_decay, v_decay, vth), where)
    if groups is not None:
        if layer.kind != "dense":
            raise UserError(f"{where}/neuron: {GROUPED_NEURON_TYPE} is supported on dense layers only")
        if groups.size != layer.n_neurons:
            raise UserError(f"{where}/neuron/group: {groups.size} entries for {layer.n_neurons} neurons")
        layer.group = groups
    if "bias" in g:
        bias = _int_array(g, "bias", where).reshape(-1)
        if bias.size and (bias.min() < BIAS_MANT_MIN or bias.max() > BIAS_MANT_MAX):
            raise UserError(f"{where}/bias: mantissa outside the 13-bit range {BIAS_MANT_MIN}..{BIAS_MANT_MAX} "
                            f"(found {bias.min()}..{bias.max()})")
        if bias.size not in (1, layer.n_neurons, layer.out_shape[0]):
            raise UserError(f"{where}/bias: {bias.size} values for {layer.n_neurons} neurons")
        layer.bias = bias
    return layer


def _read_neuron(g: h5py.Group, where: str):  # type: ignore[no-untyped-def]
    """(iDecay, vDecay, vThMant, groups or None): scalars for CUBA, per-group arrays for CUBA_GROUPS, netx's default
    non-leaky integrator without a neuron group; every value in its Loihi field."""
    groups: np.ndarray | None = None
    if "neuron" in g:
        n = g["neuron"]
        ntype = _layer_type(n, f"{where}/neuron")
        if ntype == GROUPED_NEURON_TYPE:
            i_decay, v_decay, vth, groups = _read_groups(n, f"{where}/neuron")
        elif ntype != "CUBA":
            raise UserError(f"{where}/neuron/type: '{ntype}' is not supported (CUBA, {GROUPED_NEURON_TYPE})")
        else:
            i_decay = _int_scalar(n, "iDecay", f"{where}/neuron")
            v_decay = _int_scalar(n, "vDecay", f"{where}/neuron")
            vth = _int_scalar(n, "vThMant", f"{where}/neuron")
    else:  # netx's default non-leaky integrator
        i_decay, v_decay, vth = 0, DECAY_SCALE, NETX_DEFAULT_VTH_MANT
    for key, val in (("iDecay", i_decay), ("vDecay", v_decay)):
        bad = np.asarray(val)[(np.asarray(val) < 0) | (np.asarray(val) > DECAY_SCALE)]
        if bad.size:
            raise UserError(f"{where}/neuron/{key}: {int(bad.reshape(-1)[0])} outside 0..{DECAY_SCALE}")
    # format-1 files (and netx's own default integrator) hold 2**17, one above the 17-bit field
    bad = np.asarray(vth)[(np.asarray(vth) < 0) | (np.asarray(vth) > max(VTH_MANT_MAX, NETX_DEFAULT_VTH_MANT))]
    if bad.size:
        raise UserError(f"{where}/neuron/vThMant: {int(bad.reshape(-1)[0])} outside 0..{VTH_MANT_MAX}")
    return i_decay, v_decay, vth, groups


def _dense_layer(g: h5py.Group, i: int, weight: np.ndarray, in_shape: tuple[int, ...], flatten_next: bool,
                 neuron: tuple, where: str) -> Layer:
    if flatten_next or len(in_shape) != 1:
        in_shape_flat, flatten_before = (int(np.prod(in_shape)),), True
    else:
        in_shape_flat, flatten_before = in_shape, False
    out_n = int(np.prod(_int_array(g, "shape", where)))
    if weight.ndim != 2:
        weight = weight.reshape(out_n, -1)
    if weight.shape != (out_n, in_shape_flat[0]):
        raise UserError(f"{where}/weight: shape {weight.shape} inconsistent with {in_shape_flat[0]} inputs and {out_n} neurons")
    return Layer(i, "dense", weight, in_shape, (out_n,), *neuron, flatten_before=flatten_before)


def _conv_layer(g: h5py.Group, i: int, weight: np.ndarray, in_shape: tuple[int, ...], neuron: tuple, where: str) -> Layer:
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
    return Layer(i, "conv", w, in_shape, out_shape, *neuron, stride=stride, padding=padding)


def _read_groups(n: h5py.Group, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A CUBA_GROUPS neuron group: (iDecay, vDecay, vThMant per group, group per neuron), checked (one-line errors)."""
    if "groupsVersion" not in n:
        raise UserError(f"{where}/groupsVersion: missing (a {GROUPED_NEURON_TYPE} neuron group needs it)")
    version = _int_scalar(n, "groupsVersion", where)
    if version != GROUPS_VERSION:
        raise UserError(f"{where}/groupsVersion: {version}, this toolchain reads {GROUPS_VERSION}")
    arrays = [_int_array(n, key, where).reshape(-1).astype(np.int64) for key in (*NEURON_KEYS, "group")]
    k = arrays[0].size
    for key, arr in zip(NEURON_KEYS, arrays[:3]):
        if arr.size != k or k == 0:
            raise UserError(f"{where}/{key}: {arr.size} values, expected one per group ({k})")
    group = arrays[3]
    if group.size and (group.min() < 0 or group.max() >= k):
        raise UserError(f"{where}/group: group index {int(group.min() if group.min() < 0 else group.max())} outside 0..{k - 1}")
    return arrays[0], arrays[1], arrays[2], group


def _check_meta(path: Path, meta: dict, layers: list[Layer]) -> dict:
    """Validate the deployment metadata (one-line errors) and bring format-1 metadata to format 2."""
    if not isinstance(meta, dict):
        raise UserError(f"{path}: attribute {ATTR_META} is not a JSON object")
    meta = dict(meta)
    if isinstance(meta.get("readout"), dict) and "scale" not in meta["readout"] and "q_scale" in meta["readout"]:
        meta["readout"] = {"kind": "q", "scale": meta["readout"]["q_scale"]}  # format 1
    for key in REQUIRED_META:
        if key not in meta:
            raise UserError(f"{path}: metadata is missing '{key}'")
    T = meta["timesteps"]
    if isinstance(T, bool) or not isinstance(T, int) or T <= len(layers):
        raise UserError(f"{path}: metadata timesteps={T!r} must be an integer above the number of layers ({len(layers)})")
    off = meta["reset_offset"]
    if isinstance(off, bool) or not isinstance(off, int) or not 0 <= off < T:
        raise UserError(f"{path}: metadata reset_offset={off!r} must be an integer in 0..{T - 1}")
    bits = meta["input_message_bits"]
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 24:
        raise UserError(f"{path}: metadata input_message_bits={bits!r} must be an integer in 1..24")
    n_actions = meta["n_actions"]
    if isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions != layers[-1].n_neurons:
        raise UserError(f"{path}: metadata n_actions={n_actions!r} but the last layer has {layers[-1].n_neurons} neurons")
    try:
        readout = Readout.from_dict(meta["readout"], T)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"{path}: metadata readout: {' '.join(str(exc).split())[:200]}") from None
    if readout.kind == "action" and len(readout.low) != n_actions:
        raise UserError(f"{path}: metadata readout has bounds for {len(readout.low)} action dimensions, the last layer "
                        f"has {n_actions} neurons")
    if not isinstance(meta["env_id"], str) or not meta["env_id"]:
        raise UserError(f"{path}: metadata env_id={meta['env_id']!r} is not an environment id")
    try:
        enc = Encoder.from_dict(meta["encoder"])
        if not all(np.isfinite(enc.obs_scale)):
            raise ValueError(f"obs_scale {list(enc.obs_scale)} is not finite")
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise UserError(f"{path}: metadata encoder: {' '.join(str(exc).split())[:160]}") from None
    shape = meta["input_shape"]
    if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise UserError(f"{path}: metadata input_shape={shape!r} is not a list of positive integers")
    if tuple(shape) != tuple(layers[0].in_shape):
        raise UserError(f"{path}: metadata input_shape={shape} but the network's input is {list(layers[0].in_shape)}")
    return meta


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


def _int_scalar(group: h5py.Group, key: str, where: str) -> int:
    val = _scalar(group, key, where)
    if val != round(val):
        raise UserError(f"{where}/{key}: {val} is not an integer (Loihi fixed point)")
    return int(val)


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
        if arr.size and np.abs(arr).max() >= 2.0**62:
            raise UserError(f"{where}/{key}: values far outside any Loihi field (found {np.abs(arr).max():.3g})")
    elif arr.dtype.kind == "u" and arr.size and arr.max() >= 2**62:
        raise UserError(f"{where}/{key}: values far outside any Loihi field (found {arr.max()})")
    return arr.astype(np.int64)
