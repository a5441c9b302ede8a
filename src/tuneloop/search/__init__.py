"""Searchers: where the next configurations come from (grid, random, sobol, tpe, fasttpe, gp, cmaes)."""

from tuneloop.search._base import Lineage, Outcome, Proposal, Searcher, searchers
from tuneloop.search._fast_tpe import FastTPE
from tuneloop.search._fill import check_partial, complete, fill, parse_assignments
from tuneloop.search._grid import GridSearcher
from tuneloop.search._listed import Listed
from tuneloop.search._optuna import OptunaSearcher
from tuneloop.search._repeat import Repeated, repeated
from tuneloop.search._stratified import Stratified, nuisance_space, scientific_levels

__all__ = ["FastTPE", "GridSearcher", "Lineage", "Listed", "OptunaSearcher", "Outcome", "Proposal", "Repeated", "Searcher", "Stratified",
           "check_partial", "complete", "fill", "nuisance_space", "parse_assignments", "repeated", "scientific_levels", "searchers"]
