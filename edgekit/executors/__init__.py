"""Executors run the on-device agent (:mod:`edgekit.agent`) somewhere other than this process.

:mod:`edgekit.executors.ssh` reaches one board over SSH (push artifact, inputs and the agent's
modules to a per-run temp dir, run, fetch the JSON, clean up); :mod:`edgekit.executors.fleet` fans
jobs out over an inventory of boards, one job at a time per host, and turns each outcome into a
report :class:`~edgekit.results.Row`.
"""
