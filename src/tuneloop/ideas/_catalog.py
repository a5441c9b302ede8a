"""A starter catalogue of standard ideas, with default estimates to edit (``idea seed-catalog``).

Gains are in the objective's units for a classifier's accuracy; the probabilities follow the
practitioners' experience that one or two ideas in ten work.
"""

from __future__ import annotations

CATALOG: list[dict] = [
    {"title": "Try another optimizer (AdamW or SGD with Nesterov momentum)", "hours": 0.5, "complexity": 1,
     "gain": 0.01, "p": 0.2, "tags": ["optimizer"], "config": {"optimizer": "adamw"}},
    {"title": "LR schedule with warmup (warmup_cosine)", "hours": 0.5, "complexity": 1, "gain": 0.01, "p": 0.3,
     "tags": ["schedule"], "config": {"schedule": "warmup_cosine"}},
    {"title": "Weight decay sweep", "hours": 1.0, "complexity": 1, "gain": 0.01, "p": 0.3, "tags": ["regularization"]},
    {"title": "Dropout", "hours": 0.5, "complexity": 1, "gain": 0.01, "p": 0.2, "tags": ["regularization"]},
    {"title": "Wider or deeper model", "hours": 1.0, "complexity": 2, "gain": 0.02, "p": 0.25, "tags": ["model"]},
    {"title": "Data augmentation", "hours": 3.0, "complexity": 3, "gain": 0.03, "p": 0.3, "tags": ["data"]},
    {"title": "Label smoothing", "hours": 0.5, "complexity": 1, "gain": 0.005, "p": 0.2, "tags": ["regularization"],
     "config": {"label_smoothing": 0.1}},
    {"title": "Ensemble the top trials", "hours": 1.0, "complexity": 2, "gain": 0.02, "p": 0.6, "tags": ["ensemble"]},
    {"title": "Pretraining (self-supervised or on related data)", "hours": 8.0, "complexity": 4, "gain": 0.05, "p": 0.15,
     "tags": ["pretraining"]},
    {"title": "A non-deep-learning baseline (tuneloop baseline)", "hours": 0.25, "complexity": 1, "gain": 0.0, "p": 0.5,
     "tags": ["baseline"]},
]
