"""trial_record's fast paths (row unpacking, the JSON object scan, known states) read exactly what the
checked slow path reads, and a malformed row still fails with the same corrupt-row error."""

from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, select

from tuneloop.errors import StorageError
from tuneloop.store import TrialState, schema
from tuneloop.store._rows import loads_object, trial_record, word

TEXTS = ['{}', ' {"a":1}', '{"a":1} ', '{"a":NaN,"b":-Infinity}', '{"a":{"b":[1,2.5e-3]}}', '{"a":1,"a":2}', '[1]',
         'null', '{bad', '', '\ufeff{}', '{"a":1}{"b":2}', '{"a":' + '[' * 100000 + ']' * 100000 + '}', '}', '{"a":1,}']
STATES = ["completed", "pruned", "COMPLETED", "bogus", ""]


def _row(i, state, params, values):
    return {"id": i + 1, "study_id": 1, "number": i, "state": state, "params": params, "seed": 0, "attempt": 0,
            "value": 0.5, "values": values, "error": None, "created_at": 1.0, "started_at": None, "finished_at": 2.0}


def _slow(row):
    """What trial_record read before its fast paths, field by field."""
    what = f"trial {row.number} (id {row.id})"
    state = word(TrialState, row.state, f"the state of {what}")
    return {"state": state, "params": loads_object(row.params, f"the params of {what}"),
            "values": loads_object(row.values, f"the values of {what}")}


def _outcome(fn):
    try:
        return "ok", fn()
    except StorageError as e:
        return "error", str(e)


@pytest.fixture
def rows():
    raw = [_row(i, s, p, v) for i, (s, p, v) in enumerate((s, p, v) for s in STATES for p in TEXTS[:8] + TEXTS[::3]
                                                          for v in TEXTS[:4] + TEXTS[6:9])]
    engine = create_engine("sqlite://")
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        for r in raw:
            conn.exec_driver_sql("INSERT INTO trials VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", tuple(r.values()))
    with engine.connect() as conn:
        t = schema.trials
        stored = conn.execute(select(t).order_by(t.c.id)).all()
        reordered = conn.execute(select(*reversed(list(t.c))).order_by(t.c.id)).all()  # read by name, not unpacked
    return raw, stored, reordered


def test_every_row_reads_as_the_checked_path_reads_it(rows):
    raw, stored, reordered = rows
    for group in (stored, reordered, [SimpleNamespace(**r) for r in raw]):
        for row in group:
            fast = _outcome(lambda row=row: trial_record(row, {"k": 1}))
            slow = _outcome(lambda row=row: _slow(row))
            assert fast[0] == slow[0], row
            if fast[0] == "error":
                assert fast[1] == slow[1]
                continue
            record = fast[1]
            assert (record.state, record.params, record.values) == (slow[1]["state"], slow[1]["params"],
                                                                    slow[1]["values"]) or "NaN" in str(row)
            assert type(record.state) is TrialState and record.attrs == {"k": 1}
            assert (record.id, record.number, record.study_id, record.value, record.finished_at) == (
                row.id, row.number, row.study_id, row.value, row.finished_at)


def test_a_record_read_fast_equals_one_built_by_its_constructor(rows):
    from tuneloop.store import TrialRecord

    _, stored, _ = rows
    record = trial_record(stored[0])
    built = TrialRecord(id=record.id, number=record.number, state=record.state.value, params=record.params,
                        seed=record.seed, attempt=record.attempt, value=record.value, values=record.values,
                        error=record.error, created_at=record.created_at, started_at=record.started_at,
                        finished_at=record.finished_at, study_id=record.study_id, attrs={})
    assert record == built and list(vars(record)) == list(vars(built)) and repr(record) == repr(built)
    with pytest.raises(AttributeError):
        record.number = 3  # type: ignore[misc]  # still frozen
