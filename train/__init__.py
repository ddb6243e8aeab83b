"""dsqn-train: deep spiking Q-networks from lava-dl CUBA-LIF blocks, trained with DQN / Double DQN."""
