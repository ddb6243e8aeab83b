"""dsqn-export console script: model.pt -> model.net (NetX HDF5, the default) or model.nir (a NIR graph)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dsqn.errors import ArgumentParser, UserError, cli_entry
from dsqn.files.fileio import check_input_file, check_output_file, remove_stale_temp_files, temp_path

SUFFIX = {"netx": ".net", "nir": ".nir"}


@cli_entry("dsqn-export")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="dsqn-export", allow_abbrev=False,
                            description="Export a dsqn-train checkpoint as a NetX HDF5 network for Lava / Loihi "
                                        "(--format netx, the default) or as a NIR graph for snnTorch, Norse and "
                                        "other NIR tools (--format nir).")
    parser.add_argument("checkpoint", help="model.pt written by dsqn-train")
    parser.add_argument("-o", "--out", default="", help="output file (default: model.net / model.nir beside the checkpoint)")
    parser.add_argument("--format", choices=tuple(SUFFIX), default="netx",
                        help="netx: NetX HDF5 for Lava / Loihi / dsqn-deploy (default); nir: a NIR graph (nir.write, HDF5)")
    args = parser.parse_args(argv)
    _, lines = export_checkpoint(args.checkpoint, args.out, args.format)
    print("\n".join(lines))
    return 0


def export_checkpoint(checkpoint: str | Path, out_path: str | Path | None = None, fmt: str = "netx") -> tuple[Path, list[str]]:
    """model.pt -> model.net (or .nir): the written path and the lines dsqn-export prints. Atomic: a file that fails
    the re-read never replaces an earlier good export."""
    if fmt not in SUFFIX:
        raise UserError(f"--format {fmt!r}: expected {' or '.join(SUFFIX)}")
    # Every path is checked before any work: the input exists and is a file, the output is not the input.
    src = check_input_file(checkpoint)
    out = check_output_file(Path(out_path) if out_path else src.with_suffix(SUFFIX[fmt]), [src],
                            "exported network" if fmt == "netx" else "NIR graph")

    from dsqn.files.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint

    from .exporter import network_meta

    ckpt = load_checkpoint(src)
    model, spec, encoder, config = model_from_checkpoint(ckpt, src)
    try:
        final_eval = json.loads(ckpt.get("final_eval_json", "{}") or "{}")
    except (TypeError, ValueError):
        raise UserError(f"{src}: checkpoint entry 'final_eval_json' is not valid JSON") from None
    meta = network_meta(spec, encoder, config["env_id"], file_sha256(src), {"train_final_eval": final_eval})
    # The file is written and checked under a temporary name and only then renamed over ``out``: a file that
    # fails the check never replaces an earlier good export, and no half-written file is left.
    remove_stale_temp_files(out.parent, [out.name])
    tmp = temp_path(out)
    try:
        writer = _write_netx if fmt == "netx" else _write_nir
        lines = writer(model, spec, encoder, src, tmp, out, meta)
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise UserError(f"{out}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out, lines


def _wrap_errors(fn, src: Path, tmp: Path, out: Path):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except UserError as exc:  # a failed write names the temporary file: name the output
        raise UserError(str(exc).replace(str(tmp), str(out))) from None
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot export {src}: {' '.join(str(exc).split())[:200]}") from None
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror or exc.__class__.__name__})") from None


def _write_netx(model, spec, encoder, src: Path, tmp: Path, out: Path, meta: dict) -> list[str]:  # type: ignore[no-untyped-def]
    from .exporter import export_model, format_table, verify_with_netx

    rows = _wrap_errors(lambda: export_model(model, encoder, tmp, meta), src, tmp, out)
    try:
        checked = verify_with_netx(tmp)
    except UserError as exc:
        raise UserError(str(exc).replace(str(tmp), str(out))) from None
    ro = spec.readout
    return [format_table(rows),
            f"T={spec.timesteps} encoding={encoder.kind} (1 unit = {encoder.unit} payload, {encoder.payload_bits}-bit graded input) "
            f"readout=v of layer {spec.n_layers - 1}, "
            + (f"Q = {ro.scale:g} * v / {ro.divisor}" if ro.kind == "q" else
               f"action = low + (tanh({ro.scale:g} * v / {ro.divisor}) + 1) * (high - low) / 2, bounds {list(ro.low)}..{list(ro.high)}"),
            f"wrote {out}; {checked}"]


def _write_nir(model, spec, encoder, src: Path, tmp: Path, out: Path, meta: dict) -> list[str]:  # type: ignore[no-untyped-def]
    from .nir_export import DT, READOUT_NODE, format_nodes, read_nir, write_nir

    _wrap_errors(lambda: write_nir(model, encoder, tmp, meta), src, tmp, out)
    try:
        graph = read_nir(tmp)
    except UserError as exc:
        raise UserError(str(exc).replace(str(tmp), str(out))) from None
    T, L = spec.timesteps, spec.n_layers
    return [format_nodes(graph),
            f"T={T} dt={DT:g} s, one step of delay per synapse (nir.Delay; without Delay support remove them and run "
            f"{T - L} steps); encoding={encoder.kind} (integer payloads, encoder in the metadata); "
            f"readout=v of {READOUT_NODE}, Q = {spec.readout.scale:g} * v / {T}",
            f"wrote {out}; re-read with nir.read: ok"]
