"""``python -m adk_lite``: the ``adk-lite`` command (see :mod:`adk_lite.cli`)."""

import sys

from .cli import main

sys.exit(main())
