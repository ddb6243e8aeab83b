"""Environment construction and per-environment observation scales (shared by train and deploy)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dsqn.errors import UserError

# Divisors that bring each observation component to about [-1, 1] (two-neuron encoding input).
OBS_SCALES: dict[str, tuple[float, ...]] = {
    "CartPole-v1": (2.4, 3.0, 0.21, 3.0),
    # Acrobot's velocities span +-4pi and +-9pi, but the start and the swing-up live at a few rad/s: dividing by
    # pi and 2pi gives 0.05 rad/s per payload level (saturating above 4pi / 8pi); by 4pi and 9pi the start
    # state's velocities all encoded as 0 and no network (SNN or ANN) learned to leave it.
    "Acrobot-v1": (1.0, 1.0, 1.0, 1.0, np.pi, 2.0 * np.pi),
    "MountainCar-v0": (1.2, 0.07),
    "LunarLander-v3": (1.0, 1.0, 2.0, 2.0, 1.0, 2.0, 1.0, 1.0),
    # Pendulum: cos, sin in [-1, 1]; the angular velocity in [-8, 8]
    "Pendulum-v1": (1.0, 1.0, 8.0),
    # MuJoCo (unbounded Boxes): joint positions / angles in their units, velocities divided by 10 (Hopper clips its
    # velocities to +-10; the two-neuron payload saturates beyond 255 / 2**frac_bits ~ 4 normalised units).
    "HalfCheetah-v5": (1.0,) * 8 + (10.0,) * 9,
    "Hopper-v5": (1.0,) * 5 + (10.0,) * 6,
}


# The DSQN paper's 17 games; any ALE game is accepted by name ("Breakout" or "ALE/Breakout-v5").
PAPER_GAMES = ("Atlantis", "BeamRider", "Boxing", "Breakout", "CrazyClimber", "Gopher", "Jamesbond", "Kangaroo", "Krull",
               "NameThisGame", "Pong", "RoadRunner", "SpaceInvaders", "StarGunner", "Tennis", "Tutankham", "VideoPinball")
ATARI_FRAMES_CAP = 108_000
# Mnih et al. 2015's evaluation protocol (followed by the DSQN paper and the reference scores): at most five minutes
# of play per episode, 18,000 frames = 4500 agent steps at frame skip 4. An episode cut shorter is not a score.
ATARI_EVAL_STEPS = 4_500
# The seed of the final evaluation's first episode (dsqn-train) and dsqn-deploy's default: the same episodes.
FINAL_EVAL_SEED = 20_000_000


def atari_game(env_id: str) -> str | None:
    """'ALE/Breakout-v5' or 'Breakout' -> 'Breakout'; None for non-Atari ids."""
    if env_id.startswith("ALE/"):
        return env_id[4:].split("-")[0]
    if env_id in PAPER_GAMES:
        return env_id
    return None










def make_atari(game: str, train: bool, render_mode: str | None = None) -> gym.Env:
    """Standard DQN preprocessing: up to 30 no-op starts, frame skip 4 with max over the last two frames,
    84x84 grayscale, 4 stacked frames, the 108k-frame cap; life loss ends an episode only in training."""
    from dsqn.extras import require

    require(f"the Atari game {game}", "atari", "ale_py", "cv2")
    import ale_py
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0, max_num_frames_per_episode=ATARI_FRAMES_CAP,
                   render_mode=render_mode)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=train, grayscale_obs=True)
    return FrameStackObservation(env, 4)


class EpsilonGreedy:
    """The evaluation protocol's epsilon-greedy choice (Atari: epsilon 0.05) with one generator per episode, seeded
    by that episode's environment seed: an episode makes the same random choices whether it runs alone
    (dsqn-deploy --epsilon) or beside others (dsqn-train's batched evaluation), so deployed = trained holds for
    epsilon-greedy evaluations too. The greedy action is computed on every step (the chip runs every inference)."""

    def __init__(self, epsilon: float, episode_seed: int, n_actions: int) -> None:
        self.epsilon, self.n_actions = float(epsilon), int(n_actions)
        self.rng = np.random.default_rng(episode_seed)

    def __call__(self, greedy: int) -> int:
        if self.epsilon > 0 and self.rng.random() < self.epsilon:
            return int(self.rng.integers(0, self.n_actions))
        return greedy


def unknown_env_hint(env_id: str, game: str | None) -> str:
    """For an id gymnasium does not know: the paper's games (an Atari name) or the closest registered ids."""
    import difflib

    games = "; the DSQN paper's 17 games: " + ", ".join(PAPER_GAMES) + " (any ALE game as ALE/<Game>-v5)"
    if game is not None:
        return games
    close = difflib.get_close_matches(env_id, [*gym.registry, *PAPER_GAMES], n=3, cutoff=0.75)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def make_env(env_id: str, seed: int | None = None, train: bool = False, render_mode: str | None = None) -> gym.Env:
    game = atari_game(env_id)
    try:
        kw = {} if render_mode is None else {"render_mode": render_mode}  # envs without a render_mode argument exist
        env = make_atari(game, train, render_mode) if game is not None else gym.make(env_id, **kw)
    except (gym.error.Error, ImportError) as exc:  # ImportError: an id "module:Env" whose module is missing
        if isinstance(exc, gym.error.DependencyNotInstalled) and "mujoco" in str(exc).lower():
            from dsqn.extras import missing_extra

            raise missing_extra(env_id, "mujoco") from None
        why = " ".join(str(exc).split())
        if isinstance(exc, gym.error.NameNotFound | gym.error.NamespaceNotFound | gym.error.VersionNotFound):
            why = why.rstrip(".") + unknown_env_hint(env_id, game)
        raise UserError(f"cannot create environment {env_id!r}: {why}") from None
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def check_discrete_actions(env: gym.Env, env_id: str) -> None:
    """The DQN trainer picks one of n actions: a continuous (Box) action space is refused in one line."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return
    if isinstance(space, gym.spaces.Box):
        raise UserError(f"{env_id}: continuous action space {space}; DQN needs a discrete action space "
                        "(use --algo td3 for a Box action space)")
    raise UserError(f"{env_id}: action space {space} is not discrete; DQN needs a discrete action space")


def check_box_actions(env: gym.Env, env_id: str) -> tuple[list[float], list[float]]:
    """TD3's actor outputs a vector of bounded continuous actions: a Box of one dimension with finite bounds.
    Returns (low, high)."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        raise UserError(f"{env_id}: discrete action space {space}; TD3 needs a continuous (Box) action space "
                        "(use --algo dqn)")
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise UserError(f"{env_id}: action space {space} is not a vector Box; TD3 needs one")
    low, high = np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise UserError(f"{env_id}: action space {space} has infinite bounds; the actor's tanh readout needs finite ones")
    if not np.all(low < high):
        raise UserError(f"{env_id}: action space {space} has a dimension with low >= high")
    return low.tolist(), high.tolist()


