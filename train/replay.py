"""Replay memories: encoded vectors for classic control and MuJoCo, and a frame store for Atari.

Both return a :class:`Batch` (named tensors): ``actions`` are int64 indices for discrete action spaces and
float32 vectors (normalised to [-1, 1]) for Box action spaces.

``FrameReplay`` stores every 84x84 frame once as uint8 (1M transitions ~ 7.1 GB) and rebuilds the
4-frame stacks on sampling, padding at episode starts with the reset frame exactly as gymnasium's
``FrameStackObservation`` does; n-step returns are summed at sampling time. Its contents are checkpointed
beside model.pt as ``replay-<step>-<token>.npz`` (:meth:`FrameReplay.save`, atomic; model.pt names the file and a
token that the file must carry, so a checkpoint never resumes with another run's or another step's replay).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor
    """(N, *input_shape) encoded payloads as float32."""
    actions: torch.Tensor
    """(N,) int64 action indices, or (N, A) float32 normalised continuous actions."""
    rewards: torch.Tensor
    """(N,) the (n-step) discounted return up to ``next_obs``."""
    next_obs: torch.Tensor
    dones: torch.Tensor
    """(N,) 1.0 where the episode terminated at ``next_obs`` (no bootstrap), 0.0 otherwise (also when truncated)."""
    discounts: torch.Tensor
    """(N,) gamma ** n: multiplies the bootstrapped value of ``next_obs``."""

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device) for t in self))


class ReplayBuffer:
    """Uniform replay of encoded observations (integer payloads, exactly what the network sees)."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], seed: int, action_shape: tuple[int, ...] = ()) -> None:
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.int16)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=np.int16)
        self.actions = np.zeros((capacity, *action_shape), dtype=np.float32 if action_shape else np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.full = capacity, 0, False
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: np.ndarray, action, reward: float, next_obs: np.ndarray, done: bool, discount: float) -> None:  # type: ignore[no-untyped-def]
        """``reward`` is the (n-step) discounted return up to ``next_obs``; ``discount`` = gamma**n multiplies its value."""
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i], self.rewards[i], self.dones[i] = obs, next_obs, action, reward, done
        self.discounts[i] = discount
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, n: int) -> Batch:
        idx = self.rng.integers(0, len(self), n)
        return Batch(
            torch.from_numpy(self.obs[idx].astype(np.float32)),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.rewards[idx]),
            torch.from_numpy(self.next_obs[idx].astype(np.float32)),
            torch.from_numpy(self.dones[idx]),
            torch.from_numpy(self.discounts[idx]),
        )

    def state(self) -> dict:
        n = len(self)
        return {
            "obs": torch.from_numpy(self.obs[:n].copy()), "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
            "actions": torch.from_numpy(self.actions[:n].copy()), "rewards": torch.from_numpy(self.rewards[:n].copy()),
            "dones": torch.from_numpy(self.dones[:n].copy()), "discounts": torch.from_numpy(self.discounts[:n].copy()),
            "pos": self.pos, "full": self.full,
        }

    def load(self, st: dict, gamma: float) -> None:
        n = st["obs"].shape[0]
        self.obs[:n], self.next_obs[:n] = st["obs"].numpy(), st["next_obs"].numpy()
        self.actions[:n], self.rewards[:n], self.dones[:n] = st["actions"].numpy(), st["rewards"].numpy(), st["dones"].numpy()
        self.discounts[:n] = st["discounts"].numpy() if "discounts" in st else gamma  # format-1 checkpoints were 1-step
        self.pos, self.full = int(st["pos"]), bool(st["full"])


REPLAY_FORMAT = "dsqn-frame-replay"
REPLAY_VERSION = 1
_FRAME_ARRAYS = ("frames", "start", "is_start", "actions", "rewards", "dones")


