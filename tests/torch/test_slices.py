"""Per-slice evaluation (``slices_of``): slices named by any grouping, sorted naturally."""

import torch

from tuneloop.torch._slices import slices_of


def test_slices_sort_naturally_whatever_words_and_digits_their_names_hold():
    groups = ["age 20", "age unknown", "x²", "age 3", "class 10", "class 2"]
    out = slices_of(torch.zeros(6, 2), torch.tensor([0, 1, 0, 1, 0, 1]), groups)
    assert [k for k in out if k != "_confusion"] == ["age 3", "age 20", "age unknown", "class 2", "class 10", "x²"]
