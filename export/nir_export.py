"""A trained network as a NIR graph (Neuromorphic Intermediate Representation, ``nir`` 1.0): the mapping, once.

``dsqn-export model.pt --format nir`` writes ``model.nir`` with :func:`nir.write` (HDF5). snnTorch, Norse, Rockpool,
Sinabs, SpiNNaker2, Xylo, ... read it; lava-dl never merged a NIR export (lava-dl PR #218).

Graph (dense network; node names are the keys in ``graph.nodes``)::

    input --> layer0_synapse --> layer0_delay --> layer0_neuron --> layer1_synapse --> ... --> layerK_neuron
          \\                                                                                      |
           `--> readout_bias --> readout_bias_delay --.                               readout_synapse
                                                       v                                          v
                                             readout_neuron  <----------------------------- readout_delay
                                                       |
                                                    output

* ``input`` (C,): the encoder's integer graded-spike payloads (``dsqn.encoding.Encoder``, stored in the metadata),
  as floats, presented at every step of an inference.
* ``layer<i>_synapse``: ``nir.Linear`` (dense; weight (out, in)) or ``nir.Conv2d`` (weight (out, in, kH, kW),
  stride, padding, zero bias), the 8-bit weights in float weight units ``w_int / 64``
  (``dsqn.layers.cuba._Synapse.quantized``: even integers in [-256, 254] over ``WEIGHT_SCALE`` 64); a ``nir.Flatten``
  (start_dim 0: NIR shapes carry no batch dimension) follows the last conv layer.
* ``layer<i>_delay`` / ``readout_delay``: ``nir.Delay`` of one step (``delay = dt`` per neuron). **Every synapse
  delays by one step**, as Lava's Dense/Conv do (``dsqn.kernels.timing``: a synapse sends on step t what it accumulated on
  step t - 1), so the input reaches layer i on step i + 1 and the readout on step L (L = hidden layers + 1).
* ``layer<i>_neuron``: ``nir.CubaLIF`` with one value per neuron in every parameter array (shape = the layer's
  neuron shape; the values are per layer today).
* ``readout_neuron``: the non-spiking readout (``dsqn.kernels.fixed_point.readout_neuron``): a CubaLIF whose current keeps
  nothing of the previous step (iDecay 4096: ``u`` = this step's input), whose voltage never leaks (vDecay 0) and
  whose threshold is the largest vThMant (it never fires unless |v| reaches 2**23 - 64, where the chip fires too).
  The policy's output is its **voltage** ``v`` after the last step, not its spikes (``output`` carries the spikes
  because NIR outputs are node outputs): ``Q = scale * v / T`` with ``v`` in NIR units (weight units), i.e.
  ``dsqn.layers.readout.Readout.decode``'s ``scale * v_state / (T * 4096)`` with Loihi's state ``v_state = 4096 v``.
* ``readout_bias``: the readout's bias (``bias_mant / 64`` per step) as a ``nir.Affine`` with zero weights from the
  input, then ``readout_bias_delay`` of L steps. On the chip the readout is reset on step L (netx's reset phase,
  ``dsqn.kernels.timing.reset_step``), so its bias counts from step L, with its first input; the L-step delay gives the
  graph that timing literally.

One inference: start every node from zero state, present the payload on steps 0 .. T-1, read ``readout_neuron``'s
voltage after step T - 1 (it has integrated T - L steps). A consumer without ``nir.Delay`` (snnTorch 1.0 has none)
removes the delays with :func:`without_delays`: every input of every node then starts on the same step, so the
delay-free graph run for ``T - L`` steps ends in the same state (every layer's trajectory is shifted by a constant
number of steps; :func:`without_delays` checks that shift is consistent). Both counts are in the metadata.

Mapping (dt = :data:`DT` = 1e-4 s per Loihi timestep; NIR's equations under forward Euler at dt)
------------------------------------------------------------------------------------------------------
NIR's CubaLIF: ``tau_syn dI/dt = -I + w_in S``, ``tau_mem dv/dt = (v_leak - v) + r I``, spike when
``v > v_threshold``, then ``v = v_reset``. Forward Euler at dt::

    I[t] = (1 - dt/tau_syn) I[t-1] + (dt/tau_syn) w_in S[t]
    v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) (v_leak + r I[t]);   z = v[t] > v_threshold;   v[t] = v_reset if z

Loihi's CUBA-LIF (``dsqn.kernels.neuron``; integers, state units of 1/4096 weight unit)::

    u <- u (4096 - iDecay) / 4096 + a          v <- v (4096 - vDecay) / 4096 + u + bias
    spike when v > vThMant << 6, then v = 0 (u is not reset)

match term by term with ``I = u / 4096`` and ``v_nir = v / 4096`` (weight units), with d_u = iDecay / 4096,
d_v = vDecay / 4096, threshold th = vThMant / 64 and bias b = (bias_mant << 6) / 4096 per step
(``dsqn.kernels.fixed_point.LoihiNeuron.to_float``)::

    tau_syn = dt / d_u             w_in = 1 / d_u     (so the input enters I unscaled: (dt/tau_syn) w_in = 1)
    tau_mem = dt / d_v             r    = 1 / d_v     (so I enters v unscaled:        (dt/tau_mem) r    = 1)
    v_leak  = b / d_v              v_threshold = th   v_reset = 0
    weights = w_int / 64 (float weight units); the first layer's threshold is in payload units (th * encoder unit)

A decay of 0 (no leak: the readout's vDecay, any iDecay or vDecay of 0) has no finite ``dt / 0``: it is written as
``tau = dt * 2**60`` with ``w_in`` (or ``r``) ``= 2**60``: then ``dt / tau`` is exactly 2**-60 (powers of two), the
kept fraction ``1 - 2**-60`` rounds to exactly 1 in float64 and float32, and the input still enters with factor
exactly 1 -- no infinities for a consumer to multiply by zero. These are the constants of NIR's own equations under
forward Euler at dt, which is what snnTorch's importer does (``alpha = 1 - dt/tau_syn``, ``beta = 1 - dt/tau_mem``,
dt = 1e-4 fixed in ``snntorch/import_nir.py``; it requires ``r = tau_mem / dt`` and ``v_leak = 0``, both true here).
A consumer that integrates exactly (``exp(-dt/tau)`` per step) keeps ``exp(-d)`` instead of ``1 - d`` and so differs
from the chip; it should use the metadata's ``dt`` with forward Euler, or recompute ``tau = -dt / ln(1 - d)``.

What float cannot reproduce: Loihi truncates each decay product toward zero in integer state units
(``sign(u) (|u| keep) >> 12``), wraps u at 24 bits and saturates v; a float consumer rounds instead. The action
agreement this leaves is measured by ``python -m dsqn.export.nir_check model.pt`` (README, "NIR export").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dsqn.encoding import Encoder
from dsqn.errors import UserError
from dsqn.kernels import timing
from dsqn.kernels.fixed_point import WEIGHT_SCALE, LoihiNeuron, NeuronParams
from dsqn.layers.cuba import Conv, Flatten
from dsqn.layers.qnet import SpikingQNet

NIR_FORMAT = "dsqn-nir"
NIR_FORMAT_VERSION = 1
DT = 1e-4
"""Seconds per Loihi timestep in the NIR graph (snnTorch's importer assumes dt = 1e-4)."""
NO_LEAK = float(2 ** 60)
"""tau / dt (and w_in or r) written for a decay of 0: see the module docstring."""
READOUT_NODE = "readout_neuron"


def _nir():  # type: ignore[no-untyped-def]
    from dsqn.extras import require

    require("NIR export", "nir", "nir")
    import nir

    return nir


def cuba_lif_params(neuron: LoihiNeuron, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """NIR CubaLIF parameters (float64 arrays of ``shape``, one value per neuron) of a Loihi neuron group."""
    p: NeuronParams = neuron.to_float()

    def per_neuron(x: object) -> np.ndarray:  # a layer's scalar, or heterogeneous neurons' flat (n,) array
        a = np.asarray(x, dtype=np.float64)
        return a.reshape(shape) if a.size == int(np.prod(shape)) and a.ndim else np.broadcast_to(a, shape)

    d_u, d_v = per_neuron(p.current_decay), per_neuron(p.voltage_decay)
    with np.errstate(divide="ignore"):
        gain_u = np.where(d_u > 0, 1.0 / np.where(d_u > 0, d_u, 1.0), NO_LEAK)
        gain_v = np.where(d_v > 0, 1.0 / np.where(d_v > 0, d_v, 1.0), NO_LEAK)
    bias = per_neuron(p.bias)
    return {
        "tau_syn": DT * gain_u, "w_in": gain_u.copy(),
        "tau_mem": DT * gain_v, "r": gain_v.copy(),
        "v_leak": bias * gain_v,
        "v_threshold": per_neuron(p.threshold).copy(),
        "v_reset": np.zeros(shape, dtype=np.float64),
    }


def nir_metadata(model: SpikingQNet, encoder: Encoder, meta: dict) -> dict:
    """What a consumer needs besides the nodes (stored as the graph's metadata; ``dsqn_meta`` is the NetX file's)."""
    spec = model.spec
    T, L = spec.timesteps, spec.n_layers
    ro = spec.readout
    return {
        "dsqn_format": NIR_FORMAT, "dsqn_format_version": NIR_FORMAT_VERSION,
        "dt": DT,
        "timesteps": int(T),
        "steps_per_inference": int(T),
        "steps_without_delays": int(T - L),
        "synapse_delay_steps": int(timing.SYNAPSE_DELAY),
        "delays": "every synapse delays by one step (nir.Delay nodes of dt), as Lava's Dense/Conv do; readout_bias "
                  f"is delayed {L} steps (the chip resets the readout on step {L}). Without Delay support: remove "
                  f"the Delay nodes and run {T - L} steps instead of {T} (dsqn.export.nir_export.without_delays)",
        "inference": f"zero state, the input payload on every step, read the voltage v of {READOUT_NODE} after the last step",
        "readout_node": READOUT_NODE, "readout_state": "v",
        "readout_kind": ro.kind, "readout_scale": float(ro.scale), "readout_divisor": int(T),
        "readout_formula": "y = readout_scale * v / readout_divisor (v in NIR units = weight units; Loihi state "
                           "units are 4096 v); kind 'q': y are Q-values, the action is their argmax",
        "readout_json": json.dumps(ro.to_dict()),
        "encoding": encoder.kind, "encoder_json": json.dumps(encoder.to_dict()),
        "input": "integer graded-spike payloads of the encoder (encoder_json), as floats",
        "env_id": str(meta.get("env_id", "")), "n_actions": int(spec.n_actions),
        "mapping": "dsqn.export.nir_export (module docstring): tau = dt / decay, w_in = r = 1 / decay, "
                   "v_threshold = vThMant / 64, weights = w_int / 64, forward Euler at dt",
        "dsqn_meta_json": json.dumps(meta),
    }


def build_graph(model: SpikingQNet, encoder: Encoder, meta: dict):  # type: ignore[no-untyped-def]
    """The NIR graph of ``model`` (see the module docstring). The model is not modified."""
    nir = _nir()
    spec = model.spec
    try:
        spec.validate()
    except ValueError as exc:
        raise UserError(f"cannot export: {exc}") from None
    L = spec.n_layers
    nodes: dict = {"input": nir.Input(input_type={"input": np.array(spec.input_shape)})}
    edges: list[tuple[str, str]] = []
    prev, shape, i = "input", tuple(spec.input_shape), 0
    for block in model.blocks:
        if isinstance(block, Flatten):
            name = f"layer{i - 1}_flatten"
            nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            edges.append((prev, name))
            prev, shape = name, (int(np.prod(shape)),)
            continue
        w = block.synapse.weight_int().astype(np.float64) / WEIGHT_SCALE
        out_shape = tuple(int(s) for s in block.neuron.shape)
        if isinstance(block, Conv):
            syn = nir.Conv2d(input_shape=tuple(shape[1:]), weight=w, stride=tuple(block.stride), padding=tuple(block.padding),
                             dilation=(1, 1), groups=1, bias=np.zeros(w.shape[0]))
        else:
            syn = nir.Linear(weight=w.reshape(w.shape[0], -1))
        neuron = block.neuron.loihi(f"layer {i}")
        nodes[f"layer{i}_synapse"] = syn
        nodes[f"layer{i}_delay"] = nir.Delay(delay=np.full(out_shape, DT * timing.SYNAPSE_DELAY))
        nodes[f"layer{i}_neuron"] = nir.CubaLIF(**cuba_lif_params(neuron, out_shape))
        edges += [(prev, f"layer{i}_synapse"), (f"layer{i}_synapse", f"layer{i}_delay"), (f"layer{i}_delay", f"layer{i}_neuron")]
        prev, shape, i = f"layer{i}_neuron", out_shape, i + 1

    # The readout: the NetX file's integers (export.exporter.export_model reads them the same way).
    syn = model.readout.synapse
    w = syn.weight_int().astype(np.float64).reshape(spec.n_actions, -1) / WEIGHT_SCALE
    bias_mant = model.readout.bias_mantissa(model.quantized_bias())
    readout = model.readout.loihi(bias_mant)
    try:
        readout.validate("readout")
    except ValueError as exc:
        raise UserError(f"cannot export: {exc}") from None
    bias = np.asarray(readout.to_float().bias, dtype=np.float64) * np.ones(spec.n_actions)
    A = (spec.n_actions,)
    nodes["readout_synapse"] = nir.Linear(weight=w)
    nodes["readout_delay"] = nir.Delay(delay=np.full(A, DT * timing.SYNAPSE_DELAY))
    bias_src = "input"
    if len(spec.input_shape) > 1:  # Affine takes a vector: flatten an image input first
        bias_src = "readout_bias_flatten"
        nodes[bias_src] = nir.Flatten(input_type={"input": np.array(spec.input_shape)}, start_dim=0, end_dim=-1)
        edges.append(("input", bias_src))
    n_in = int(np.prod(spec.input_shape))
    nodes["readout_bias"] = nir.Affine(weight=np.zeros((spec.n_actions, n_in)), bias=bias)
    nodes["readout_bias_delay"] = nir.Delay(delay=np.full(A, DT * L * timing.SYNAPSE_DELAY))
    # bias 0 in the neuron itself: the bias enters through readout_bias (a CubaLIF's v_leak cannot, with no leak)
    params = cuba_lif_params(readout_without_bias(readout), A)
    nodes[READOUT_NODE] = nir.CubaLIF(**params)
    nodes["output"] = nir.Output(output_type={"output": np.array(A)})
    edges += [(prev, "readout_synapse"), ("readout_synapse", "readout_delay"), ("readout_delay", READOUT_NODE),
              (bias_src, "readout_bias"), ("readout_bias", "readout_bias_delay"), ("readout_bias_delay", READOUT_NODE),
              (READOUT_NODE, "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=nir_metadata(model, encoder, meta))


def readout_without_bias(n: LoihiNeuron) -> LoihiNeuron:
    return LoihiNeuron(i_decay=n.i_decay, v_decay=n.v_decay, vth_mant=n.vth_mant)


def write_nir(model: SpikingQNet, encoder: Encoder, out: Path, meta: dict):  # type: ignore[no-untyped-def]
    """Build the graph and write it to ``out`` (the caller writes to a temporary name and renames)."""
    nir = _nir()
    graph = build_graph(model, encoder, meta)
    nir.write(str(out), graph)
    return graph


def read_nir(path: Path):  # type: ignore[no-untyped-def]
    """A NIR graph written by :func:`write_nir`, with its metadata checked; one-line UserError otherwise."""
    nir = _nir()
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # noqa: BLE001 - h5py/nir raise many kinds on a damaged or foreign file
        raise UserError(f"{path}: not a readable NIR graph ({exc.__class__.__name__}: {' '.join(str(exc).split())[:160]})") from None
    md = getattr(graph, "metadata", {}) or {}
    if str(md.get("dsqn_format", "")) != NIR_FORMAT:
        raise UserError(f"{path}: a NIR graph, but not one written by dsqn-export --format nir (no dsqn_format metadata)")
    if int(md.get("dsqn_format_version", -1)) > NIR_FORMAT_VERSION:
        raise UserError(f"{path}: dsqn NIR format version {md['dsqn_format_version']} is newer than this toolchain's {NIR_FORMAT_VERSION}")
    return graph


def is_nir_file(path: Path) -> bool:
    """Whether ``path`` is a NIR HDF5 file (a ``version`` string and a ``node`` group at the root), read with h5py only."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "node" in f and "version" in f and isinstance(f["node"], h5py.Group) and "type" in f["node"]
    except Exception:  # noqa: BLE001 - not HDF5, unreadable: not a NIR file
        return False


def without_delays(graph):  # type: ignore[no-untyped-def]
    """The graph with its ``nir.Delay`` nodes removed, and the number of steps every node's trajectory moves earlier.

    Exact when every input of a node starts on the same step: a node's start is 0 for the input and for a node with
    a constant term (an Affine or Conv2d bias, a CubaLIF v_leak), the start of its inputs otherwise, plus a Delay's
    steps (``delay / dt``). Then each node of the delay-free graph, from zero state, computes on step t what it
    computed on step t + start in the delayed graph (before its start a node's input and state are zero).
    ValueError otherwise (and for a graph with a cycle)."""
    nir = _nir()
    dt = float(graph.metadata.get("dt", DT))
    inputs: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for a, b in graph.edges:
        inputs[b].append(a)
    start: dict[str, int] = {}

    def has_constant(node) -> bool:  # type: ignore[no-untyped-def]
        for key in ("bias", "v_leak"):
            val = getattr(node, key, None)
            if val is not None and np.any(np.asarray(val) != 0):
                return True
        return False

    def visit(name: str, stack: tuple[str, ...] = ()) -> int:
        if name in start:
            return start[name]
        if name in stack:
            raise ValueError(f"the graph has a cycle through {name}: delays cannot be removed by a time shift")
        node = graph.nodes[name]
        srcs = {s: visit(s, (*stack, name)) for s in inputs[name]}
        if isinstance(node, nir.Input) or not srcs:
            s = 0
        else:
            values = set(srcs.values())
            if len(values) > 1:
                raise ValueError(f"node {name}: its inputs start on different steps {srcs}: delays are not balanced")
            s = values.pop()
            if has_constant(node) and s != 0:
                raise ValueError(f"node {name} has a constant term but its input starts on step {s}")
        if isinstance(node, nir.Delay):
            steps = np.unique(np.rint(np.asarray(node.delay, dtype=np.float64) / dt))
            if steps.size != 1:
                raise ValueError(f"node {name}: delays differ between neurons")
            s += int(steps[0])
        start[name] = s
        return s

    for name in graph.nodes:
        visit(name)
    outs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    shift = {start[o] for o in outs}
    if len(shift) != 1:
        raise ValueError(f"outputs start on different steps {shift}")
    nodes = {n: node for n, node in graph.nodes.items() if not isinstance(node, nir.Delay)}
    succ = {n: [b for a, b in graph.edges if a == n] for n in graph.nodes}

    def targets(n: str) -> list[str]:
        return [t for b in succ[n] for t in (targets(b) if isinstance(graph.nodes[b], nir.Delay) else [b])]

    edges = [(a, t) for a in nodes for t in targets(a)]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata)), shift.pop()


def format_nodes(graph) -> str:  # type: ignore[no-untyped-def]
    """One line per node in graph order: name, NIR type, output shape and the neuron constants of CubaLIF nodes."""
    nir = _nir()
    order = _topological(graph)
    head = f"{'node':<20} {'NIR type':<9} {'shape':<12} {'tau_syn/dt':>10} {'tau_mem/dt':>10} {'v_threshold':>11} {'w_in':>6} {'r':>6}"
    lines = [head, "-" * len(head)]
    dt = float(graph.metadata.get("dt", DT))
    for name in order:
        node = graph.nodes[name]
        out = next(iter(node.output_type.values()), None)
        shape = "x".join(str(int(s)) for s in np.asarray(out).reshape(-1)) if out is not None else "?"
        line = f"{name:<20} {type(node).__name__:<9} {shape:<12}"
        if isinstance(node, nir.CubaLIF):
            def one(a: np.ndarray, scale: float = 1.0) -> str:
                vals = np.unique(np.asarray(a) / scale)
                text = f"{vals[0]:.6g}" if vals.size == 1 else f"{vals.min():.4g}..{vals.max():.4g}"
                return "2^60" if vals.size == 1 and vals[0] == NO_LEAK else text
            line += (f" {one(node.tau_syn, dt):>10} {one(node.tau_mem, dt):>10} {one(node.v_threshold):>11} "
                     f"{one(node.w_in):>6} {one(node.r):>6}")
        elif isinstance(node, nir.Delay):
            line += f" delay {int(np.rint(np.asarray(node.delay).reshape(-1)[0] / dt))} step(s)"
        lines.append(line)
    return "\n".join(lines)


def _topological(graph) -> list[str]:  # type: ignore[no-untyped-def]
    inputs: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for a, b in graph.edges:
        inputs[b].append(a)
    order: list[str] = []

    def visit(name: str, stack: tuple[str, ...] = ()) -> None:
        if name in order or name in stack:
            return
        for s in inputs[name]:
            visit(s, (*stack, name))
        order.append(name)

    for name in graph.nodes:
        visit(name)
    return order
