"""The population engine: many ``fit`` runs of one architecture trained in one vectorized pass.

    results = fit_population([dict(model=make_mlp, train=data.train, val=data.val, lr=lr, seed=s, ...)
                              for lr, s in configs])

Each job is the keyword arguments of :func:`tuneloop.torch.fit`, and its result is what
``fit(**job)`` returns, within float rounding: the same initialization (the model is built under
the job's seed), the same data order and dropout masks (each member keeps its own random
streams), the same optimizer rules (:mod:`tuneloop.torch._member_optim`) and schedules, the same
epoch selection, early stopping, reports and checkpoints.

Jobs are grouped into buckets that can share one pass: equal architecture (module types,
configuration and parameter shapes), optimizer family, batch size, data, loss and device (each
member counts its own epochs and steps, so starting points may differ). Everything else is a per-member tensor: learning rate and its schedule and warmup,
weight decay, momentum, betas, eps, dropout rate, initialization scale, label smoothing,
gradient clipping, epochs and patience. A bucket too large for memory is split into chunks.
A member that stops (patience, a scheduler's verdict, divergence, its last epoch) leaves the
population: parameters and optimizer state shrink with ``index_select``. With ``refill``, jobs
join at epoch boundaries in the slots members left (``Population.add``, the inverse).
"""

from tuneloop.torch._population._jobs import bucket_groups, bucket_keys
from tuneloop.torch._population._loop import fit_population, run_jobs
from tuneloop.torch._population._loss import MemberLoss
from tuneloop.torch._population._memory import peak_memory_mb
from tuneloop.torch._population._state import Population

__all__ = ["MemberLoss", "Population", "bucket_groups", "bucket_keys", "fit_population", "peak_memory_mb", "run_jobs"]
