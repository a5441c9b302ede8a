"""The tables. Any change here bumps SCHEMA_VERSION (and adds a migration once one exists).

Timestamps are float seconds since the epoch (UTC); JSON columns hold text written with
``json.dumps`` so SQLite and PostgreSQL store exactly the same thing.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "tuneloop_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

studies = Table(
    "studies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("metric", String(255), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("space", Text, nullable=False),  # Space.to_json()
    Column("config", Text, nullable=False),  # seed, budget, experiment path, plug-in defaults
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

trials = Table(
    "trials",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("attempt", Integer, nullable=False, default=0),  # +1 each time an interrupted trial re-runs
    Column("value", Float),  # the objective's final value
    Column("values", Text),  # every final metric, JSON
    Column("error", Text),  # one-line cause, then the traceback
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    UniqueConstraint("study_id", "number", name="uq_trial_number"),
)
Index("ix_trials_study_state", trials.c.study_id, trials.c.state)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("step", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("value", Float),  # NULL stands for NaN (SQLite cannot hold NaN)
)
Index("ix_metrics_trial", metrics.c.trial_id, metrics.c.attempt, metrics.c.name, metrics.c.step)
