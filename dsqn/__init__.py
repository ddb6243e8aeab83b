"""DSQN toolchain: train deep spiking Q-networks with exact Loihi arithmetic, export them to NetX, deploy on Lava/Loihi.

Stages live in sibling folders mapped into this package: ``dsqn.train``, ``dsqn.export``,
``dsqn.deploy``, ``dsqn.hw_sim``. Modules directly in ``dsqn`` are shared by all stages.
"""

__version__ = "0.1.0"
