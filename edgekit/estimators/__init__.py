"""Estimators: hardware-free compiler estimates for NPUs (:mod:`edgekit.estimators.vela`: Arm Ethos-U), behind
the :class:`~edgekit.estimators.base.Estimator` protocol and run by the ``estimate`` executor."""
