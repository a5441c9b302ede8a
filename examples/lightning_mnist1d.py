"""Tune a Lightning module on MNIST-1D: an ordinary LightningModule and DataModule, plus one callback.

    tuneloop run examples/lightning_mnist1d.py --trials 16 --workers 2
    tuneloop show lightning-mnist1d 0                     # curves: val_acc, val_loss, train_loss, step/train_loss
    tuneloop run examples/lightning_mnist1d.py --scheduler sha --workers 2 --storage sha.db  # from checkpoints
    tuneloop finalize lightning-mnist1d --top 2 --seeds 3  # retrain the best, test once

``TuneloopCallback`` reports the metrics the module logs at each validated epoch (ASHA prunes the
weak trials; the trial ends *pruned*), logs the per-step values under ``step/<name>``, and carries
model, optimizer and schedule state through tuneloop's checkpoints under ``sha`` and ``pbt``.
The lines that differ from a stand-alone Lightning script are marked ``# tuneloop``.
"""

import logging

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.integrations.lightning import TuneloopCallback


class MNIST1DData(L.LightningDataModule):
    """Two (x, y) array pairs served as shuffled training batches and one validation pass."""

    def __init__(self, train: tuple, val: tuple, batch_size: int = 128) -> None:
        super().__init__()
        self.train_set = TensorDataset(*map(torch.as_tensor, train))
        self.val_set = TensorDataset(*map(torch.as_tensor, val))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=1024)


class Classifier(L.LightningModule):
    """An MLP over the 40 MNIST-1D features, AdamW with a cosine schedule over ``epochs``."""

    def __init__(self, width: int = 128, dropout: float = 0.1, lr: float = 1e-3, weight_decay: float = 1e-4,
                 epochs: int = 20) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(40, width), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # what inference runs (tuneloop times it: latency_ms)
        return self.net(x)

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.hparams.epochs)}


space = tl.Space(
    lr=tl.LogFloat(1e-4, 3e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-2),
    width=tl.Int(32, 256, log=True),
    dropout=tl.Float(0.0, 0.5),
)


def train(trial: tl.Trial) -> None:  # tuneloop: the script's body, in a function of the trial
    p = trial.params
    L.seed_everything(trial.seed, verbose=False)
    fit_on, heldout = trial.splits(mnist1d())  # tuneloop: (train, val) while tuning, (train, test) in finalize
    model = Classifier(width=p.width, dropout=p.dropout, lr=p.lr, weight_decay=p.weight_decay,
                       epochs=trial.budget.get("schedule_epochs", trial.budget.epochs))  # sha/pbt: the whole schedule
    trainer = L.Trainer(
        max_epochs=trial.budget.epochs,  # tuneloop
        callbacks=[TuneloopCallback(trial, monitor="val_acc")],  # tuneloop
        logger=False,  # tuneloop stores the curves; a TensorBoardLogger or CSVLogger here works beside it
        log_every_n_steps=5, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=MNIST1DData(fit_on, heldout))


logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # one Trainer per trial: keep its banner quiet

study = tl.Study("lightning-mnist1d", space, train, metric="val_acc", mode="max", budget={"epochs": 20},
                 searcher="tpe", scheduler={"name": "asha", "min_resource": 2})

if __name__ == "__main__":  # `python examples/lightning_mnist1d.py` works too
    study.run(n_trials=16, workers=2, progress=True)
    print(study.best)
