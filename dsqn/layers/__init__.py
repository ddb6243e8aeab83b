"""Torch layers built on the kernels: SLAYER-compatible CUBA blocks, the spiking Q-network / actor, and what the
readout voltage means."""
