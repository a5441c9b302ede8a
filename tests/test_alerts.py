"""Rules: bounds, finiteness, fractions in range, histogram statistics, once per quantity."""

import numpy as np
import pytest

import tuneloop as tl
from tuneloop._logged import summarize
from tuneloop.alerts import RuleBook


def test_scalar_bounds_and_finiteness():
    rule = tl.Rule("loss", min=0.0, max=10.0)
    assert rule.check_scalar(5.0) is None
    assert rule.check_scalar(11.0) == "= 11 is above 10"
    assert rule.check_scalar(-1.0) == "= -1 is below 0"
    assert rule.check_scalar(float("nan")) is None  # finiteness is its own rule
    assert tl.Rule("*", finite=True).check_scalar(float("inf")) == "is not finite"


def test_histogram_statistic_and_fraction_in_range():
    summary = summarize(np.concatenate([np.zeros(60), np.linspace(1, 2, 40)]))
    dead = tl.Rule("dead_relu/*", stat="zero_fraction", max=0.5)
    value, why = dead.check_histogram(summary)
    assert value == pytest.approx(0.6) and "zero_fraction = 0.6 is above 0.5" in why
    in_range = tl.Rule("w", in_range=(0.5, 3.0), at_least=0.9)
    value, why = in_range.check_histogram(summary)
    assert value == pytest.approx(0.4) and "40% of its values in [0.5, 3.0]" in why
    assert tl.Rule("w", in_range=(-1.0, 3.0), at_least=0.9).check_histogram(summary) is None


def test_empty_and_non_finite_histograms_are_summarized_not_raised():
    assert summarize([])["flag"] == "empty"
    s = summarize([1.0, float("nan"), float("inf")])
    assert s["flag"] == "nonfinite" and s["nonfinite"] == 2 and s["stats"]["max"] == 1.0
    assert tl.Rule("*", finite=True).check_histogram(s)[1] == "holds 2 non-finite of 3 values"
    all_nan = summarize([float("nan")] * 4)
    assert all_nan["low"] is None and all_nan["nonfinite"] == 4


def test_rulebook_matches_globs_and_fires_once_per_trial_and_quantity():
    book = RuleBook([tl.Rule("grad/*", max=1.0, hint="clip")])
    assert book.scalar(1, "loss", 5.0) == []
    (fired,) = book.scalar(1, "grad/fc1", 2.0)
    assert fired.quantity == "grad/fc1" and fired.message == "grad/*: grad/fc1 = 2 is above 1; clip"
    assert book.scalar(1, "grad/fc1", 3.0) == []  # already fired for this trial and quantity
    assert len(book.scalar(2, "grad/fc1", 3.0)) == 1  # another trial
    assert len(book.scalar(1, "grad/fc2", 3.0)) == 1  # another quantity


@pytest.mark.parametrize("kwargs, message", [
    ({"action": "halt"}, "The 'action' argument of Rule must be 'warn' or 'stop'"),
    ({"stat": "median"}, "The 'stat' argument of Rule must be one of"),
    ({"in_range": (0, 1)}, "'in_range' and 'at_least' go together"),
])
def test_bad_rules(kwargs, message):
    with pytest.raises(tl.ConfigError, match=message.replace("(", r"\(")):
        tl.Rule("x", **kwargs)


def test_default_rules_cover_the_issue_list():
    names = {r.label for r in tl.default_rules()}
    assert names == {"non-finite", "exploding activations", "exploding gradient norm", "dead ReLUs",
                     "update-to-weight ratio", "loss at initialization"}
    with pytest.raises(tl.ConfigError, match="The 'rules' argument of Study"):
        tl.Study("s", tl.Space(x=tl.Float(0, 1)), print, metric="m", mode="min", rules="strict")


def test_rules_apply_to_every_quantity_name_however_many_a_run_logs():
    # a RuleBook remembers which rules match a name; past its memory's bound it still checks every name
    book = RuleBook([tl.Rule("loss/*", max=1.0), tl.Rule("*", finite=True)])
    for i in range(5000):
        fired = book.scalar(1, f"loss/{i}", 2.0)
        assert [f.rule.pattern for f in fired] == ["loss/*"], i
        assert book.scalar(1, f"acc/{i}", float("nan"))[0].rule.pattern == "*"
        assert book.scalar(2, f"acc/{i}", 0.5) == []
