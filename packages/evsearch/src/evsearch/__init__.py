"""evsearch: an Optuna study over evtrain runs (``invoke search``).

settings (the [search] table), space (trial values -> run settings), objective (one trial),
study (storage, sampler, pruner, the worker loop), workers (--workers N), retrain (the best
trial as a normal run), output (table, plots, trials.json), records (the study folder's files as
attrs classes), report (the study page of ``invoke report --study``), api (``run_search``).
"""
