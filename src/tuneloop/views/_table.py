"""The study page's trials table, a page at a time (sorted and filtered in SQL), and the compact
columns of the completed trials that its plots draw.

The dashboard never sends a study's trials whole: at 10,000 trials the rows were 3.7 MB of the
study's 5.7 MB answer and most of the Python time building it. The table asks for the page it
shows (:func:`trials_page_view`); the per-parameter plots, the parallel coordinates and the front
draw from :func:`done_columns` (a list per field, not an object per trial). The one-file report, which
cannot ask a server, still embeds every row (:func:`tuneloop.views.study_view`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.export import strict_json
from tuneloop.store import Store, TrialRecord, TrialState
from tuneloop.store._pages import sort_key
from tuneloop.views._front import feasibility
from tuneloop.views._trial import trial_row

PAGE_ROWS = 200  # the table's rows per page (app.js shows the same number)


def trials_page_view(store: Store, name: str, *, offset: int = 0, limit: int = PAGE_ROWS, sort: str = "number",
                     order: str = "asc", state: str = "all") -> dict[str, Any]:
    """Rows ``offset`` .. ``offset + limit`` of study ``name``'s trials (each as :func:`trial_row`, with its
    feasibility), sorted by ``sort`` (``number``, ``state``, ``value``, ``duration``, ``device``,
    ``param:NAME``, ``metric:NAME``) in ``order`` (``asc``/``desc``), only those in ``state`` unless
    ``all``; with how many match and how many the study has."""
    from tuneloop.analysis._study import _all_params

    record = store.require_study(name)
    objectives = record.objectives
    if order not in ("asc", "desc"):
        raise ConfigError(f"order must be asc or desc, not {order[:40]!r}.")
    try:
        wanted = None if state == "all" else TrialState(state)
    except ValueError:
        raise ConfigError(f"No trial state {state[:40]!r}: use all or one of "
                          f"{', '.join(s.value for s in TrialState)}.") from None
    key = sort_key(sort, set(_all_params(record.space)), set(objectives.metrics))
    page = store.trial_page(record.id, offset=offset, limit=limit, sort=key, descending=order == "desc", state=wanted)
    return strict_json({"rows": [{**trial_row(t), **feasibility(objectives, t)} for t in page.rows],
                        "offset": offset, "limit": limit, "matched": page.matched, "total": page.total,
                        "sort": sort, "order": order, "state": state})


def done_columns(record: Any, done: Sequence[TrialRecord], params: Sequence[str]) -> dict[str, Any]:
    """The completed trials (finite value) as columns: ``number``, ``value``, ``params`` (one list per
    parameter, None where a trial lacks it) and ``absent`` (per parameter some trials lack, their
    positions); with several objectives each one's ``values``; with constraints ``feasible`` and
    ``broken`` (the constraints a trial breaks, as text)."""
    objectives = record.objectives
    out: dict[str, Any] = {"number": [t.number for t in done], "value": [t.value for t in done],
                           "params": {p: [t.params.get(p) for t in done] for p in params}}
    # a parameter some trials lack (a conditional one): where, since None may also be one of its values
    absent = {p: [i for i, t in enumerate(done) if p not in t.params] for p in params}
    out["absent"] = {p: where for p, where in absent.items() if where}
    if objectives.multi:
        out["values"] = {o: [t.values.get(o) for t in done] for o in objectives.names}
    if objectives.constraints:
        rows = [feasibility(objectives, t) for t in done]
        out["feasible"] = [r["feasible"] for r in rows]
        out["broken"] = [r["broken"] for r in rows]
    return out
