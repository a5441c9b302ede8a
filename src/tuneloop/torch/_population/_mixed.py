"""Padded populations are probed before they train: members the padded model does not reproduce
exactly (a model that normalizes over channels, flattens channel-last, reads its sizes in forward)
train in populations of their own exact architecture instead."""

from __future__ import annotations

from typing import Any

from tuneloop.torch._population._jobs import Member
from tuneloop.torch._stacked import StackedModel, signature

_PROBE = 8  # training inputs the probe runs


def exact_groups(bucket: list[Member]) -> list[list[Member]]:
    """``bucket`` split into the members that can train padded together (first) and groups of equal
    exact architecture for the rest. Buckets that pad nothing (one architecture, or not a padded
    vmap key) come back whole."""
    if not _padded(bucket[0].key):
        return [bucket]
    sig = {id(m): signature(m.net) for m in bucket}  # each member's exact architecture, computed once
    if len(set(sig.values())) == 1:
        return [bucket]
    passing, failed = list(bucket), []
    while len({sig[id(m)] for m in passing}) > 1:
        # one member per architecture (they share the verdict): the probe's stacked model stays small
        first: dict[Any, Member] = {}
        for m in passing:
            first.setdefault(sig[id(m)], m)
        try:
            shown = StackedModel([m.net for m in first.values()]).exact_members(passing[0].train.x[:_PROBE])
        except Exception:  # noqa: BLE001 - unverified is never padded: every architecture trains on its own
            passing, failed = [], list(bucket)
            break
        ok = dict(zip(first, shown, strict=True))
        verdict = [ok[sig[id(m)]] for m in passing]
        if all(verdict):
            break
        failed += [m for m, good in zip(passing, verdict) if not good]
        passing = [m for m, good in zip(passing, verdict) if good]
    groups: dict[Any, list[Member]] = {}
    for m in failed:
        m.key = (sig[id(m)], *m.key[1:])
        groups.setdefault(m.key, []).append(m)
    return ([passing] if passing else []) + list(groups.values())


def _padded(key: tuple[Any, ...]) -> bool:
    return isinstance(key[0], tuple) and key[0][:1] == ("padded-vmap",)
