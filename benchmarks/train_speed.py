"""Training speed of the spiking Q-network beside the references, measured in one process.

Rows: our exact CUBA blocks (dsqn.layers.cuba), the same network from lava-dl's own slayer blocks (when the lava
extra is installed), an ANN of the same layers; and the dense-FLOP bound of the spiking update: the same ANN
update with every spiking layer's synaptic work done for all T steps (batch x T samples; the first layer once,
as the constant input needs), i.e. what any implementation without exploiting sparsity must spend.
Measures the time of one greedy action (batch 1), of one Double-DQN update (online forward over (o, o2),
target forward, backward, Adam step) and the resulting env-steps/s of the training loop. Prints medians; the
rows are timed round-robin (one call of each in turn), so load on a shared machine drifts over all of them
alike and the printed ratios hold even when the absolute times wander.

    python benchmarks/train_speed.py [--env-id CartPole-v1] [--repeats 200] [--device cpu|cuda] [--snn-steps T]
    python benchmarks/train_speed.py --env-id Breakout --preset data-efficient [--snn-steps 64] --no-lavadl

env steps/s = 1 / (act + env step + (replay sample + update) / train_freq): the loop of dsqn-train, each part timed.

A continuous-action environment (TD3, issue 10) times dsqn-train's own TD3 with the spiking actor beside the same
loop with the ANN actor (``--actor ann``): the exploring action at batch 1, one TD3 update (the mean of a pair:
TD3 updates the actor every second step), the env step and the replay sample:

    python benchmarks/train_speed.py --env-id HalfCheetah-v5 --repeats 50
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

with contextlib.redirect_stdout(io.StringIO()):
    from dsqn.train.config import make_config
    from dsqn.train.dqn import AnnQNet, build
    from dsqn.train.replay import FrameReplay, ReplayBuffer


class BoundNet(torch.nn.Module):
    """The ANN with the spiking network's synaptic work: layer 0 on B samples, every later layer on B*T."""

    def __init__(self, ann: AnnQNet, T: int) -> None:
        super().__init__()
        self.ann, self.T = ann, T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ann = self.ann
        mods = [*ann.convs, torch.nn.Flatten(), *ann.head] if len(ann.convs) else [torch.nn.Flatten(), *ann.head]
        x = x / ann.unit
        h = mods[1](mods[0](x))
        h = h.repeat_interleave(self.T, dim=0)
        for m in mods[2:]:
            h = m(h)
        return h.reshape(x.shape[0], self.T, -1).mean(1)


SYNC = {"fn": lambda: None}


def interleaved_medians(fns: list, repeats: int) -> list[float]:  # type: ignore[type-arg]
    """Median ms of each function, timed round-robin (one call of each in turn) so that the machine's load
    drifts over all rows alike and their ratios stay meaningful on a shared, noisy machine."""
    for fn in fns:
        fn()
    SYNC["fn"]()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            SYNC["fn"]()
            times[k].append(time.perf_counter() - t)
    return [statistics.median(ts) * 1e3 for ts in times]


