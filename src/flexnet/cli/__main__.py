"""``python -m flexnet.cli``: the same as ``flexnet``."""

import sys

from .app import main

sys.exit(main())
