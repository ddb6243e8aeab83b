"""dsqn-sweep: Optuna hyperparameter sweeps of spiking Q-networks, score versus energy per inference.

Each trial is the command line ``dsqn-train ... --out <trial dir>`` (the exact command that reproduces it), then
``dsqn-export`` and ``dsqn-deploy --backend emu`` over the final evaluation's episodes for the energy per inference.
"""
