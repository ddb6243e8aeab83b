"""How far Adam's epsilon damps each layer's steps, read from a checkpoint's optimizer state.

Adam moves a parameter by lr * m / (sqrt(v) + eps). Where the gradient's running RMS sqrt(v) is far below eps, the
step is lr * m / eps instead of ~lr * sign: that layer learns (sqrt(v) / eps) times slower than the learning rate
says. A spiking network's surrogate gradients are much smaller than an ANN's, so an eps tuned for ANNs can stop its
hidden layers; with 8-bit weights (steps of 1/32) a weight then never reaches the next level.

    .venv-core/bin/python scripts/optimizer_state.py RUN/model.pt [RUN2/model.pt ...]

Prints, per trainable tensor of each checkpoint, the median and 90th percentile of sqrt(v) and their ratio to eps.
"""

from __future__ import annotations

import argparse
import sys

import torch

from dsqn.errors import UserError
from dsqn.files.checkpoint import load_checkpoint


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="optimizer_state.py", description=__doc__.split("\n\n")[0],
                                     epilog="Prints, per trainable tensor of each checkpoint, the median and 90th "
                                     "percentile of sqrt(v) and their ratio to eps.")
    parser.add_argument("checkpoints", nargs="+", metavar="MODEL_PT", help="a run's model.pt (read weights-only)")
    for path in parser.parse_args(argv).checkpoints:
        try:
            ckpt = load_checkpoint(path)  # weights_only=True; one-line errors
        except UserError as exc:
            print(f"optimizer_state: error: {exc}", file=sys.stderr)
            return 2
        opt = ckpt.get("optimizer") or {}
        if not opt.get("state"):
            print(f"optimizer_state: error: {path}: no optimizer state (a run before its first update?)", file=sys.stderr)
            return 2
        group = opt["param_groups"][0]
        eps, lr = float(group["eps"]), float(group["lr"])
        names = [n for n, v in ckpt["model"].items() if torch.is_tensor(v) and v.is_floating_point()]
        ids = [i for g in opt["param_groups"] for i in g["params"]]
        print(f"{path}: step {ckpt.get('step')}, Adam lr {lr:g}, eps {eps:g}")
        print(f"  {'parameter':<28} {'shape':<22} {'median sqrt(v)':>15} {'/eps':>8} {'p90 sqrt(v)':>12} {'/eps':>8}")
        for k, i in enumerate(ids):
            state = opt["state"].get(i)
            if state is None:
                continue
            rms = state["exp_avg_sq"].sqrt().flatten().double()
            med, p90 = rms.median().item(), rms.quantile(0.9).item() if rms.numel() < 2**24 else float("nan")
            name = names[k] if len(names) == len(ids) else f"#{k}"
            print(f"  {name:<28} {str(tuple(rms.shape if rms.dim() == 0 else state['exp_avg_sq'].shape)):<22} "
                  f"{med:>15.2e} {med / eps:>8.3f} {p90:>12.2e} {p90 / eps:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
