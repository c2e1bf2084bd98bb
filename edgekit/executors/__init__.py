"""Executors: where the benchmark jobs of a target run, one registered adapter per target ``access``.

:mod:`edgekit.executors.base` holds the :class:`~edgekit.executors.base.Executor` protocol, the job
planning and :func:`~edgekit.executors.base.run_targets` (what the pipeline calls). The adapters:
:mod:`edgekit.executors.local` (``local``: this process), :mod:`edgekit.executors.fleet` (``ssh``: the
on-device agent on boards, fanned out over an inventory, one job at a time per host, each board reached by
:mod:`edgekit.executors.ssh`: push artifact, inputs and the agent's modules to a per-run temp dir, run,
fetch the JSON, clean up) and :mod:`edgekit.executors.estimate` (``estimate``: a registered estimator of
:mod:`edgekit.estimators`). :mod:`edgekit.executors.hosts` says how to reach a board (``--host``,
``--inventory``).
"""
