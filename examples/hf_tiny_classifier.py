"""Tune a Hugging Face ``Trainer``: a 2-layer BERT (hidden size 32) built from its config, on token
sequences generated here (label: does token 5 appear?). Nothing is downloaded.

    tuneloop run examples/hf_tiny_classifier.py --trials 12      # ASHA prunes the slow learners
    tuneloop show hf-tiny-classifier 0                          # eval curves, loss / lr / grad_norm logs
    tuneloop serve                                              # the dashboard
    tuneloop finalize hf-tiny-classifier --top 2 --seeds 3      # retrain the best, evaluate once on test

The trial function is an ordinary Trainer script; the tuneloop lines are marked ``# tuneloop``.
"""

import tempfile

import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, PrinterCallback, Trainer, TrainingArguments

import tuneloop as tl  # tuneloop
from tuneloop.integrations.transformers import TuneloopCallback  # tuneloop

VOCAB, LENGTH = 16, 12


class TokenRule(Dataset):
    """``n`` random sequences of tokens 2..15; the label is whether token 5 occurs."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randint(2, VOCAB, (n, LENGTH), generator=generator)
        self.y = (self.x == 5).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def accuracy(prediction) -> dict:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


space = tl.Space(  # tuneloop
    learning_rate=tl.LogFloat(1e-4, 1e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-1),
    dropout=tl.Float(0.0, 0.3),
    batch_size=tl.Choice([16, 32, 64]),
)


def train(trial: tl.Trial) -> None:  # tuneloop: was `def main():`
    p = trial.params  # tuneloop
    data = {"train": TokenRule(512, seed=0), "val": TokenRule(256, seed=1), "test": TokenRule(256, seed=2)}
    train_set, eval_set = trial.splits(data)  # tuneloop: (train, val) while tuning, (train, test) in finalize
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2,
                        hidden_dropout_prob=p.dropout, attention_probs_dropout_prob=p.dropout)
    torch.manual_seed(trial.seed)  # tuneloop
    model = BertForSequenceClassification(config)
    args = TrainingArguments(
        output_dir=f"{tempfile.gettempdir()}/hf-tiny-classifier",  # stays empty: save_strategy="no"
        report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no",
        eval_strategy="epoch", logging_steps=4, seed=trial.seed,  # tuneloop: the trial's seed
        learning_rate=p.learning_rate, weight_decay=p.weight_decay,  # tuneloop: the trial's parameters
        per_device_train_batch_size=p.batch_size,  # tuneloop
        num_train_epochs=trial.budget.epochs,  # tuneloop
    )
    callback = TuneloopCallback(trial, metric="eval_loss")  # tuneloop
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                      compute_metrics=accuracy, callbacks=[callback])  # tuneloop: callbacks=
    trainer.remove_callback(PrinterCallback)  # optional: quiet, tuneloop shows the progress
    trainer.train(resume_from_checkpoint=callback.resume_from())  # tuneloop: resume_from (sha, pbt)


study = tl.Study("hf-tiny-classifier", space, train, metric="eval_loss", mode="min",  # tuneloop
                 budget={"epochs": 6}, scheduler={"name": "asha", "min_resource": 2, "reduction_factor": 2})

if __name__ == "__main__":  # `python examples/hf_tiny_classifier.py` works too
    study.run(n_trials=12, progress=True)
    print(study.best)
