"""Bridges from other training frameworks to a tuneloop ``Trial``: the framework keeps its loop,
the callback reports to the trial, stops training when the scheduler says so, and carries
checkpoints for successive halving and PBT.

    from tuneloop.integrations.lightning import TuneloopCallback      # pip install 'tuneloop[lightning]'
    from tuneloop.integrations.transformers import TuneloopCallback   # pip install 'tuneloop[transformers]'

Each module imports its framework only when it is imported itself, and names the extra to install
when the framework is missing.
"""
