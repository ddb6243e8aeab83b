"""Training speed of the spiking Q-network beside an ANN DQN of the same shape and hyperparameters.

Measures, in one process: the time of one greedy action (batch 1), the time of one DQN update
(Double DQN: online forward over (o, o2), target forward, backward, Adam step) and the resulting
env-steps/s of the training loop (CartPole-v1, one update per env step). Prints medians.

    .venv/bin/python benchmarks/train_speed.py [--env-id CartPole-v1] [--repeats 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

with contextlib.redirect_stdout(io.StringIO()):
    from dsqn.train.config import TrainConfig, resolve
    from dsqn.train.dqn import build


class AnnQNet(torch.nn.Module):
    """ReLU network with the spiking network's layers (dense and conv), for the same-shape baseline."""

    def __init__(self, input_shape: list[int], layers: list[dict], n_actions: int) -> None:
        super().__init__()
        mods: list[torch.nn.Module] = []
        shape = list(input_shape)
        for layer in layers:
            if layer["type"] == "conv":
                mods += [torch.nn.Conv2d(shape[0], layer["out"], layer["kernel"], layer.get("stride", 1)), torch.nn.ReLU()]
                k, st = layer["kernel"], layer.get("stride", 1)
                shape = [layer["out"], (shape[1] - k) // st + 1, (shape[2] - k) // st + 1]
            else:
                if len(shape) == 3:
                    mods.append(torch.nn.Flatten())
                    shape = [shape[0] * shape[1] * shape[2]]
                mods += [torch.nn.Linear(shape[0], layer["out"]), torch.nn.ReLU()]
                shape = [layer["out"]]
        mods.append(torch.nn.Linear(shape[0], n_actions))
        self.net = torch.nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def median_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def bench(name: str, model: torch.nn.Module, target: torch.nn.Module, x: torch.Tensor, env_id: str, repeats: int, batch: int,
          train_freq: int) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    o, o2 = x[:batch], x[batch : 2 * batch]
    a = torch.zeros(batch, dtype=torch.long)

    def act() -> None:
        with torch.no_grad():
            model(x[:1]).argmax(1)

    def update() -> None:
        q_both = model(torch.cat([o, o2]))
        with torch.no_grad():
            q_next = target(o2).gather(1, q_both[batch:].argmax(1, keepdim=True)).squeeze(1)
        loss = F.smooth_l1_loss(q_both[:batch].gather(1, a[:, None]).squeeze(1), 0.99 * q_next)
        opt.zero_grad()
        loss.backward()
        opt.step()

    from dsqn.envs import make_env

    env = make_env(env_id, train=True)
    env.reset(seed=0)

    def env_step() -> None:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()

    t_act, t_upd, t_env = median_ms(act, repeats), median_ms(update, repeats), median_ms(env_step, repeats)
    return {"name": name, "act_ms": t_act, "update_ms": t_upd, "env_ms": t_env, "steps_per_s": 1e3 / (t_act + t_upd / train_freq + t_env)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env-id", default="CartPole-v1")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timesteps", type=int, default=0, help="T of the spiking network (0 = the config default)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    explicit = {"timesteps"} if args.timesteps else set()
    cfg = resolve(TrainConfig(env_id=args.env_id, timesteps=args.timesteps or 8), explicit)
    snn, spec, enc = build(cfg)
    snn_t, _, _ = build(cfg)
    hi = 256 if enc.kind == "pixels" else 40
    x = torch.from_numpy(np.random.default_rng(0).integers(0, hi, (2 * cfg.batch_size, *spec.input_shape)).astype(np.float32))
    sizes = [*spec.input_shape, *[layer["out"] for layer in spec.layers], spec.n_actions]
    ann, ann_t = AnnQNet(spec.input_shape, spec.layers, spec.n_actions), AnnQNet(spec.input_shape, spec.layers, spec.n_actions)
    rows = [bench(f"SNN (slayer CUBA, T={spec.timesteps})", snn, snn_t, x, args.env_id, args.repeats, cfg.batch_size, cfg.train_freq),
            bench("ANN (ReLU, same layers)", ann, ann_t, x, args.env_id, args.repeats, cfg.batch_size, cfg.train_freq)]
    print(f"{args.env_id}: layers {sizes}, batch {cfg.batch_size}, one update every {cfg.train_freq} env steps, "
          f"torch threads {args.threads}, device cpu, medians of {args.repeats}")
    print(f"{'network':<32} {'act ms':>8} {'update ms':>10} {'env ms':>8} {'env steps/s':>12}")
    for r in rows:
        print(f"{r['name']:<32} {r['act_ms']:>8.3f} {r['update_ms']:>10.3f} {r['env_ms']:>8.4f} {r['steps_per_s']:>12.1f}")
    print(f"SNN/ANN: update time x{rows[0]['update_ms'] / rows[1]['update_ms']:.1f}, "
          f"training throughput x{rows[1]['steps_per_s'] / rows[0]['steps_per_s']:.1f} slower")


if __name__ == "__main__":
    main()
