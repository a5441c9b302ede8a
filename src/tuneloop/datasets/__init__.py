"""Offline demo data: generated (MNIST-1D) or shipped with a package; nothing is downloaded."""

from tuneloop.datasets._mnist1d import Splits, mnist1d

#: Test accuracies reported in the MNIST-1D paper (Greydanus & Kobak), for comparison.
MNIST1D_REFERENCE = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "GRU": 0.91}

__all__ = ["MNIST1D_REFERENCE", "Splits", "mnist1d"]
