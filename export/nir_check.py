"""Round trip through an independent NIR consumer: does snnTorch, running our NIR graph, choose our actions?

    python -m dsqn.export.nir_check model.pt [--nir model.nir] [--episodes 10] [--seed 20000000]

Without ``--nir`` the checkpoint is exported to a temporary NIR file first (the same function as ``dsqn-export
--format nir``). The graph is read back with ``nir.read`` and imported with snnTorch's own importer
(``snntorch.import_from_nir``, snnTorch 1.0, which maps CubaLIF to ``snn.Synaptic`` with ``alpha = 1 - dt/tau_syn``,
``beta = 1 - dt/tau_mem``, reset to zero, strict ``v > threshold``). snnTorch has no Delay module, so the Delay
nodes are removed first (:func:`dsqn.export.nir_export.without_delays`, exact for this feed-forward graph) and each
inference runs ``T - L`` steps from zero state. The environment id, the encoder and the readout's decoding come
from the graph's metadata, as a consumer would take them.

The imported network drives the environment (greedy on its Q); on every step the training model's forward pass --
which equals the emulator on the exported NetX file and Lava bit for bit -- is asked for its action on the same
observation. Printed: the share of steps with the same action, the largest |Q difference| and the returns.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dsqn.encoding import Encoder
from dsqn.errors import ArgumentParser, UserError, cli_entry

from .nir_export import READOUT_NODE, read_nir, without_delays


def _snntorch():  # type: ignore[no-untyped-def]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import nirtorch  # noqa: F401 - snntorch.import_from_nir needs it
            import snntorch
            from snntorch.import_nir import import_from_nir
    except ImportError as exc:
        raise UserError(f"the NIR round trip needs snnTorch and nirtorch ({exc.name} is missing): "
                        "pip install snntorch nirtorch (the 'nir' extra of dsqn)") from None
    return snntorch, import_from_nir


class SnnTorchNetwork:
    """A dsqn NIR file imported by snnTorch; ``q(payload)`` runs one inference and decodes the readout voltage."""

    def __init__(self, path: Path) -> None:
        snntorch, import_from_nir = _snntorch()
        graph = read_nir(path)
        md = graph.metadata
        self.meta = md
        self.encoder = Encoder.from_dict(json.loads(str(md["encoder_json"])))
        self.env_id = str(md["env_id"])
        self.scale, self.divisor = float(md["readout_scale"]), float(md["readout_divisor"])
        self.kind = str(md["readout_kind"])
        try:
            flat, shift = without_delays(graph)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        self.steps = int(md["steps_per_inference"]) - shift
        if self.steps != int(md["steps_without_delays"]) or self.steps < 1:
            raise UserError(f"{path}: metadata says {md['steps_without_delays']} steps without delays, the graph {self.steps}")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the importer prints progress lines
                self.net = import_from_nir(flat)
        except (AssertionError, ValueError, NotImplementedError) as exc:  # e.g. one threshold per layer only
            raise UserError(f"{path}: snnTorch's importer refused the graph ({exc.__class__.__name__}: "
                            f"{' '.join(str(exc).split())[:160] or 'no message'})") from None
        self.net.eval()
        self.neurons = [m for m in self.net.modules() if isinstance(m, snntorch.SpikingNeuron)]
        self.readout = self.net.get_submodule(READOUT_NODE)

    @torch.no_grad()
    def voltage(self, payload: np.ndarray) -> np.ndarray:
        """Readout voltage (NIR units) after one inference from zero state on one payload (unbatched)."""
        for m in self.neurons:
            m.reset_mem()
        x = torch.as_tensor(np.asarray(payload, dtype=np.float32))
        for _ in range(self.steps):
            self.net(x)
        return self.readout.mem.detach().double().numpy().copy()

    def q(self, payload: np.ndarray) -> np.ndarray:
        return self.scale * self.voltage(payload) / self.divisor


@dataclass
class Agreement:
    steps: int = 0
    same: int = 0
    max_q_diff: float = 0.0
    returns: list[float] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.same / max(1, self.steps)

    def summary(self) -> str:
        return (f"snnTorch (NIR import) vs dsqn's model (= emulator = Lava): same action on {self.same}/{self.steps} = "
                f"{100.0 * self.fraction:.2f}% of steps; largest |Q difference| {self.max_q_diff:.3g}; "
                f"returns of the snnTorch-driven episodes {[round(r, 1) for r in self.returns]}")


def closed_loop_agreement(model, nir_path: Path, episodes: int, seed: int, max_steps: int = 0) -> Agreement:  # type: ignore[no-untyped-def]
    """The imported network drives ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...); ``model`` (a
    SpikingQNet) is asked for its action at every step. Environment and encoder come from the NIR metadata."""
    from dsqn.envs import make_env

    net = SnnTorchNetwork(nir_path)
    if net.kind != "q":
        raise UserError(f"{nir_path}: readout kind {net.kind!r}: the action agreement is defined for Q readouts only")
    result = Agreement()
    env = make_env(net.env_id)
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            total, n, done = 0.0, 0, False
            while not done:
                payload = net.encoder.encode(obs)
                q_nir = net.q(payload)
                with torch.no_grad():
                    q_ref = model(torch.from_numpy(payload.astype(np.float32))[None])[0].double().numpy()
                action = int(np.argmax(q_nir))
                result.steps += 1
                result.same += int(action == int(np.argmax(q_ref)))
                result.max_q_diff = max(result.max_q_diff, float(np.max(np.abs(q_nir - q_ref))))
                obs, r, term, trunc, _ = env.step(action)
                total, n = total + float(r), n + 1
                done = term or trunc or (max_steps > 0 and n >= max_steps)
            result.returns.append(total)
    finally:
        env.close()
    return result


@cli_entry("nir_check")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsqn.export.nir_check",
                            description="Import the NIR export of a checkpoint with snnTorch and measure, closed loop, "
                                        "how often it chooses the action of dsqn's model (= the emulator).")
    parser.add_argument("checkpoint", help="model.pt written by dsqn-train")
    parser.add_argument("--nir", default="", help="the NIR file of this checkpoint (default: export one to a temporary folder)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes (default: 10)")
    parser.add_argument("--seed", type=int, default=20_000_000, help="seed of the first episode (default: 20000000, held out)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on steps per episode, 0 = none")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        raise UserError(f"--episodes must be positive, got {args.episodes}")
    if args.max_steps < 0 or args.seed < 0:
        raise UserError("--max-steps and --seed must not be negative")
    import tempfile

    from dsqn.files.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint
    from dsqn.files.fileio import check_input_file

    from .exporter import network_meta
    from .nir_export import write_nir

    src = check_input_file(args.checkpoint)
    model, spec, encoder, config = model_from_checkpoint(load_checkpoint(src), src)
    sha = file_sha256(src)
    with tempfile.TemporaryDirectory(prefix="dsqn-nir-") as tmp:
        if args.nir:
            path = check_input_file(args.nir)
            from dsqn.files.netfile import check_read_in_child

            check_read_in_child(path, lambda: read_nir(path))  # a file from the user may crash libhdf5 itself
            stored = json.loads(str(read_nir(path).metadata.get("dsqn_meta_json", "{}"))).get("source_checkpoint_sha256")
            if stored != sha:
                raise UserError(f"{path} was not exported from {src} (source checkpoint SHA-256 differs)")
        else:
            path = Path(tmp) / "model.nir"
            write_nir(model, encoder, path, network_meta(spec, encoder, config["env_id"], sha, {}))
        _snntorch()
        result = closed_loop_agreement(model, path, args.episodes, args.seed, args.max_steps)
    print(f"{config['env_id']}, {args.episodes} episode(s) from seed {args.seed}: {result.summary()}")
    return 0


if __name__ == "__main__":
    main()
