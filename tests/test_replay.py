import numpy as np
import pytest
import torch

from dsqn.envs import make_env
from dsqn.train.replay import FrameReplay


def test_frame_replay_rebuilds_the_env_stacks_exactly():
    env = make_env("Breakout", train=True)
    rb = FrameReplay(capacity=150, frame_shape=(84, 84), stack=4, seed=0)
    seen = {}
    obs, _ = env.reset(seed=0)
    rb.reset(obs)
    rng = np.random.default_rng(0)
    for _ in range(400):  # wraps the ring buffer more than twice, crosses episode ends
        a = int(rng.integers(0, env.action_space.n))
        nxt, r, term, trunc, _ = env.step(a)
        rb.add(a, float(r), nxt, term)
        seen[rb.next_abs - 1] = (obs.copy(), a, nxt.copy())
        obs = nxt
        if term or trunc:
            obs, _ = env.reset()
            rb.reset(obs)
    env.close()
    o, a, r, o2, d, _ = rb.sample(64)
    oldest = rb.next_abs - rb.cap
    checked = 0
    for j in range(oldest + 4, rb.next_abs):
        if j in seen and not rb.is_start[j % rb.cap]:
            prev, act, nxt = seen[j]
            assert np.array_equal(rb.stack_at(np.array([j - 1]))[0], prev)
            assert np.array_equal(rb.stack_at(np.array([j]))[0], nxt)
            checked += 1
    assert checked > 100
    assert o.shape == (64, 4, 84, 84) and o2.shape == (64, 4, 84, 84)
    assert rb.frames.nbytes == 150 * 84 * 84  # each frame stored once


def _synthetic(n_step: int, cap: int = 64) -> tuple[FrameReplay, dict]:
    """A frame store filled by hand: episode A terminates after 5 steps, episode B is truncated after 4 (the next
    slot starts C), C is still running. Frame k holds the value k; reward of the transition into slot j is j."""
    rb = FrameReplay(capacity=cap, frame_shape=(2, 2), stack=2, seed=3, gamma=0.5, n_step=n_step)
    slots = {}
    k = 0
    for length, terminated in ((5, True), (4, False), (3, False)):
        rb.reset(np.full((2, 2, 2), k, np.uint8))
        k += 1
        for t in range(length):
            done = terminated and t == length - 1
            slots[rb.next_abs] = done
            rb.add(action=t, reward=float(rb.next_abs), next_obs=np.full((2, 2, 2), k, np.uint8), done=done)
            k += 1
    return rb, slots


def test_frame_replay_n_step_returns_stop_at_terminations_truncations_and_the_newest_slot():
    rb, _ = _synthetic(n_step=3)
    # slots: A = 0 (start), 1..5 (5 terminates); B = 6 (start), 7..10; C = 11 (start), 12..14 (14 the newest)
    ret, last, done, steps = rb.n_step_returns(np.array([1, 4, 5, 8, 9, 10, 13, 14]))
    g = 0.5
    assert ret.tolist() == [1 + g * 2 + g * g * 3, 4 + g * 5, 5, 8 + g * 9 + g * g * 10, 9 + g * 10, 10, 13 + g * 14, 14]
    assert last.tolist() == [3, 5, 5, 10, 10, 10, 14, 14]
    assert done.tolist() == [0, 1, 1, 0, 0, 0, 0, 0]  # a truncated episode bootstraps; a terminated one does not
    assert steps.tolist() == [3, 2, 1, 3, 2, 1, 2, 1]
    one = _synthetic(n_step=1)[0]
    ret1, last1, done1, steps1 = one.n_step_returns(np.array([1, 5, 9]))
    assert ret1.tolist() == [1, 5, 9] and last1.tolist() == [1, 5, 9] and done1.tolist() == [0, 1, 0] and steps1.tolist() == [1, 1, 1]
    b = rb.sample(200)
    assert set(np.unique(b.discounts.numpy()).tolist()) <= {0.5, 0.25, 0.125}


def test_frame_replay_checkpoint_round_trip_continues_the_same_samples(tmp_path):
    rb, _ = _synthetic(n_step=3, cap=10)  # 15 slots written into 10: wrapped
    path = tmp_path / "replay.npz"
    rb.save(path, {"token": "abc", "env_id": "Breakout", "preset": "paper"})
    copy = FrameReplay(capacity=10, frame_shape=(2, 2), stack=2, seed=99, gamma=0.5, n_step=3)
    copy.load(path, {"token": "abc", "env_id": "Breakout", "preset": "paper"})
    assert len(copy) == len(rb) == 10 and copy.next_abs == rb.next_abs
    for _ in range(3):  # the sampling RNG continues where it was
        for x, y in zip(rb.sample(8), copy.sample(8)):
            assert torch.equal(x, y)
    for key, val, needle in (("token", "xyz", "token"), ("env_id", "Pong", "env_id 'Breakout'"), ("preset", "data-efficient", "preset")):
        with pytest.raises(ValueError, match=needle):
            copy.load(path, {"token": "abc", "env_id": "Breakout", "preset": "paper", key: val})
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:-200])  # a replay file cut short (a disk that filled up under another writer)
    with pytest.raises(ValueError, match="cut.npz is damaged"):
        copy.load(cut, {"token": "abc"})
    small = FrameReplay(capacity=9, frame_shape=(2, 2), stack=2, seed=0, gamma=0.5)
    with pytest.raises(ValueError, match="capacity 10 differs"):
        small.load(path, {"token": "abc"})
    assert not list(tmp_path.glob(".*tmp*"))
