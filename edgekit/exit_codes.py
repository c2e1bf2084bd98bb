"""The exit statuses of the ``edgekit`` command, one rule for the command line and the Python API
(:func:`edgekit.exit_status`, :meth:`edgekit.compare.Comparison.exit_status`)."""

from __future__ import annotations

EXIT_OK = 0
"""Every target has a recommended artifact within the accuracy budget (``compare``: no row breached)."""
EXIT_USER_ERROR = 2
"""Bad input: an option, a file, a model or data edgekit cannot use (one ``edgekit: error:`` line)."""
EXIT_NOTHING_WITHIN_BUDGET = 3
"""The run finished, but some target has no artifact within the budget (the report says which)."""
EXIT_REGRESSION = 4
"""A regression against the baseline beyond ``--fail-on`` (``edgekit compare``, ``edgekit run --baseline``)."""

EXIT_CODES_HELP = """\
exit status:
  0  every target has a recommended artifact within the accuracy budget
  2  bad input (an option, a file, a model or data edgekit cannot use): one 'edgekit: error:' line
  3  the run finished, but some target has no artifact within the budget (a target where nothing
     was measured, only estimated, counts too); the report and the last lines name the targets
  4  a regression against --baseline beyond --fail-on (4 wins over 3)
  130 / 143  interrupted (Ctrl-C / SIGTERM); re-running resumes
The same rule from Python: edgekit.exit_status(result)."""
