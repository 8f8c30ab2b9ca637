"""A LightningModule trained by lightning.Trainer inside a scalinglab trial function.

scalinglab picks the subset (trial.indices), the width and the seed; Lightning trains; the shipped
callback reports the dev error per epoch. Data: scikit-learn's 8x8 digits (real scans), split once.
"""

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from scalinglab.integrations.lightning import ScalinglabCallback

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_pool, X_dev, y_pool, y_dev = train_test_split(X, y, train_size=1280, stratify=y, random_state=0)


class DigitsMLP(L.LightningModule):
    def __init__(self, width: int, lr: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
        self.lr = lr

    def training_step(self, batch, _):
        x, t = batch
        return nn.functional.cross_entropy(self.net(x), t)

    def validation_step(self, batch, _):
        x, t = batch
        self.log("val_error", (self.net(x).argmax(1) != t).float().mean(), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def train(trial):
    L.seed_everything(trial.seed, verbose=False)
    idx = trial.indices
    tr = DataLoader(
        TensorDataset(torch.from_numpy(X_pool[idx]), torch.from_numpy(y_pool[idx])), batch_size=64, shuffle=True
    )
    dv = DataLoader(TensorDataset(torch.from_numpy(X_dev), torch.from_numpy(y_dev)), batch_size=1024)
    model = DigitsMLP(trial.model_size["width"], trial.hparams["lr"])
    cb = ScalinglabCallback(trial, monitor="val_error")
    L.Trainer(
        max_epochs=trial.hparams["max_epochs"],
        callbacks=[cb],
        accelerator=trial.device,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=trial.workdir,
    ).fit(model, tr, dv)
    return {"dev": cb.best, "params": sum(p.numel() for p in model.parameters())}
