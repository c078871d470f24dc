"""PowerPredictor: accuracy on a known law, determinism, persistence, refusal with advice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from advisor.errors import InsufficientDataError, ModelError
from advisor.predict import PowerPredictor, measured_vs_predicted, stream_predictions
from advisor.synthetic import iter_prediction_grid, noisy, scaling_law_power


def law_frame(seed: int = 3, noise: float = 0.05, repeats: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for enc, s, lad in iter_prediction_grid():
        px = s * sum(r.pixels for r in lad) * 30
        br = 2e6 if lad[0].height == 720 else 8e5
        for _ in range(repeats):
            rows.append(
                {
                    "encoder": enc,
                    "preset": "fast",
                    "streams": s,
                    "pixels_per_s": px,
                    "bitrate_bps": br,
                    "ladder": f"{lad[0].height}p",
                    "bitrate": str(br),
                    "group": f"{enc}-{s}-{lad[0].height}",
                    "scenario": f"{enc}-{s}",
                    "mean_power_w": noisy(rng, scaling_law_power(enc, s, px, br), noise),
                }
            )
    return pd.DataFrame(rows)


def test_heldout_mape_below_8_percent_with_5_percent_noise() -> None:
    p = PowerPredictor(seed=0).fit(law_frame())
    assert p.mape_ is not None and p.mape_ < 8.0
    assert p.cv_results_ is not None and set(p.cv_results_["model"]) == {
        "linear",
        "polynomial",
        "gradient_boosting",
    }
    assert p.model_name_ == p.cv_results_.iloc[0]["model"]
    lo, hi = p.residual_quantiles_ or (0, 0)
    assert lo < 0 < hi


def test_fit_is_deterministic_and_survives_save_load(tmp_path: Path) -> None:
    data = law_frame()
    a = PowerPredictor(seed=0).fit(data)
    b = PowerPredictor(seed=0).fit(data)
    assert a.mape_ == b.mape_ and a.model_name_ == b.model_name_
    preds = stream_predictions(a, data)
    assert sorted(set(preds["streams"])) == [1, 2, 4, 8, 12]
    assert preds.loc[preds["streams"] == 12, "extrapolated"].all()
    a.save(tmp_path / "m")
    assert (tmp_path / "m" / "schema.json").exists()
    c = PowerPredictor.load(tmp_path / "m")
    np.testing.assert_array_equal(c.predict(preds)["predicted"], preds["predicted"])
    assert c.mape_ == a.mape_
    mvp = measured_vs_predicted(a)
    assert len(mvp) == data["group"].nunique() and "error_pct" in mvp


def test_too_few_configurations_says_what_to_measure() -> None:
    small = law_frame()
    small = small[small["group"].isin(small["group"].unique()[:3])]
    with pytest.raises(InsufficientDataError, match="measure at least 5"):
        PowerPredictor().fit(small)


def test_unknown_encoder_and_missing_model_are_explained(tmp_path: Path) -> None:
    p = PowerPredictor().fit(law_frame())
    bad = pd.DataFrame(
        {
            "encoder": ["av1"],
            "preset": ["fast"],
            "streams": [1],
            "pixels_per_s": [1e6],
            "bitrate_bps": [1e6],
        }
    )
    with pytest.raises(ModelError, match="not measured"):
        p.predict(bad)
    with pytest.raises(ModelError, match="save-model"):
        PowerPredictor.load(tmp_path / "nothing")
