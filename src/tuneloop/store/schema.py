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
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 8  # 2: histograms, alerts, slices, samples; 3: checks; 4: ideas; 5: checkpoints, lineage; 6: leases;
# 7: trial_attrs; 8: jobs (the queue `tuneloop queue run` works through; its pause is a tuneloop_meta row)
# (each only adds tables)

metadata = MetaData()


def _per_trial() -> list[Column]:
    """The columns every per-trial log table starts with (fresh objects for each table)."""
    return [
        Column("id", Integer, primary_key=True),
        Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
        Column("attempt", Integer, nullable=False, default=0),  # matches trials.attempt when current
        Column("step", Integer, nullable=False),
    ]

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
    *_per_trial(),
    Column("name", String(255), nullable=False),
    Column("value", Float),  # NULL stands for NaN (SQLite cannot hold NaN)
)
Index("ix_metrics_trial", metrics.c.trial_id, metrics.c.attempt, metrics.c.name, metrics.c.step)

histograms = Table(
    "histograms",
    metadata,
    *_per_trial(),
    Column("name", String(255), nullable=False),
    Column("low", Float),  # equal-width bins from low to high over the finite values
    Column("high", Float),
    Column("counts", LargeBinary, nullable=False),  # little-endian uint32 per bin
    Column("n", Integer, nullable=False),  # every value, non-finite included
    Column("nonfinite", Integer, nullable=False),
    Column("stats", Text, nullable=False),  # JSON: mean, std, min, max, abs_max, zero_fraction
    Column("flag", String(32)),  # "empty" or "nonfinite": recorded, never raised
)
Index("ix_histograms_trial", histograms.c.trial_id, histograms.c.attempt, histograms.c.name, histograms.c.step)

alerts = Table(
    "alerts",
    metadata,
    *_per_trial(),
    Column("rule", String(255), nullable=False),
    Column("quantity", String(255), nullable=False),
    Column("value", Float),
    Column("action", String(8), nullable=False),  # warn | stop
    Column("message", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_alerts_trial", alerts.c.trial_id)

slices = Table(
    "slices",
    metadata,
    *_per_trial(),
    Column("slice", String(255), nullable=False),
    Column("metric", String(255), nullable=False),
    Column("value", Float),
    Column("n", Integer, nullable=False),
)
Index("ix_slices_trial", slices.c.trial_id, slices.c.attempt, slices.c.step)

samples = Table(
    "samples",
    metadata,
    *_per_trial(),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # image | text | array | table
    Column("path", Text),  # images: relative to the store's artifact folder
    Column("payload", Text),  # text, array or table: inline JSON
)
Index("ix_samples_trial", samples.c.trial_id, samples.c.attempt)

checkpoints = Table(
    "checkpoints",
    metadata,
    *_per_trial(),
    Column("path", Text, nullable=False),  # relative to the store's artifact folder
    Column("created_at", Float, nullable=False),
)
Index("ix_checkpoints_trial", checkpoints.c.trial_id, checkpoints.c.attempt, checkpoints.c.step)

lineage = Table(
    "lineage",
    metadata,
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True),
    Column("member", Integer, nullable=False),  # the configuration / population member it belongs to
    Column("generation", Integer, nullable=False),  # the rung (successive halving) or generation (PBT)
    Column("parent", Integer),  # the trial number whose checkpoint it started from
    Column("event", String(16), nullable=False),  # start | continue | promote | exploit
    Column("info", Text),  # JSON: the segment's budget and what the planner decided
)

# -- leases (issue 15): which live driver runs a trial, so a second driver leaves it alone ------------
leases = Table(
    "leases",
    metadata,
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True),
    Column("owner", String(64), nullable=False),  # the driver run holding it (a uuid per run)
    Column("host", String(255), nullable=False),  # its machine (hostname and PID namespace)
    Column("pid", Integer, nullable=False),  # its process there: a dead one frees the lease at once
    Column("heartbeat_at", Float, nullable=False),  # renewed every few seconds while the driver lives
)
Index("ix_leases_owner", leases.c.owner)

# -- trial attributes (issue 17): where a trial ran (device, host) and what the trial function set ------
trial_attrs = Table(
    "trial_attrs",
    metadata,
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),  # JSON: a string, number, bool or null
)

checks = Table(
    "checks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("run_at", Float, nullable=False),  # one ladder run: every row it wrote shares this
    Column("kind", String(16), nullable=False),  # check | baseline
    Column("name", String(255), nullable=False),
    Column("status", String(8), nullable=False),  # pass | fail | skip (baselines: pass)
    Column("value", Float),  # a baseline's score
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=False),  # JSON: evidence, causes, next step, metric
)
Index("ix_checks_study", checks.c.study_id, checks.c.run_at)

ideas = Table(
    "ideas",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", Text, nullable=False),
    Column("state", String(16), nullable=False),  # proposed | testing | adopted | rejected | parked
    Column("hours", Float, nullable=False),  # estimated
    Column("complexity", Integer, nullable=False),  # 1 (trivial) .. 5 (a lot of new code)
    Column("gain", Float, nullable=False),  # predicted improvement of the objective, if it works
    Column("p", Float, nullable=False),  # predicted probability that it works
    Column("tags", Text, nullable=False),  # JSON list
    Column("actual_hours", Float),
    Column("note", Text),  # the decision's note
    Column("config", Text),  # JSON: the overrides the idea adds to the baseline configuration
    Column("links", Text, nullable=False),  # JSON: studies and trials that tested it
    Column("created_at", Float, nullable=False),
    Column("decided_at", Float),
)

idea_tests = Table(
    "idea_tests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("idea_id", Integer, ForeignKey("ideas.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("study", String(255)),
    Column("metric", String(255), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("seeds", Text, nullable=False),  # JSON list
    Column("baseline", Text, nullable=False),  # JSON list of outcomes, one per seed
    Column("variant", Text, nullable=False),
    Column("result", Text, nullable=False),  # JSON Comparison
)
Index("ix_idea_tests_idea", idea_tests.c.idea_id)

# -- the job queue (issue 22): tuneloop commands `tuneloop queue run` runs one after another ---------------
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("position", Float, nullable=False),  # the queue's order (moving a job puts it between two others)
    Column("kind", String(16), nullable=False),  # run | idea-test | finalize | probe | check
    Column("args", Text, nullable=False),  # JSON list of the command's arguments
    Column("title", Text, nullable=False),
    Column("state", String(16), nullable=False),  # queued | running | done | failed | removed
    Column("paused", Integer, nullable=False, default=0),  # 1: a queued job no runner starts until resumed
    Column("runner", String(64)),  # the runner holding it (a uuid per `queue run`) ...
    Column("host", String(255)),  # ... on this machine (hostname and PID namespace) ...
    Column("pid", Integer),  # ... as this process: a dead one frees the job at once
    Column("heartbeat_at", Float),  # renewed while the job runs; a stale one frees it
    Column("attempts", Integer, nullable=False, default=0),  # +1 each time a runner starts it
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("exit_code", Integer),
    Column("tail", Text),  # the last few KB of its output
    Column("reason", Text),  # why it was refused, failed or left queued (the window)
    Column("estimate_s", Float),  # its expected duration from history; NULL: unknown
    Column("files", Text, nullable=False),  # JSON {path: sha256} of the files it names, as signed
    Column("signature", String(64)),  # HMAC of kind, args and files under the user's trust key
)
Index("ix_jobs_state_position", jobs.c.state, jobs.c.position)