def closures(model: torch.nn.Module, target: torch.nn.Module, x: torch.Tensor, batch: int):  # type: ignore[no-untyped-def]
    """(act, update) of one row: a greedy action at batch 1, one Double-DQN update as dsqn-train does it."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)  # as dsqn-train uses it, for every row
    o, o2 = x[:batch], x[batch : 2 * batch]
    a = torch.zeros(batch, dtype=torch.long, device=x.device)

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

    return act, update


def replay_ms(env_id: str, spec, cfg, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """One replay sample of a batch, as the training loop draws it: the Atari frame store rebuilding 4-frame stacks
    (and summing n-step returns) from a store filled by a random policy, or the vector memory."""
    from dsqn.envs import make_env

    n = 5_000
    if len(spec.input_shape) == 3:
        rb = FrameReplay(n, tuple(spec.input_shape[1:]), spec.input_shape[0], seed=0, gamma=cfg.gamma, n_step=cfg.n_step)
        env = make_env(env_id, train=True)
        obs, _ = env.reset(seed=0)
        rb.reset(obs)
        for _ in range(n):
            obs, r, term, trunc, _ = env.step(env.action_space.sample())
            rb.add(0, float(r), obs, term)
            if term or trunc:
                obs, _ = env.reset()
                rb.reset(obs)
        env.close()
    else:
        rb = ReplayBuffer(n, tuple(spec.input_shape), seed=0)
        for _ in range(n):
            rb.add(np.zeros(spec.input_shape), 0, 0.0, np.zeros(spec.input_shape), False, cfg.gamma)
    return interleaved_medians([lambda: rb.sample(cfg.batch_size)], repeats)[0]


def env_ms(env_id: str, repeats: int) -> float:
    from dsqn.envs import make_env

    env = make_env(env_id, train=True)
    env.reset(seed=0)

    def env_step() -> None:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()

    return interleaved_medians([env_step], repeats)[0]


def td3_rows(cfg, repeats: int) -> None:  # type: ignore[no-untyped-def]
    """TD3 with the spiking actor beside TD3 with the ANN actor: the loop's parts, timed round-robin."""
    import dataclasses

    from dsqn.envs import make_env
    from dsqn.train.td3 import TD3

    algos = [(name, TD3(dataclasses.replace(cfg, actor=actor), torch.device("cpu")))
             for name, actor in ((f"TD3, spiking actor (T={cfg.snn_steps})", "snn"), ("TD3, ANN actor (same shape)", "ann"))]
    spec = algos[0][1].spec
    rb = ReplayBuffer(10_000, tuple(spec.input_shape), seed=0, action_shape=algos[0][1].action_shape)
    rng = np.random.default_rng(0)
    hi = int(algos[0][1].encoder.unit)
    for _ in range(10_000):
        rb.add(rng.integers(0, hi, spec.input_shape), rng.uniform(-1, 1, algos[0][1].action_shape).astype(np.float32),
               float(rng.normal()), rng.integers(0, hi, spec.input_shape), False, cfg.gamma)
    env = make_env(cfg.env_id, train=True)
    env.reset(seed=0)
    payload = rng.integers(0, hi, spec.input_shape).astype(np.float32)
    batch = rb.sample(cfg.batch_size)

    def act(algo):  # type: ignore[no-untyped-def]
        return lambda: algo.explore(env, payload, cfg.learning_starts)

    def update(algo):  # type: ignore[no-untyped-def]
        return lambda: (algo.update(batch, 0, False), algo.update(batch, 0, False))

    t_act = interleaved_medians([act(a) for _, a in algos], repeats * 4)
    t_upd = [t / 2 for t in interleaved_medians([update(a) for _, a in algos], repeats)]
    t_rb = interleaved_medians([lambda: rb.sample(cfg.batch_size)], repeats)[0]
    t_env = env_ms(cfg.env_id, repeats * 4)
    sizes = [*spec.input_shape, *[layer["out"] for layer in spec.layers], spec.n_actions]
    print(f"{cfg.env_id}: TD3, actor {sizes} (two-neuron encoding), critics {list(cfg.critic_hidden)}, batch "
          f"{cfg.batch_size}, one update per env step, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"medians ({repeats} update pairs)")
    print(f"{'loop':<40} {'act ms':>8} {'update ms':>10} {'env ms':>8} {'replay ms':>9} {'env steps/s':>12}")
    rates = []
    for (name, _), ta, tu in zip(algos, t_act, t_upd):
        rates.append(1e3 / (ta + t_env + tu + t_rb))
        print(f"{name:<40} {ta:>8.3f} {tu:>10.3f} {t_env:>8.4f} {t_rb:>9.3f} {rates[-1]:>12.1f}")
    steps = cfg.total_timesteps - cfg.learning_starts
    print(f"spiking/ANN: update x{t_upd[0] / t_upd[1]:.2f}, env steps/s x{rates[0] / rates[1]:.2f}; the {steps} learning "
          f"steps of a {cfg.total_timesteps}-step run: ~{steps / rates[0] / 60:.0f} vs ~{steps / rates[1] / 60:.0f} min")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env-id", default="CartPole-v1")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--snn-steps", type=int, default=0, help="T of the spiking network (0 = the config default)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--preset", default="", help="Atari preset (paper, data-efficient, cpu): its T, batch and update period")
    p.add_argument("--batch", type=int, default=0, help="batch size (0 = the config default)")
    p.add_argument("--no-lavadl", action="store_true", help="skip the lava-dl reference row")
    p.add_argument("--no-bound", action="store_true", help="skip the dense-FLOP bound row")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        from dsqn.layers.exact import exact_matmul_settings

        exact_matmul_settings()
        SYNC["fn"] = torch.cuda.synchronize
    given = {k: v for k, v in (("snn_steps", args.snn_steps), ("batch_size", args.batch)) if v}
    from dsqn.envs import is_continuous

    if is_continuous(args.env_id):
        td3_rows(make_config(args.env_id, out="unused", **{"batch_size": 256, **given}), args.repeats)
        return
    cfg = make_config(args.env_id, preset=args.preset, out="unused", **{"batch_size": 64, **given})
    snn, spec, enc = build(cfg)
    snn_t, _, _ = build(cfg)
    hi = 256 if enc.kind == "pixels" else 40
    x = torch.from_numpy(np.random.default_rng(0).integers(0, hi, (2 * cfg.batch_size, *spec.input_shape)).astype(np.float32)).to(dev)
    sizes = [*spec.input_shape, *[layer["out"] for layer in spec.layers], spec.n_actions]
    ann, ann_t = AnnQNet(spec), AnnQNet(spec)  # dsqn-train --qnet ann
    runs = [(f"SNN dsqn.layers.cuba (exact, T={spec.timesteps})", snn, snn_t)]
    if not args.no_lavadl:
        try:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the reference network's one home
            from support.lavadl_qnet import LavaDlQNet

            ref, ref_t = LavaDlQNet(spec), LavaDlQNet(spec)
            ref.load_state_dict(snn.state_dict())
            runs.append((f"SNN lava-dl slayer (T={spec.timesteps})", ref, ref_t))
        except ImportError:
            print("(lava-dl not installed: no lava-dl reference row)")
    runs.append(("ANN (ReLU, same layers)", ann, ann_t))
    if not args.no_bound:
        runs.append((f"dense-FLOP bound (ANN x T={spec.timesteps})", BoundNet(ann, spec.timesteps), BoundNet(ann_t, spec.timesteps)))
    fns = []
    for _, model, target in runs:
        model.to(dev)
        target.to(dev)
        fns.append(closures(model, target, x, cfg.batch_size))
    t_act = interleaved_medians([f[0] for f in fns], args.repeats)
    t_upd = interleaved_medians([f[1] for f in fns], args.repeats)
    t_env = env_ms(args.env_id, args.repeats)
    t_rb = replay_ms(args.env_id, spec, cfg, args.repeats)
    # one env step of the loop: act, step the env, and every train_freq steps one replay sample and one update
    rows = [{"name": name, "act_ms": ta, "update_ms": tu, "env_ms": t_env, "replay_ms": t_rb,
             "steps_per_s": 1e3 / (ta + t_env + (tu + t_rb) / cfg.train_freq)} for (name, _, _), ta, tu in zip(runs, t_act, t_upd)]
    print(f"{args.env_id}: layers {sizes}, batch {cfg.batch_size}, one update every {cfg.train_freq} env steps, "
          f"torch {torch.__version__}, threads {args.threads}, device {args.device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if dev.type == 'cuda' else ''}, medians of {args.repeats}")
    print(f"{'network':<40} {'act ms':>8} {'update ms':>10} {'env ms':>8} {'replay ms':>9} {'env steps/s':>12}")
    for r in rows:
        print(f"{r['name']:<40} {r['act_ms']:>8.3f} {r['update_ms']:>10.3f} {r['env_ms']:>8.4f} {r['replay_ms']:>9.3f} "
              f"{r['steps_per_s']:>12.1f}")
    by = {r["name"].split(" (")[0]: r for r in rows}
    ours, ann_row = rows[0], by["ANN"]
    print(f"ours/ANN: update x{ours['update_ms'] / ann_row['update_ms']:.2f}, act x{ours['act_ms'] / ann_row['act_ms']:.2f}")
    if "SNN lava-dl slayer" in by:
        ref = by["SNN lava-dl slayer"]
        print(f"lava-dl/ANN: update x{ref['update_ms'] / ann_row['update_ms']:.2f}; "
              f"ours is x{ref['update_ms'] / ours['update_ms']:.1f} faster per update, x{ref['act_ms'] / ours['act_ms']:.1f} per action")
    if "dense-FLOP bound" in by:
        print(f"ours / dense-FLOP bound: update x{ours['update_ms'] / by['dense-FLOP bound']['update_ms']:.2f}")


if __name__ == "__main__":
    main()
