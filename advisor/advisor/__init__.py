"""wattpush advisor: rank FFmpeg configurations by measured energy efficiency, predict power.

Heavy imports (pandas, scikit-learn) happen on first use, not at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AdvisorConfigError,
    AdvisorError,
    InsufficientDataError,
    ManifestError,
    ModelError,
    QueryError,
)

if TYPE_CHECKING:
    from .predict import PowerPredictor
    from .prom import PrometheusAPI
    from .recommender import AdvisorReport, TranscodingRecommender

__all__ = [
    "AdvisorConfigError",
    "AdvisorError",
    "AdvisorReport",
    "InsufficientDataError",
    "ManifestError",
    "ModelError",
    "PowerPredictor",
    "PrometheusAPI",
    "QueryError",
    "TranscodingRecommender",
]

_LAZY = {
    "PowerPredictor": ".predict",
    "PrometheusAPI": ".prom",
    "AdvisorReport": ".recommender",
    "TranscodingRecommender": ".recommender",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'advisor' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
