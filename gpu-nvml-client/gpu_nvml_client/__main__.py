"""``python -m gpu_nvml_client``."""

import sys

from .cli import main

sys.exit(main())
