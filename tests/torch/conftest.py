"""Fixtures of the population engine's oracle suites: tiny real data, and float64 for exact comparisons."""

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def data():
    """Four noisy 1-D patterns of length 16: small enough for float64, hard enough to keep learning."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 240)
    t = np.linspace(0, 1, 16)
    x = np.sin(2 * np.pi * (y[:, None] + 1) * t) + rng.normal(0, 0.8, (240, 16))
    return (x[:160], y[:160]), (x[160:], y[160:])


@pytest.fixture
def float64():
    """torch's default dtype float64 for the test (the oracle comparisons are exact to 1e-10 there)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)
