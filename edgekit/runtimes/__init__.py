"""Runtimes: load one artifact and run it, behind the :class:`~edgekit.runtimes.base.Runtime` protocol."""
