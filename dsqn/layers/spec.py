"""The architecture of a spiking Q-network or actor (``NetSpec``: layers, neuron parameters, readout, encoder unit),
everything needed to rebuild it from model.pt, and the conv geometry its synapse counts rest on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from dataclasses import replace as dataclasses_replace

import numpy as np

from dsqn.kernels import timing
from dsqn.kernels.fixed_point import (
    LoihiNeuron,
    NeuronParams,
    draw_neurons,
    group_neurons,
    quantize_threshold,
)
from dsqn.layers.readout import Readout

ARCH_VERSION = 1


@dataclass
class NetSpec:
    """Architecture and neuron parameters; everything needed to rebuild the network."""

    input_shape: list[int]
    """(C,) for vector observations (C = encoder channels) or (C, H, W) for images."""
    layers: list[dict]
    """Hidden layers, e.g. {"type": "dense", "out": 64} or {"type": "conv", "out": 32, "kernel": 8, "stride": 4}."""
    n_actions: int
    """readout neurons: one Q-value per action, or one per dimension of a continuous action."""
    timesteps: int = 8
    """Timesteps per inference (T); the network state is reset between inferences."""
    threshold: float = 1.0
    current_decay: float = 0.5
    voltage_decay: float = 0.5
    input_unit: int = 32
    """Payload value of one input unit (Encoder.unit): the first layer's threshold is multiplied by it."""
    q_scale: float = 1.0
    """Q = q_scale * (readout voltage / T); a positive constant, so it never changes the greedy action. For an
    actor (readout_kind 'action') the pre-activation of the action: a = tanh(q_scale * v / T) in [-1, 1]."""
    tau_grad: float = 1.0
    scale_grad: float = 1.0
    arch_version: int = ARCH_VERSION
    readout_kind: str = "q"
    """'q' (a DSQN) or 'action' (a spiking actor: dsqn.layers.readout)."""
    action_low: list[float] = field(default_factory=list)
    """'action' only: the environment's action bounds."""
    action_high: list[float] = field(default_factory=list)
    membrane_jitter: float = 0.0
    """Akl et al. 2023's heterogeneous neurons: each hidden neuron's current decay, voltage decay and threshold
    drawn once from N(mu, membrane_jitter * mu) around the layer's value (0 = one value per layer)."""
    param_groups: int = 0
    """with membrane_jitter: the drawn values quantized into at most this many (iDecay, vDecay, vThMant) groups
    per layer, one Loihi neuron process each (0 = every neuron keeps its own; only the emulator runs that)."""
    neuron_groups: list[dict] = field(default_factory=list)
    """the drawn integers per hidden layer ({"group": per-neuron index, "i_decay", "v_decay", "vth_mant": per
    group}); filled by :meth:`with_drawn_neurons`, stored in the checkpoint, written to model.net."""

    @property
    def n_layers(self) -> int:
        """Number of netx layers that hold neurons (hidden + readout)."""
        return len(self.layers) + 1

    def layer_params(self, i: int) -> NeuronParams:
        """Neuron parameters of hidden layer i (the first layer's threshold is in payload units)."""
        threshold = quantize_threshold(self.threshold) * (self.input_unit if i == 0 else 1)
        return NeuronParams(current_decay=self.current_decay, voltage_decay=self.voltage_decay, threshold=threshold)

    def layer_sizes(self) -> list[int]:
        """Neurons of each hidden layer."""
        shape = list(self.input_shape)
        sizes = []
        for layer in self.layers:
            if layer["type"] == "conv":
                k, st = int(layer["kernel"]), int(layer.get("stride", 1))
                shape = [int(layer["out"]), conv_out(shape[1], k, st), conv_out(shape[2], k, st)]
            else:
                shape = [int(layer["out"])]
            sizes.append(int(np.prod(shape)))
        return sizes

    def with_drawn_neurons(self, seed: int) -> NetSpec:
        """This spec with its heterogeneous neurons drawn (seeded: layer i from rng([seed, i])) and grouped; a
        homogeneous spec (membrane_jitter 0) is returned unchanged."""
        if self.membrane_jitter == 0 or self.neuron_groups:
            return self
        if any(layer["type"] != "dense" for layer in self.layers):
            raise ValueError("heterogeneous neurons (membrane_jitter > 0) need dense hidden layers; conv layers are not supported yet")
        groups = []
        for i, n in enumerate(self.layer_sizes()):
            where = f"layer {i}"
            drawn = draw_neurons(self.layer_params(i), n, self.membrane_jitter, np.random.default_rng([seed, i]), where)
            per_neuron = drawn.to_loihi(where)
            k = self.param_groups or n
            if k > n:
                raise ValueError(f"{where}: --param-groups {k} is larger than the layer ({n} neurons)")
            group, grouped = group_neurons(per_neuron, n, k, where)
            groups.append({"group": group.tolist(), "i_decay": grouped.i_decay.tolist(), "v_decay": grouped.v_decay.tolist(),
                           "vth_mant": grouped.vth_mant.tolist()})
        return dataclasses_replace(self, neuron_groups=groups)

    def layer_groups(self, i: int) -> tuple[np.ndarray, LoihiNeuron] | None:
        """Hidden layer i's (group index per neuron, the groups' integers), or None for a homogeneous layer."""
        if not self.neuron_groups:
            return None
        g = self.neuron_groups[i]
        return (np.asarray(g["group"], dtype=np.int64),
                LoihiNeuron(i_decay=np.asarray(g["i_decay"]), v_decay=np.asarray(g["v_decay"]), vth_mant=np.asarray(g["vth_mant"])))

    @property
    def readout(self) -> Readout:
        return Readout(kind=self.readout_kind, scale=self.q_scale, timesteps=self.timesteps, low=tuple(self.action_low),
                       high=tuple(self.action_high))

    def validate(self) -> None:
        """ValueError (one line, naming the layer and the value) for anything the chip cannot run."""
        timing.check_timesteps(self.timesteps, self.n_layers)
        for layer in self.layers:
            if layer.get("type") not in ("dense", "conv"):
                raise ValueError(f"unknown layer type in {layer}")
        quantize_threshold(self.threshold)
        for i in range(len(self.layers)):
            self.layer_params(i).to_loihi(f"layer {i}")
        self.readout  # noqa: B018 - validates q_scale
        if not (np.isfinite(self.membrane_jitter) and self.membrane_jitter >= 0):
            raise ValueError(f"membrane jitter {self.membrane_jitter} must be a non-negative number")
        if self.param_groups < 0:
            raise ValueError(f"param groups {self.param_groups} must not be negative")
        if self.neuron_groups:
            sizes = self.layer_sizes()
            if len(self.neuron_groups) != len(sizes):
                raise ValueError(f"neuron_groups has {len(self.neuron_groups)} layers, the network {len(sizes)}")
            for i, n in enumerate(sizes):
                group, grouped = self.layer_groups(i)  # type: ignore[misc]
                grouped.validate(f"layer {i}")
                k = grouped.i_decay.size
                if group.shape != (n,) or grouped.v_decay.size != k or grouped.vth_mant.size != k or \
                        (n and (group.min() < 0 or group.max() >= k)):
                    raise ValueError(f"layer {i}: neuron groups do not fit {n} neurons in {k} groups")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetSpec:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def conv_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _pair(x: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int | np.integer) else (int(x[0]), int(x[1]))


def conv_fanout(in_shape: list[int] | tuple[int, ...], out_channels: int, kernel: int | tuple[int, int],
                stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> np.ndarray:
    """Synapses leaving each input neuron (C, H, W flattened) of a conv layer: the output positions whose kernel
    covers it, times the output channels -- exact at borders and strides; padding taps are no synapses. The one
    count the training estimate (``SpikingQNet.fanouts``) and the emulator's counters (``hw_sim.counters``) share."""
    c, h, w = (int(v) for v in in_shape)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    oh, ow = conv_out(h, kh, sh, ph), conv_out(w, kw, sw, pw)
    count = np.zeros((h + 2 * ph, w + 2 * pw), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            count[i: i + oh * sh: sh, j: j + ow * sw: sw] += 1
    count = count[ph: ph + h, pw: pw + w]
    return np.broadcast_to(count * int(out_channels), (c, h, w)).reshape(-1).copy()
