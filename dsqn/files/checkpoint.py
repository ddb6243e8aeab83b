"""model.pt: a versioned, self-describing checkpoint written atomically and read with weights_only=True.

The schema lives here, in the core, so every stage reads checkpoints the same way (export does not import
``dsqn.train``). Keys of format 1:

* ``format`` = "dsqn-checkpoint", ``format_version`` = 1
* ``config_json`` (the training config), ``spec_json`` (:class:`dsqn.layers.qnet.NetSpec`), ``encoder_json``
* ``model`` (the best evaluated weights: what export writes), ``last_model``, ``target_model``, ``optimizer``
* ``replay`` (the vector replay memory; for Atari the record -- file, token, env_id, preset -- of the frame store
  written beside it as ``replay-<step>-<token>.npz``), ``step``, ``episode``, ``best_eval``, ``evals_json``, ``final_eval_json``

State dicts use slayer's tensor names (``blocks.<i>.synapse.weight`` ...), so checkpoints written when the
network was built from lava-dl blocks load unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

import torch

from dsqn.encoding import Encoder
from dsqn.errors import UserError
from dsqn.files.fileio import check_input_file, temp_path
from dsqn.layers.qnet import SpikingQNet
from dsqn.layers.spec import NetSpec

CHECKPOINT_FORMAT = "dsqn-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("config_json", "spec_json", "encoder_json", "model")
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = b"\x80"
RESUME_KEYS = ("last_model", "target_model", "optimizer", "replay", "step", "episode", "best_eval", "evals_json")


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one_line(text: str, limit: int = 160) -> str:
    return " ".join(str(text).split())[:limit]


def _unpickler_detail(exc: Exception) -> str:
    """What torch's weights-only unpickler objected to, without its advice (which is to load the file unsafely)."""
    text = str(exc)
    detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
    detail = _one_line(detail, 10_000)
    for cut in (" was not an allowed global", ". Please use", " Check the documentation", "Check the documentation"):
        detail = detail.split(cut, 1)[0]
    detail = detail.strip(" .")
    if not detail or "weights_only" in detail or "Weights only load failed" in detail:
        return "unpickling failed"
    return detail[:160]


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``); any problem becomes a one-line UserError."""
    path = check_input_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    if not head:
        raise UserError(f"{path}: empty file, not a PyTorch checkpoint")
    # torch.save writes a zip archive (a pickle in the legacy format); anything else is not a checkpoint at all
    if not (head.startswith(ZIP_MAGIC) or head[:1] == PICKLE_PROTO):
        raise UserError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():  # torch >= 2.6 warns about pickle protocols before refusing a file
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: refused to load: not a checkpoint of plain tensors and values "
                        f"({_unpickler_detail(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file raises anything (KeyError, EOFError, RuntimeError, ...)
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__}: {_one_line(exc, 120)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a dsqn-train checkpoint (no '{CHECKPOINT_FORMAT}' format marker)")
    if ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise UserError(
            f"{path}: checkpoint format_version {_one_line(repr(ckpt.get('format_version')), 40)}, this toolchain reads {CHECKPOINT_VERSION}"
        )
    for key in REQUIRED_KEYS:
        if key not in ckpt:
            raise UserError(f"{path}: checkpoint is missing '{key}'")
    for key in ("config_json", "spec_json", "encoder_json"):
        if not isinstance(ckpt[key], str):
            raise UserError(f"{path}: checkpoint entry '{key}' is not a JSON string")
    if not isinstance(ckpt["model"], dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in ckpt["model"].items()):
        raise UserError(f"{path}: checkpoint entry 'model' is not a state dict of tensors")
    return ckpt


def check_resumable(ckpt: dict, path: str | Path) -> None:
    """A checkpoint to continue from holds the training state too (every key of RESUME_KEYS, of the right kind)."""
    for key in RESUME_KEYS:
        if key not in ckpt:
            raise UserError(f"{path}: checkpoint is missing '{key}'; cannot resume")
    for key in ("last_model", "target_model", "optimizer", "replay"):
        if not isinstance(ckpt[key], dict):
            raise UserError(f"{path}: checkpoint entry '{key}' is not a dict; cannot resume")
    for key in ("step", "episode"):
        if isinstance(ckpt[key], bool) or not isinstance(ckpt[key], int) or ckpt[key] < 0:
            raise UserError(f"{path}: checkpoint entry '{key}' is not a non-negative integer; cannot resume")
    if not isinstance(ckpt["evals_json"], str):
        raise UserError(f"{path}: checkpoint entry 'evals_json' is not a JSON string; cannot resume")


def model_from_checkpoint(ckpt: dict, path: str | Path = "checkpoint") -> tuple[SpikingQNet, NetSpec, Encoder, dict]:
    """Rebuild the network from a loaded checkpoint and load its weights (strictly)."""
    try:
        spec = NetSpec.from_dict(json.loads(ckpt["spec_json"]))
        encoder = Encoder.from_dict(json.loads(ckpt["encoder_json"]))
        config = json.loads(ckpt["config_json"])
        if not isinstance(config, dict) or not isinstance(config.get("env_id"), str):
            raise ValueError("config_json has no env_id")
        if config.get("actor", "snn") == "ann" or config.get("qnet", "snn") == "ann":
            flag = "--actor ann" if config.get("actor", "snn") == "ann" else "--qnet ann"
            raise UserError(f"{path}: an ANN baseline (dsqn-train {flag}): it has no spiking network to export or deploy")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - edited or damaged JSON fails in many ways
        raise UserError(f"{path}: malformed checkpoint description ({exc.__class__.__name__}: {_one_line(exc, 120)})") from None
    try:
        spec.validate()
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: the network cannot run on Loihi: {_one_line(exc, 200)}") from None
    try:
        model = SpikingQNet(spec)
        bad = [k for k, v in ckpt["model"].items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"non-finite values in {bad[0]}")
        model.load_state_dict(ckpt["model"], strict=True)
    except Exception as exc:  # noqa: BLE001 - a spec edited to an unbuildable network fails in many ways
        raise UserError(f"{path}: weights do not match the architecture it describes ({_one_line(exc, 200)})") from None
    return model, spec, encoder, config
