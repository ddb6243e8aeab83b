"""dsqn-export console script: model.pt -> model.net."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsqn.errors import UserError, cli_entry


@cli_entry("dsqn-export")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dsqn-export", allow_abbrev=False,
                                     description="Export a dsqn-train checkpoint as a NetX HDF5 network for Lava / Loihi.")
    parser.add_argument("checkpoint", help="model.pt written by dsqn-train")
    parser.add_argument("-o", "--out", default="", help="output file (default: model.net beside the checkpoint)")
    args = parser.parse_args(argv)

    from dsqn.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint

    from .exporter import export_model, format_table, network_meta, verify_with_netx

    src = Path(args.checkpoint)
    out = Path(args.out) if args.out else src.with_suffix(".net")
    if out.exists() and out.is_dir():
        raise UserError(f"{out}: is a directory")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: output folder does not exist")
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise UserError(f"{out}: the output would overwrite the checkpoint it is exported from")
    ckpt = load_checkpoint(src)
    model, spec, encoder, config = model_from_checkpoint(ckpt, src)
    final_eval = json.loads(ckpt.get("final_eval_json", "{}") or "{}")
    meta = network_meta(spec, encoder, config["env_id"], file_sha256(src), {"train_final_eval": final_eval})
    rows = export_model(model, encoder, out, meta)
    try:
        checked = verify_with_netx(out)
    except UserError:
        out.unlink(missing_ok=True)
        raise
    print(format_table(rows))
    ro = spec.readout
    print(f"T={spec.timesteps} encoding={encoder.kind} (1 unit = {encoder.unit} payload, {encoder.payload_bits}-bit graded input) "
          f"readout=v of layer {spec.n_layers - 1}, Q = {ro.scale:g} * v / {ro.divisor}")
    print(f"wrote {out}; " + ("re-read with lava.lib.dl.netx.hdf5.Network: ok" if checked else
                              "checked with dsqn's reader (stock netx not re-read: the lava extra is not installed)"))
    return 0
