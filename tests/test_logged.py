"""Histogram summaries of a batch of rows equal the one-row summaries, value for value."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tuneloop._logged import counts_of, summarize, summarize_rows


def _rows(batch):
    return [summarize(row) for row in np.asarray(batch, dtype=np.float64)]


def test_a_batch_of_weights_summarizes_as_each_row_alone():
    rng = np.random.default_rng(0)
    batch = np.concatenate([rng.normal(scale=s, size=(4, 4000)) for s in (1e-3, 0.1, 10.0)])
    batch[0, :7] = 0.0  # some exact zeros: zero_fraction counts them
    assert summarize_rows(batch) == _rows(batch)
    assert sum(counts_of(summarize_rows(batch)[3]["counts"])) == 4000


def test_values_on_bin_edges_and_the_top_edge_fall_where_numpy_puts_them():
    # a grid whose values sit on the bin edges, where the index arithmetic needs numpy's corrections
    batch = np.stack([np.linspace(-1.0, 1.0, 33), np.linspace(0.0, 3.2, 33), np.linspace(1e-8, 3e-8, 33)])
    assert summarize_rows(batch) == _rows(batch)
    for summary, row in zip(summarize_rows(batch), batch):
        assert counts_of(summary["counts"]) == np.histogram(row, bins=32, range=(row.min(), row.max()))[0].tolist()


def test_odd_rows_take_the_one_row_path_among_plain_ones():
    batch = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [np.nan, 1.0, 2.0], [np.inf, -np.inf, 0.0], [0.0, 0.0, 0.0],
                      [1e150, -1e150, 0.0], [1e20, 1e20, 1e20], [5e-324, 0.0, 1e-323],
                      [1.0, 1.0000000000000002, 1.0]])
    got = summarize_rows(batch)
    assert got == _rows(batch)
    assert got[2]["flag"] == "nonfinite" and got[2]["nonfinite"] == 1
    assert got[1]["counts"] == summarize([5.0, 5.0, 5.0])["counts"]  # a constant row: one unit-wide range


@pytest.mark.parametrize("values", [[1e20] * 3, [1.0, 1.0000000000000002], [5e-324, 0.0, 1e-323]])
def test_a_range_too_narrow_to_cut_into_bins_is_summarized_not_raised(values):
    # np.histogram refuses these ranges ("Too many bins for data range"); logging must not break a run
    summary = summarize(values)
    counts = counts_of(summary["counts"])
    assert sum(counts) == len(values) and counts[16] == len(values)
    assert (summary["low"], summary["high"]) == (min(values), max(values)) and summary["flag"] is None


def test_tensors_are_read_as_summarize_reads_them():
    batch = torch.randn(3, 50, dtype=torch.float64)
    assert summarize_rows(batch) == [summarize(row) for row in batch]  # float64 rounds through float32 in both
    assert summarize_rows(torch.zeros(0, 5)) == []
    assert summarize_rows(np.zeros((2, 0))) == _rows(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="2-D"):
        summarize_rows(np.zeros(3))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 40)),
              elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=True)))
def test_any_batch_of_finite_rows(batch):
    assert summarize_rows(batch) == _rows(batch)
