"""dsqn-train: deep spiking Q-networks from SLAYER-compatible exact CUBA-LIF blocks, trained with DQN / Double DQN."""
