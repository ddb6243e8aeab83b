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

from dsqn.encoding import Encoder
from dsqn.errors import UserError
from dsqn.files.fileio import atomic_write_bytes, check_input_file
from dsqn.kernels import timing
from dsqn.kernels.fixed_point import (
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_SCALE,
    NETX_DEFAULT_VTH_MANT,
    VTH_MANT_MAX,
    WEIGHT_INT_MAX,
    WEIGHT_INT_MIN,
    LoihiNeuron,
)
from dsqn.layers.readout import Readout

FORMAT_NAME = "dsqn-netx"
# 2: T, reset offset and readout written once (``timesteps``, ``reset_offset``, ``readout.{kind, scale}``);
#    the reset interval and the readout divisor follow from them (dsqn.kernels.timing, dsqn.layers.readout).
# 1: also wrote reset_interval, readout.q_scale/divisor and the training config; still read.
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
ATTR_FORMAT = "dsqn_format"
ATTR_VERSION = "dsqn_format_version"
ATTR_META = "dsqn_meta"  # JSON: env_id, timesteps, reset_offset, encoder, input_message_bits, readout, n_actions, ...
REQUIRED_META = ("env_id", "timesteps", "encoder", "readout", "n_actions", "input_shape", "reset_offset", "input_message_bits")
SUPPORTED_LAYERS = ("input", "dense", "conv", "flatten")
NEURON_KEYS = ("iDecay", "vDecay", "vThMant")
# Heterogeneous neurons (Akl et al. 2023, quantized into groups): ``neuron/type`` = CUBA_GROUPS, ``iDecay``,
# ``vDecay``, ``vThMant`` one value per group, ``group`` the group of every neuron (in the layer's neuron order),
# ``groupsVersion``. Stock netx knows no such neuron type and refuses the file (its get_neuron_params returns None);
# homogeneous layers stay CUBA with scalars, so files without heterogeneous layers load in stock netx unchanged.
GROUPED_NEURON_TYPE = "CUBA_GROUPS"
GROUPS_VERSION = 1


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
    meta: dict = {}
    if ATTR_META in f.attrs:
        version = f.attrs.get(ATTR_VERSION, -1)
        if not isinstance(version, (int, np.integer)) or int(version) not in READ_VERSIONS:
            raise UserError(f"{path}: {ATTR_VERSION}={version!r}, this toolchain reads versions {READ_VERSIONS}")
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
        flatten_next = False
        layers.append(layer)
        shape = layer.out_shape
    if not layers:
        raise UserError(f"{path}: no dense or conv layer")
    if meta:
        meta = _check_meta(path, meta, layers)
    return NetFile(path=path, layers=layers, meta=meta, input_shape=input_shape)


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


def write_netfile(path: Path, layer_writers: list, meta: dict) -> None:  # type: ignore[type-arg]
    """Write ``model.net`` atomically: ``layer/<i>`` groups filled by ``layer_writers[i](group)`` (the blocks'
    ``export_hdf5``) and the metadata in root attributes netx never reads."""

    def write(f: h5py.File) -> None:
        layers = f.create_group("layer")
        for i, writer in enumerate(layer_writers):
            writer(layers.create_group(str(i)))
        write_meta(f, meta)

    atomic_write_h5(path, write)
