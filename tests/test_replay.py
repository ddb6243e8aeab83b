import numpy as np

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