def is_continuous(env_id: str) -> bool:
    """Whether the environment's actions are a Box (TD3) rather than discrete (DQN); False when it cannot be made
    (the one-line error then comes where the environment is built)."""
    if atari_game(env_id) is not None:
        return False
    try:
        env = make_env(env_id)
    except UserError:
        return False
    try:
        return isinstance(env.action_space, gym.spaces.Box)
    finally:
        env.close()


def check_box_observations(env: gym.Env, env_id: str) -> None:
    """The encoders take arrays of numbers (a Box observation space)."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or not space.shape:
        raise UserError(f"{env_id}: observation space {space} is not an array of numbers (a Box); the encoders need one")


def check_spaces(env: gym.Env, obs_shape: tuple[int, ...], n_actions: int, env_id: str, kind: str = "q") -> None:
    """The environment must match what the network was built for: ``n_actions`` discrete actions for a Q readout,
    a Box of ``n_actions`` dimensions with finite bounds for an action readout."""
    if kind == "action":
        check_box_actions(env, env_id)
        if tuple(env.action_space.shape) != (n_actions,):
            raise UserError(f"{env_id}: environment actions have {env.action_space.shape[0]} dimensions, the network "
                            f"outputs {n_actions}")
    elif not isinstance(env.action_space, gym.spaces.Discrete):
        raise UserError(f"{env_id}: action space {env.action_space} is not discrete")
    elif int(env.action_space.n) != n_actions:
        raise UserError(f"{env_id}: environment has {env.action_space.n} actions, the network has {n_actions}")
    shape = env.observation_space.shape
    if shape is None or tuple(shape) != tuple(obs_shape):
        raise UserError(f"{env_id}: observation shape {shape} does not match the network's input {tuple(obs_shape)}")


def obs_scale_for(env_id: str, env: gym.Env) -> tuple[float, ...]:
    if env_id in OBS_SCALES:
        return OBS_SCALES[env_id]
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1 and np.all(np.isfinite(space.high)):
        return tuple(float(max(abs(lo), abs(hi), 1e-6)) for lo, hi in zip(space.low, space.high))
    return tuple(1.0 for _ in range(int(np.prod(space.shape))))
