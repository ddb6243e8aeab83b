"""dsqn-export console script: model.pt -> model.net."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsqn.errors import UserError, cli_entry


@cli_entry("dsqn-export")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dsqn-export", description="Export a dsqn-train checkpoint as a NetX HDF5 network for Lava / Loihi.")
    parser.add_argument("checkpoint", help="model.pt written by dsqn-train")
    parser.add_argument("-o", "--out", default="", help="output file (default: model.net beside the checkpoint)")
    args = parser.parse_args(argv)

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # lava-dl's import-time notices
        from dsqn.train.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint

        from .exporter import export_model, format_table, network_meta, verify_with_netx

    src = Path(args.checkpoint)
    ckpt = load_checkpoint(src)
    model, spec, encoder, config = model_from_checkpoint(ckpt, src)
    out = Path(args.out) if args.out else src.with_suffix(".net")
    if out.exists() and out.is_dir():
        raise UserError(f"{out}: is a directory")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: output folder does not exist")
    final_eval = json.loads(ckpt.get("final_eval_json", "{}") or "{}")
    meta = network_meta(spec, encoder, config["env_id"], file_sha256(src),
                        {"train_final_eval": final_eval, "train_config": config})
    rows = export_model(model, encoder, out, meta)
    try:
        verify_with_netx(out, meta)
    except UserError:
        out.unlink(missing_ok=True)
        raise
    print(format_table(rows))
    print(f"T={spec.timesteps} encoding={encoder.kind} (1 unit = {encoder.unit} payload, {encoder.payload_bits}-bit graded input) "
          f"readout=v of layer {spec.n_layers - 1}, Q = {spec.q_scale:g} * v / ({spec.timesteps} * 4096)")
    print(f"wrote {out}; re-read with lava.lib.dl.netx.hdf5.Network: ok")
    return 0
