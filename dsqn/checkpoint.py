"""model.pt: a versioned, self-describing checkpoint written atomically and read with weights_only=True.

The schema lives here, in the core, so every stage reads checkpoints the same way (export does not import
``dsqn.train``). Keys of format 1:

* ``format`` = "dsqn-checkpoint", ``format_version`` = 1
* ``config_json`` (the training config), ``spec_json`` (:class:`dsqn.qnet.NetSpec`), ``encoder_json``
* ``model`` (the best evaluated weights: what export writes), ``last_model``, ``target_model``, ``optimizer``
* ``replay`` (vector replay memory), ``step``, ``episode``, ``best_eval``, ``evals_json``, ``final_eval_json``

State dicts use slayer's tensor names (``blocks.<i>.synapse.weight`` ...), so checkpoints written when the
network was built from lava-dl blocks load unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from dsqn.encoding import Encoder
from dsqn.errors import UserError
from dsqn.qnet import NetSpec, SpikingQNet

CHECKPOINT_FORMAT = "dsqn-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("config_json", "spec_json", "encoder_json", "model")
RESUME_KEYS = ("last_model", "target_model", "optimizer", "replay", "step", "episode", "best_eval", "evals_json")


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
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


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely; any problem becomes a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # torch >= 2.6 warns about pickle protocols before refusing a file
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling failed"
        raise UserError(f"{path}: refused to load: the file holds more than plain tensors ({first[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a dsqn-train checkpoint (no '{CHECKPOINT_FORMAT}' format marker)")
    if ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise UserError(
            f"{path}: checkpoint format_version {ckpt.get('format_version')!r}, this toolchain reads {CHECKPOINT_VERSION}"
        )
    for key in REQUIRED_KEYS:
        if key not in ckpt:
            raise UserError(f"{path}: checkpoint is missing '{key}'")
    return ckpt


def model_from_checkpoint(ckpt: dict, path: str | Path = "checkpoint") -> tuple[SpikingQNet, NetSpec, Encoder, dict]:
    """Rebuild the network from a loaded checkpoint and load its weights (strictly)."""
    try:
        spec = NetSpec.from_dict(json.loads(ckpt["spec_json"]))
        encoder = Encoder.from_dict(json.loads(ckpt["encoder_json"]))
        config = json.loads(ckpt["config_json"])
    except (TypeError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: malformed checkpoint description ({exc})") from None
    try:
        spec.validate()
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: the network cannot run on Loihi: {exc}") from None
    try:
        model = SpikingQNet(spec)
        bad = [k for k, v in ckpt["model"].items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"non-finite values in {bad[0]}")
        model.load_state_dict(ckpt["model"], strict=True)
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        msg = " ".join(str(exc).split())
        raise UserError(f"{path}: weights do not match the architecture it describes ({msg[:200]})") from None
    return model, spec, encoder, config
