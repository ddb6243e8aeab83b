"""Progress in a log: one plain line every interval (no carriage returns), and one at the end."""

import io

from dsqn.progress import LineProgress


def test_line_progress_prints_a_line_per_interval_and_at_close():
    now = [100.0]
    out = io.StringIO()
    bar = LineProgress(total=1000, initial=200, desc="CartPole-v1", interval=30.0, file=out, clock=lambda: now[0])
    for _ in range(10):  # 10 steps in 10 s: under the interval, nothing printed
        now[0] += 1.0
        bar.update(1)
    assert out.getvalue() == ""
    bar.set_postfix(ret="35", eps="0.50")
    now[0] += 20.0
    bar.update(90)  # 30 s after the start: one line
    bar.update(1)  # right after it: none
    now[0] += 10.0
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue().splitlines() == [
        "CartPole-v1: 300/1000 steps (30.0 %), 3.3 steps/s, ret 35, eps 0.50",
        "CartPole-v1: 301/1000 steps (30.1 %), 2.5 steps/s, ret 35, eps 0.50",
    ]
    assert "\r" not in out.getvalue()
