"""``python -m cpu_rapl_client``."""

import sys

from .cli import main

sys.exit(main())
