"""What ``fit(..., diagnostics=True)`` records each epoch: gradient norms, update ratios, dead ReLUs."""

from __future__ import annotations

import numpy as np

from ..nn.layers import ReLU

#: Rows used to measure the fraction of dead ReLUs (diagnostics=True).
DIAG_ROWS = 512


class Diagnostics:
    """Per-layer gradient norms, update-to-weight ratios and dead ReLUs.

    Gradient norms are averaged over the epoch's batches; the update ratio
    ``||step|| / ||W||`` is measured on each epoch's last batch for weight
    matrices; a ReLU unit is dead if it outputs 0 for every one of the first
    ``DIAG_ROWS`` training rows.
    """

    def __init__(self, net):
        self.net = net
        self.grad_sums: dict[str, float] = {}
        self.n = 0
        self.before: dict[str, np.ndarray] = {}

    def after_backward(self, last: bool) -> None:
        for name, p, g in self.net.named_parameters():
            self.grad_sums[name] = self.grad_sums.get(name, 0.0) + float(np.linalg.norm(g))
            if last and p.ndim == 2 and p.shape[0] > 1:
                self.before[name] = p.copy()
        self.n += 1

    def epoch_logs(self, X) -> dict:
        logs = {f"grad_norm/{k}": v / max(self.n, 1) for k, v in self.grad_sums.items()}
        params = self.net.parameters()
        for name, old in self.before.items():
            norm = float(np.linalg.norm(old))
            step = float(np.linalg.norm(params[name] - old))
            logs[f"update_ratio/{name}"] = step / norm if norm > 0 else 0.0
        x = X[:DIAG_ROWS]
        for layer in self.net.layers:
            x = layer.forward(x, False)
            if type(layer) is ReLU:  # LeakyReLU and friends cannot die
                logs[f"dead_relu/{layer.name}"] = float(1.0 - (x > 0).any(axis=0).mean())
        self.grad_sums, self.n, self.before = {}, 0, {}
        return logs

    def state_dict(self) -> dict:
        return {"grad_sums": dict(self.grad_sums), "n": self.n, "before": dict(self.before)}

    def load_state_dict(self, state: dict) -> None:
        self.grad_sums = {k: float(v) for k, v in state["grad_sums"].items()}
        self.n = int(state["n"])
        self.before = {k: np.array(v) for k, v in state["before"].items()}
