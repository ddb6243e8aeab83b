"""The same spiking Q-network built from lava-dl's own ``slayer.block.cuba`` blocks: the reference the
benchmarks time our blocks against (it is what dsqn trained with before its own blocks; lava extra only).
Same parameters, same initialisation, same state-dict names as :class:`dsqn.layers.qnet.SpikingQNet`."""

from __future__ import annotations

import numpy as np
import torch

from dsqn.extras import import_lava_dl
from dsqn.layers.spec import NetSpec, conv_out

slayer = import_lava_dl("slayer")


class LavaDlQNet(torch.nn.Module):
    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        blocks: list[torch.nn.Module] = []
        shape = list(spec.input_shape)
        for i, layer in enumerate(spec.layers):
            p = spec.layer_params(i)
            params = {"threshold": float(p.threshold), "current_decay": spec.current_decay, "voltage_decay": spec.voltage_decay,
                      "tau_grad": spec.tau_grad, "scale_grad": spec.scale_grad, "requires_grad": False}
            if layer["type"] == "conv":
                k, s = int(layer["kernel"]), int(layer.get("stride", 1))
                blocks.append(slayer.block.cuba.Conv(params, shape[0], int(layer["out"]), k, stride=s, weight_scale=2))
                shape = [int(layer["out"]), conv_out(shape[1], k, s), conv_out(shape[2], k, s)]
            else:
                if len(shape) == 3:
                    blocks.append(slayer.block.cuba.Flatten())
                    shape = [int(np.prod(shape))]
                blocks.append(slayer.block.cuba.Dense(params, shape[0], int(layer["out"]), weight_scale=2))
                shape = [int(layer["out"])]
        if len(shape) == 3:
            blocks.append(slayer.block.cuba.Flatten())
            shape = [int(np.prod(shape))]
        self.blocks = torch.nn.ModuleList(blocks)
        readout = {"threshold": 1.0, "current_decay": 1.0, "voltage_decay": 0.0, "requires_grad": False}
        self.readout = slayer.block.cuba.Affine(readout, shape[0], spec.n_actions, weight_scale=1, dynamics=True)
        self.readout_bias = torch.nn.Parameter(torch.zeros(spec.n_actions))

    def forward(self, payload: torch.Tensor) -> torch.Tensor:
        T, L = self.spec.timesteps, self.spec.n_layers
        x = payload.unsqueeze(-1).repeat(*([1] * payload.dim()), T)
        x[..., 0] = 0
        for block in self.blocks:
            x = block(x)
        z = self.readout.synapse(x)
        active = torch.zeros(T, device=z.device, dtype=z.dtype)
        active[L:] = 1.0
        z = z + self.readout_bias[None, :, None] * active
        _, voltage = self.readout.neuron.dynamics(z)
        return self.spec.q_scale * voltage[..., -1] / T
