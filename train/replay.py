"""Replay memories: encoded vectors for classic control, and a frame store for Atari.

``FrameReplay`` stores every 84x84 frame once as uint8 (1M transitions ~ 7.1 GB) and rebuilds the
4-frame stacks on sampling, padding at episode starts with the reset frame exactly as gymnasium's
``FrameStackObservation`` does.
"""

from __future__ import annotations

import numpy as np
import torch


class FrameReplay:
    def __init__(self, capacity: int, frame_shape: tuple[int, int], stack: int, seed: int, gamma: float = 0.99) -> None:
        self.cap, self.stack, self.gamma = capacity, stack, gamma
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

    def sample(self, n: int) -> tuple[torch.Tensor, ...]:
        oldest = max(0, self.next_abs - self.cap)
        out: list[int] = []
        while len(out) < n:
            j = self.rng.integers(oldest + 1, self.next_abs, size=2 * n)
            i = j % self.cap
            ok = ~self.is_start[i] & (np.maximum(j - self.stack, self.start[i]) >= oldest)
            out.extend(j[ok].tolist())
        j = np.asarray(out[:n], dtype=np.int64)
        i = j % self.cap
        return (
            torch.from_numpy(self.stack_at(j - 1).astype(np.float32)),
            torch.from_numpy(self.actions[i]),
            torch.from_numpy(self.rewards[i]),
            torch.from_numpy(self.stack_at(j).astype(np.float32)),
            torch.from_numpy(self.dones[i]),
            torch.full((len(j),), self.gamma, dtype=torch.float32),  # 1-step transitions: the discount is gamma
        )
