"""dsqn-train console script."""

from __future__ import annotations

from dsqn.errors import cli_entry

from .config import parse_args, resolve


@cli_entry("dsqn-train")
def main(argv: list[str] | None = None) -> int:
    cfg, explicit = parse_args(argv)
    if not cfg.resume:  # a resumed run takes its config (and its budget) from the checkpoint, not the env defaults
        cfg = resolve(cfg, explicit)
    from .runner import train  # heavy imports (torch, numba) only after the arguments parsed

    train(cfg, explicit)
    return 0
