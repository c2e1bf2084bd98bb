"""``python -m edgekit ...``: the same command as the ``edgekit`` script."""

from __future__ import annotations

import sys

from edgekit.cli import main

if __name__ == "__main__":
    sys.exit(main())