class FrameReplay:
    def __init__(self, capacity: int, frame_shape: tuple[int, int], stack: int, seed: int, gamma: float = 0.99,
                 n_step: int = 1) -> None:
        self.cap, self.stack, self.gamma, self.n_step = capacity, stack, gamma, n_step
        self.frames = np.zeros((capacity, *frame_shape), dtype=np.uint8)
        self.start = np.zeros(capacity, dtype=np.int64)  # absolute slot where this slot's episode began
        self.is_start = np.zeros(capacity, dtype=bool)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.next_abs = 0  # absolute index of the next slot
        self.episode_start = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.next_abs, self.cap)

    def _put(self, frame: np.ndarray, is_start: bool) -> int:
        j = self.next_abs
        i = j % self.cap
        self.frames[i] = frame
        self.is_start[i] = is_start
        if is_start:
            self.episode_start = j
        self.start[i] = self.episode_start
        self.next_abs += 1
        return i

    def reset(self, obs: np.ndarray) -> None:
        """Start of an episode: obs is the reset stack (the same frame repeated)."""
        self._put(obs[-1], True)

    def add(self, action: int, reward: float, next_obs: np.ndarray, done: bool) -> None:
        i = self._put(next_obs[-1], False)
        self.actions[i], self.rewards[i], self.dones[i] = action, reward, done

    def stack_at(self, j: np.ndarray) -> np.ndarray:
        """(N,) absolute slots -> (N, stack, H, W) frame stacks ending at those slots."""
        offs = np.arange(-self.stack + 1, 1)
        idx = j[:, None] + offs[None, :]
        idx = np.maximum(idx, self.start[j % self.cap][:, None])
        return self.frames[idx % self.cap]

    def sample(self, n: int) -> Batch:
        oldest = max(0, self.next_abs - self.cap)
        out: list[int] = []
        while len(out) < n:
            j = self.rng.integers(oldest + 1, self.next_abs, size=2 * n)
            i = j % self.cap
            ok = ~self.is_start[i] & (np.maximum(j - self.stack, self.start[i]) >= oldest)
            out.extend(j[ok].tolist())
        j = np.asarray(out[:n], dtype=np.int64)
        i = j % self.cap
        ret, last, done, steps = self.n_step_returns(j)
        return Batch(
            torch.from_numpy(self.stack_at(j - 1).astype(np.float32)),
            torch.from_numpy(self.actions[i]),
            torch.from_numpy(ret),
            torch.from_numpy(self.stack_at(last).astype(np.float32)),
            torch.from_numpy(done),
            torch.from_numpy((self.gamma ** steps).astype(np.float32)),
        )

    def n_step_returns(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For transitions into slots ``j``: (discounted sum of up to n rewards, the slot whose stack is bootstrapped,
        1.0 where the episode terminated within them, how many rewards were summed). The sum stops at a
        termination, at the end of a truncated episode (the next slot starts a new one) and at the newest slot,
        as :class:`train.runner.NStepReturns` does for vector observations."""
        i = j % self.cap
        ret = self.rewards[i].astype(np.float64)
        done = self.dones[i].astype(bool)
        last, steps = j.copy(), np.ones(len(j), dtype=np.int64)
        alive = ~done
        for k in range(1, self.n_step):
            jk = j + k
            ok = alive & (jk < self.next_abs)
            ok &= ~self.is_start[jk % self.cap]
            ik = jk % self.cap
            ret[ok] += self.gamma ** k * self.rewards[ik][ok]
            last[ok], steps[ok] = jk[ok], k + 1
            term = self.dones[ik].astype(bool)
            done |= ok & term
            alive = ok & ~term
        return ret.astype(np.float32), last, done.astype(np.float32), steps

    # --- checkpoint ---------------------------------------------------------------------------------------------

    def save(self, path: Path, meta: dict) -> None:
        """Write the filled part of the memory, its pointers and sampling RNG, and ``meta`` (env, preset, token) to
        ``path`` (.npz, uncompressed) through a temporary file: a crash never leaves half a file."""
        from dsqn.files.fileio import temp_path

        n = len(self)
        header = {"format": REPLAY_FORMAT, "format_version": REPLAY_VERSION, **meta, "capacity": self.cap,
                  "stack": self.stack, "frame_shape": list(self.frames.shape[1:]), "next_abs": self.next_abs,
                  "episode_start": self.episode_start, "rng": self.rng.bit_generator.state}
        tmp = temp_path(path)
        try:
            with open(tmp, "wb") as f:
                np.savez(f, header=np.array(json.dumps(header)), **{k: getattr(self, k)[:n] for k in _FRAME_ARRAYS})
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def load(self, path: Path, expect: dict) -> None:
        """Fill the memory from :meth:`save`'s file; ValueError names what does not match ``expect`` (the values
        the checkpoint recorded: token, env_id, preset ...) or this memory's shape, or a damaged file."""
        import zipfile

        try:
            self._load(path, expect)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{path.name} is damaged ({exc.__class__.__name__}: {exc})") from None

    def _load(self, path: Path, expect: dict) -> None:
        with np.load(path, allow_pickle=False) as z:
            try:
                header = json.loads(str(z["header"]))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path.name} is not a dsqn frame replay ({exc.__class__.__name__})") from None
            if header.get("format") != REPLAY_FORMAT or header.get("format_version") != REPLAY_VERSION:
                raise ValueError(f"{path.name} is not a dsqn frame replay of format version {REPLAY_VERSION}")
            for key in ("env_id", "preset", "token"):
                if key in expect and header.get(key) != expect[key]:
                    raise ValueError(f"{path.name} holds the replay of {key} {header.get(key)!r}, the checkpoint's is "
                                     f"{expect[key]!r}")
            mine = {"capacity": self.cap, "stack": self.stack, "frame_shape": list(self.frames.shape[1:])}
            for key, val in mine.items():
                if header.get(key) != val:
                    raise ValueError(f"{path.name}: {key} {header.get(key)} differs from this run's {val}")
            nxt = int(header["next_abs"])
            n = min(nxt, self.cap)
        for k in _FRAME_ARRAYS:
            want = getattr(self, k)
            _read_member_into(path, k, want[:n])
        self.next_abs, self.episode_start = nxt, int(header["episode_start"])
        self.rng.bit_generator.state = header["rng"]


def _read_member_into(path: Path, name: str, out: np.ndarray) -> None:
    """Read the array ``name`` of the .npz ``path`` straight into ``out`` (checked to have its shape and dtype), in
    chunks: a 7 GB frame store is restored without a second copy in memory."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        try:
            fh = zf.open(f"{name}.npy")
        except KeyError:
            raise ValueError(f"{path.name}: no array {name}") from None
        with fh:
            fmt = np.lib.format
            try:
                version = fmt.read_magic(fh)
                read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, fortran, dtype = read_header(fh)
            except ValueError as exc:
                raise ValueError(f"{path.name}: array {name} is not a .npy array ({exc})") from None
            if tuple(shape) != out.shape or dtype != out.dtype or fortran:
                raise ValueError(f"{path.name}: array {name} has shape {tuple(shape)} {dtype}, expected {out.shape} "
                                 f"{out.dtype}")
            flat = out.reshape(-1)
            if not np.shares_memory(flat, out):
                raise AssertionError("the replay arrays must be C-contiguous")
            buf = memoryview(flat.view(np.uint8))
            pos = 0
            while pos < len(buf):
                got = fh.readinto(buf[pos:pos + (64 << 20)])
                if not got:
                    raise ValueError(f"{path.name}: array {name} is truncated")
                pos += got
