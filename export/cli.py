"""dsqn-export console script: model.pt -> model.net."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dsqn.errors import ArgumentParser, UserError, cli_entry
from dsqn.fileio import check_input_file, check_output_file, remove_stale_temp_files, temp_path


@cli_entry("dsqn-export")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="dsqn-export", allow_abbrev=False,
                            description="Export a dsqn-train checkpoint as a NetX HDF5 network for Lava / Loihi.")
    parser.add_argument("checkpoint", help="model.pt written by dsqn-train")
    parser.add_argument("-o", "--out", default="", help="output file (default: model.net beside the checkpoint)")
    args = parser.parse_args(argv)

    # Every path is checked before any work: the input exists and is a file, the output is not the input.
    src = check_input_file(args.checkpoint)
    out = check_output_file(Path(args.out) if args.out else src.with_suffix(".net"), [src], "exported network")

    from dsqn.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint

    from .exporter import export_model, format_table, network_meta, verify_with_netx

    ckpt = load_checkpoint(src)
    model, spec, encoder, config = model_from_checkpoint(ckpt, src)
    try:
        final_eval = json.loads(ckpt.get("final_eval_json", "{}") or "{}")
    except (TypeError, ValueError):
        raise UserError(f"{src}: checkpoint entry 'final_eval_json' is not valid JSON") from None
    meta = network_meta(spec, encoder, config["env_id"], file_sha256(src), {"train_final_eval": final_eval})
    # The network is written and checked under a temporary name and only then renamed over ``out``: a file that
    # fails the check never replaces an earlier good export.
    remove_stale_temp_files(out.parent, [out.name])
    tmp = temp_path(out)
    try:
        try:
            rows = export_model(model, encoder, tmp, meta)
        except UserError as exc:  # a failed write names the temporary file: name the output
            raise UserError(str(exc).replace(str(tmp), str(out))) from None
        except (ValueError, TypeError) as exc:
            raise UserError(f"cannot export {src}: {' '.join(str(exc).split())[:200]}") from None
        except OSError as exc:
            raise UserError(f"{out}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
        try:
            checked = verify_with_netx(tmp)
        except UserError as exc:
            raise UserError(str(exc).replace(str(tmp), str(out))) from None
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise UserError(f"{out}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        tmp.unlink(missing_ok=True)
    print(format_table(rows))
    ro = spec.readout
    print(f"T={spec.timesteps} encoding={encoder.kind} (1 unit = {encoder.unit} payload, {encoder.payload_bits}-bit graded input) "
          f"readout=v of layer {spec.n_layers - 1}, Q = {ro.scale:g} * v / {ro.divisor}")
    print(f"wrote {out}; " + ("re-read with lava.lib.dl.netx.hdf5.Network: ok" if checked else
                              "checked with dsqn's reader (stock netx not re-read: the lava extra is not installed)"))
    return 0
