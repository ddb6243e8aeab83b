"""Activity-regularised training (--synop-penalty, --rate-target) and the activity logged at every evaluation.

The estimate is :meth:`dsqn.layers.qnet.SpikingQNet.forward_activity`: per inference and netx layer, the synaptic operations
the emulator and Lava count (``dsqn.hw_sim.counters``) -- each hidden layer's output spikes over its whole window
times their fan-out, plus the first layer's graded input events times theirs -- computed from the spike tensors of
the training forward pass, so its backward is the surrogate gradient. Its forward value equals the emulator's count
on the same payloads exactly (tests/test_synop_penalty.py). Two loss terms, each off at 0:

* ``--synop-penalty λ``: ``λ * mean_batch(Σ_layers synops) / Σ_layers ANN MACs`` -- synaptic operations per
  inference relative to the dense MAC count of the same-shape ANN, so λ does not depend on the network's size
  (the ratio is the total spikes per synapse per inference when every ANN MAC is a synapse, as for dense layers);
* ``--rate-target r [r ...]``: ``Σ_hidden relu(rate_h - r_h) ** 2``, rate_h = the hidden layer's spikes per
  neuron and step over its window, mean over the batch: only a rate above r_h costs, quadratically (lava-dl's
  ``event_rate_loss`` of its tutorials, with weight 1). One r is every hidden layer's; else one per hidden layer,
  0 leaving a layer free.

With both at 0 (the defaults) the update runs exactly the code it ran before: the same forward pass, the same
arithmetic and no random draws, so a seed gives the same weights bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dsqn.errors import UserError
from dsqn.layers.qnet import Activity, SpikingQNet

from .config import TrainConfig
from .validation import rate_text

MEASURED_ON = "every observation of the evaluation's episodes (one inference per agent step, as dsqn-deploy counts)"


def layer_targets(rates: list[float], n_hidden: int) -> list[float]:
    """One rate target per hidden layer: none -> zeros, one -> everyone's, n_hidden -> as given (else a UserError)."""
    if len(rates) <= 1:
        return [rates[0] if rates else 0.0] * n_hidden
    if len(rates) != n_hidden:
        raise UserError(f"--rate-target {rate_text(rates)}: {len(rates)} values for {n_hidden} hidden spiking layers "
                        "(give one for all, or one per layer)")
    return list(rates)


class ActivityPenalty:
    """The activity term of a spiking network's loss (see the module doc); ``active`` is False when both are 0."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig) -> None:
        self.synop_penalty = float(cfg.synop_penalty)
        self.active = isinstance(model, SpikingQNet) and (self.synop_penalty > 0 or any(cfg.rate_target))
        self.rate_targets: list[float] = []
        if self.active:
            self.ann_macs = float(sum(model.ann_macs()))
            steps = model.spec.timesteps
            self.neuron_steps = [float(n * steps) for n in model.spec.layer_sizes()]
            self.rate_targets = layer_targets(cfg.rate_target, len(self.neuron_steps))

    def __call__(self, activity: Activity) -> torch.Tensor:
        """The penalty (a float32 scalar with the surrogate gradient) of a batch's activity."""
        loss = torch.zeros((), dtype=torch.float64, device=activity.synops[0].device)
        if self.synop_penalty > 0:
            loss = loss + self.synop_penalty * activity.total_synops().mean() / self.ann_macs
        for spikes, neuron_steps, target in zip(activity.spikes, self.neuron_steps, self.rate_targets):
            if target > 0:
                loss = loss + F.relu(spikes.mean() / neuron_steps - target) ** 2
        return loss.float()


class ActivityMeter:
    """Sums the activity of every inference shown to ``add`` (``SpikingQNet.activity``, no autograd): the runner
    shows it every observation of an evaluation's episodes, so its counts are the ones dsqn-deploy's emulator and
    Lava backends count on those episodes (the final evaluation's seeds are dsqn-deploy's default)."""

    def __init__(self, model: SpikingQNet) -> None:
        self.model = model
        n = model.spec.n_layers
        self.inferences = 0
        self.in_events, self.synops = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        self.spikes = np.zeros(n - 1, dtype=np.int64)

    @classmethod
    def of(cls, model: torch.nn.Module) -> ActivityMeter | None:
        """A meter for a spiking network; None for the ANN baselines (nothing to count)."""
        return cls(model) if isinstance(model, SpikingQNet) else None

    def add(self, payload: torch.Tensor) -> None:
        with torch.no_grad():
            act = self.model.activity(payload)
        self.inferences += payload.shape[0]

        def ints(values: list[torch.Tensor]) -> np.ndarray:
            return np.array([int(round(v.sum().item())) for v in values], dtype=np.int64)  # float64 sums of integers

        self.in_events += ints(act.in_events)
        self.synops += ints(act.synops)
        self.spikes += ints(act.spikes)

    def summary(self) -> dict:
        """Per inference, per netx layer (hidden layers, then the readout): synops, input events, synapses, spikes per
        synapse (synops / synapses, report.analysis's definition); per hidden layer: spikes and rate (per neuron and
        step); totals; and what was measured on."""
        n = max(1, self.inferences)
        synapses = self.model.synapse_counts()
        neuron_steps = [size * self.model.spec.timesteps for size in self.model.spec.layer_sizes()]
        synops = [int(s) / n for s in self.synops]
        return {
            "inferences": self.inferences, "measured_on": MEASURED_ON,
            "synops_per_inference": sum(synops), "synops": synops,
            "in_events": [int(e) / n for e in self.in_events], "synapses": synapses,
            "spikes_per_synapse": [s / max(1, k) for s, k in zip(synops, synapses)],
            "spikes_per_synapse_total": sum(synops) / max(1, sum(synapses)),
            "spikes": [int(s) / n for s in self.spikes],
            "rates": [int(s) / n / ns for s, ns in zip(self.spikes, neuron_steps)],
            "ann_macs": sum(self.model.ann_macs()),
        }

    @staticmethod
    def scalars(summary: dict) -> dict[str, float]:
        """TensorBoard tags (also metrics.csv kinds): synops/L<i>, spikes_per_synapse/L<i> (netx layer i: its synapses,
        from the payload for i = 0 to the readout's for the last), spikes/window_rate_L<h> (hidden layer h), totals."""
        out = {f"synops/L{i}": v for i, v in enumerate(summary["synops"])}
        out["synops/total"] = summary["synops_per_inference"]
        out.update({f"spikes_per_synapse/L{i}": v for i, v in enumerate(summary["spikes_per_synapse"])})
        out["spikes_per_synapse/total"] = summary["spikes_per_synapse_total"]
        out.update({f"spikes/window_rate_L{h}": v for h, v in enumerate(summary["rates"])})
        return out
