"""Known, harmless library noise, silenced when edgekit is imported.

Every Hugging Face command printed three lines on stderr before its own output: torchao (imported by transformers'
quantizer registry) logs "Failed to load .../torchao/_C_*.so" for each of its optional GPU kernels it cannot load
on this CPU-only torch, and torch's ``_pytree`` logs a deprecation warning for each Enum torchao registers. A user
mistake then read as four lines, the first three about libraries they never asked for. Each is dropped by a
:class:`logging.Filter` on the logger that emits it, matched by its message, so that every other warning of those
libraries, and every line of edgekit's own, still shows.
"""

from __future__ import annotations

import logging

#: (logger, what its message starts with, what the message must also hold) of each dropped record.
NOISE: tuple[tuple[str, str, str], ...] = (
    ("torchao", "Failed to load ", "torchao"),
    ("torch.utils._pytree", "%s is an Enum subclass and is now natively supported", ""),
)


class _Drop(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix`` and holds ``holds``."""

    def __init__(self, prefix: str, holds: str) -> None:
        super().__init__()
        self.prefix, self.holds = prefix, holds

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith(self.prefix) and self.holds in msg)


def quiet_library_noise() -> None:
    """Install the :data:`NOISE` filters (once; before or after the libraries are imported, as loggers are global)."""
    for name, prefix, holds in NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) and (f.prefix, f.holds) == (prefix, holds) for f in logger.filters):
            logger.addFilter(_Drop(prefix, holds))
