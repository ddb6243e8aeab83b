"""dsqn-train: deep spiking Q-networks from SLAYER-compatible exact CUBA-LIF blocks, trained with DQN / Double DQN,
and spiking TD3 actors. ``dsqn.train(...)`` calls :func:`dsqn.api.train`."""

from dsqn.callable_module import make_callable

make_callable(__name__, "train")
