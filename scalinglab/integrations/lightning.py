"""Lightning: report a `LightningModule`'s dev metric to scalinglab, epoch by epoch.

    from scalinglab.integrations.lightning import ScalinglabCallback

    def train(trial):
        cb = ScalinglabCallback(trial, monitor="val_error")
        lightning.Trainer(max_epochs=trial.hparams["max_epochs"], callbacks=[cb], ...).fit(model, ...)
        return {"dev": cb.best, "params": sum(p.numel() for p in model.parameters())}

After each validation epoch the callback reads `monitor` from `trainer.callback_metrics` (what the
module logged with `self.log`), stores it in the trial's history (with the other scalar metrics
logged that epoch), and stops the trainer when the search gives up on the trial
(`trial.should_stop()`). Needs `pip install 'scalinglab[lightning]'`.
"""

from __future__ import annotations

import math

try:
    import lightning as L
except ImportError as e:  # pragma: no cover - the extra is not installed
    from scalinglab.errors import UserError

    raise UserError(
        f"scalinglab.integrations.lightning needs Lightning ({e}); allowed: pip install 'scalinglab[lightning]'"
    ) from None


class ScalinglabCallback(L.Callback):
    def __init__(self, trial, monitor: str = "val_error", mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode: given {mode!r}; allowed: min or max")
        self.trial, self.monitor, self.mode = trial, monitor, mode
        self.values: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:  # Lightning's 2-batch check before training: not an epoch
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        if self.monitor not in metrics:
            raise KeyError(
                f"ScalinglabCallback: monitor {self.monitor!r} was not logged; logged: "
                f"{', '.join(sorted(metrics)) or 'nothing'} (log it with self.log in validation_step)"
            )
        v = metrics.pop(self.monitor)
        self.values.append(v)
        self.trial.report(
            epoch=trainer.current_epoch + 1, dev=v, **{k: x for k, x in metrics.items() if math.isfinite(x)}
        )
        if self.trial.should_stop():
            trainer.should_stop = True

    @property
    def best(self) -> float | None:
        """The best monitored value over the epochs (min, or max with mode="max")."""
        ok = [v for v in self.values if math.isfinite(v)]
        if not ok:
            return None
        return min(ok) if self.mode == "min" else max(ok)
