"""Power (or energy per frame) as a function of streams, pixel rate, bitrate and encoder.

Candidates — linear, polynomial (degree 2, ridge) and gradient boosting — are compared by
grouped cross-validation (GroupKFold by scenario: all repeats of a configuration are held out
together, so the score says how well an *unmeasured* configuration is predicted). The one with
the lowest out-of-fold MAPE is refitted on all data. 90 % prediction intervals come from the
5th/95th percentiles of its out-of-fold relative residuals. Fixed seeds throughout.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

from .errors import InsufficientDataError, ModelError

log = logging.getLogger(__name__)
MODEL_SCHEMA_VERSION = 1
NUMERIC_FEATURES = ("streams", "pixels_per_s", "bitrate_bps")
# Inputs; the model sees them as one category "encoder/preset" (a preset changes an encoder's
# cost per pixel, so the two are one configuration, and its interaction with the pixel rate
# is what the polynomial model needs).
CATEGORICAL_FEATURES = ("encoder", "preset")
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
CODEC = "codec"
CANDIDATES = ("linear", "polynomial", "gradient_boosting")
PREDICT_STREAMS = (1, 2, 4, 8, 12)
MIN_CONFIGS = 5
MIN_STREAM_LEVELS = 3
TARGET_UNITS = {"mean_power_w": "W", "energy_per_frame_j": "J/frame"}


def _make_model(name: str, seed: int) -> Any:
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), list(NUMERIC_FEATURES)),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                [CODEC],
            ),
        ]
    )
    if name == "linear":
        return Pipeline([("pre", pre), ("reg", LinearRegression())])
    if name == "polynomial":
        return Pipeline(
            [
                ("pre", pre),
                ("poly", PolynomialFeatures(degree=2, include_bias=False)),
                ("reg", Ridge(alpha=1e-3, random_state=seed)),
            ]
        )
    if name == "gradient_boosting":
        return Pipeline(
            [
                ("pre", pre),
                (
                    "reg",
                    GradientBoostingRegressor(
                        n_estimators=100,
                        max_depth=3,
                        learning_rate=0.1,
                        subsample=1.0,
                        random_state=seed,
                    ),
                ),
            ]
        )
    raise ModelError(f"unknown candidate model {name!r}; choose from {', '.join(CANDIDATES)}")


def _model_input(d: pd.DataFrame) -> pd.DataFrame:
    x = d[list(NUMERIC_FEATURES)].astype(float).copy()
    x[CODEC] = d["encoder"].astype(str) + "/" + d["preset"].astype(str)
    return x


def _mape(y: np.ndarray[Any, Any], pred: np.ndarray[Any, Any]) -> float:
    return float(np.mean(np.abs(y - pred) / np.abs(y)) * 100.0)


def what_to_measure(data: pd.DataFrame, target: str) -> tuple[list[str], list[str]]:
    """(blocking problems, advice): why the data cannot support a model, and what to measure."""
    ok = data[np.isfinite(data[target].to_numpy(dtype=float))] if len(data) else data
    blocking: list[str] = []
    advice: list[str] = []
    if not len(ok):
        blocking.append(
            f"no transcode window with valid {target}; check the report's missing windows"
        )
        return blocking, advice
    groups = ok["group"].nunique()
    if groups < MIN_CONFIGS:
        blocking.append(
            f"only {groups} distinct configuration(s) have valid {target}; measure at least "
            f"{MIN_CONFIGS} (different stream counts, resolutions, bitrates or encoders)"
        )
    if ok["streams"].nunique() < 2 and ok["pixels_per_s"].nunique() < 2:
        blocking.append("every run has the same load; vary --count (streams) or the resolution")
    for enc, g in ok.groupby(["encoder", "preset"]):
        levels = sorted({int(s) for s in g["streams"]})
        if len(levels) < MIN_STREAM_LEVELS:
            missing = [s for s in (1, 2, 4, 8) if s not in levels][
                : MIN_STREAM_LEVELS - len(levels)
            ]
            advice.append(
                f"encoder/preset {'/'.join(map(str, enc))}: measured stream counts {levels}; "
                f"add runs with --count {', '.join(map(str, missing))} to learn how its power "
                "scales with streams"
            )
    return blocking, advice


class PowerPredictor:
    """Fit/predict/save/load; features streams, pixels_per_s, bitrate_bps, encoder."""

    def __init__(
        self,
        target: str = "mean_power_w",
        *,
        seed: int = 0,
        candidates: Sequence[str] = CANDIDATES,
        n_splits: int = 5,
        interval: float = 0.9,
    ) -> None:
        self.target = target
        self.seed = seed
        self.candidates = tuple(candidates)
        self.n_splits = n_splits
        self.interval = interval
        self.model_: Any = None
        self.model_name_: str | None = None
        self.cv_results_: pd.DataFrame | None = None
        self.mape_: float | None = None
        self.residual_quantiles_: tuple[float, float] | None = None
        self.oof_: pd.DataFrame | None = None
        self.categories_: list[str] = []
        self.trained_ranges_: dict[str, list[float]] = {}
        self.n_rows_ = 0
        self.n_groups_ = 0
        self.advice_: list[str] = []
        self.sklearn_version_: str | None = None

    # -- fitting ---------------------------------------------------------------------------

    @staticmethod
    def frame_from_windows(windows: pd.DataFrame) -> pd.DataFrame:
        """Training rows from the advisor's windows table (ok transcode windows)."""
        tr = windows[(windows["phase"] == "transcode") & (windows["status"] == "ok")].copy()
        tr["group"] = tr["scenario"].astype(str) + "|" + tr["ladder"].astype(str)
        return tr

    def fit(self, data: pd.DataFrame) -> PowerPredictor:
        """``data`` needs the feature columns, the target and ``group`` (scenario)."""
        missing_cols = [c for c in (*FEATURES, self.target, "group") if c not in data.columns]
        if missing_cols:
            raise ModelError(f"training data lacks columns {missing_cols}")
        y_all = data[self.target].to_numpy(dtype=float)
        x_ok = np.all(np.isfinite(data[list(NUMERIC_FEATURES)].to_numpy(dtype=float)), axis=1)
        d = data[np.isfinite(y_all) & (y_all > 0) & x_ok].reset_index(drop=True)
        problems, self.advice_ = what_to_measure(d, self.target)
        if problems:
            raise InsufficientDataError(
                "not enough measurements to predict " + self.target + ": " + "; ".join(problems)
            )
        x = _model_input(d)
        y = d[self.target].to_numpy(dtype=float)
        groups = d["group"].to_numpy()
        n_groups = len(set(groups))
        cv = GroupKFold(n_splits=min(self.n_splits, n_groups))
        rows = []
        oof_by_model: dict[str, np.ndarray[Any, Any]] = {}
        for name in self.candidates:
            pred = np.empty_like(y)
            for train, test in cv.split(x, y, groups):
                model = _make_model(name, self.seed).fit(x.iloc[train], y[train])
                pred[test] = model.predict(x.iloc[test])
            oof_by_model[name] = pred
            rows.append(
                {
                    "model": name,
                    "mape_pct": _mape(y, pred),
                    "rmse": float(np.sqrt(np.mean((y - pred) ** 2))),
                }
            )
        cv_df = pd.DataFrame(rows).sort_values(["mape_pct", "model"], kind="stable")
        best = str(cv_df.iloc[0]["model"])
        pred = oof_by_model[best]
        rel = y / np.where(pred == 0, np.nan, pred) - 1.0
        lo_q = (1 - self.interval) / 2
        q = np.nanquantile(rel, [lo_q, 1 - lo_q])
        self.model_ = _make_model(best, self.seed).fit(x, y)
        self.model_name_ = best
        self.cv_results_ = cv_df.reset_index(drop=True)
        self.mape_ = float(cv_df.iloc[0]["mape_pct"])
        self.residual_quantiles_ = (float(q[0]), float(q[1]))
        self.oof_ = pd.DataFrame({"group": groups, "measured": y, "predicted": pred})
        for col in ("scenario", "streams", "encoder", "preset", "ladder"):
            if col in d.columns:
                self.oof_[col] = d[col].to_numpy()
        self.categories_ = sorted(set(x[CODEC]))
        self.trained_ranges_ = {f: [float(d[f].min()), float(d[f].max())] for f in NUMERIC_FEATURES}
        self.n_rows_ = len(d)
        self.n_groups_ = n_groups
        return self

    # -- prediction ------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.model_ is None or self.residual_quantiles_ is None:
            raise ModelError("the predictor is not fitted; call fit() or PowerPredictor.load()")

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Prediction with its 90 % interval and an extrapolation flag per row."""
        self._check_fitted()
        lacking = [f for f in FEATURES if f not in features.columns]
        if lacking:
            raise ModelError(f"prediction input lacks {lacking}; the model needs {list(FEATURES)}")
        x = _model_input(features)
        unknown = sorted(set(x[CODEC]) - set(self.categories_))
        if unknown:
            raise ModelError(
                f"encoder/preset {unknown} were not measured; the model knows "
                f"{self.categories_}. Measure it first (ffmpeg-runner --encoder ... --preset ...)"
            )
        pred = np.asarray(self.model_.predict(x), dtype=float)
        lo, hi = self.residual_quantiles_  # type: ignore[misc]
        out = features.copy()
        out["predicted"] = pred
        out["lower"] = pred * (1 + lo)
        out["upper"] = pred * (1 + hi)
        extrap = np.zeros(len(x), dtype=bool)
        for f in NUMERIC_FEATURES:
            a, b = self.trained_ranges_[f]
            vals = x[f].to_numpy(dtype=float)
            extrap |= (vals < a - 1e-9) | (vals > b + 1e-9)
        out["extrapolated"] = extrap
        return out

    # -- persistence -----------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        self._check_fitted()
        assert self.cv_results_ is not None
        return {
            "schema_version": MODEL_SCHEMA_VERSION,
            "kind": "wattpush-advisor-power-predictor",
            "target": self.target,
            "unit": TARGET_UNITS.get(self.target, ""),
            "features": [
                *({"name": f, "type": "number"} for f in NUMERIC_FEATURES),
                {"name": "encoder", "type": "category"},
                {"name": "preset", "type": "category"},
            ],
            "categories": {CODEC: self.categories_},
            "trained_ranges": self.trained_ranges_,
            "model": self.model_name_,
            "cv": {
                "method": "GroupKFold by scenario",
                "results": self.cv_results_.to_dict(orient="records"),
            },
            "heldout_mape_pct": self.mape_,
            "interval": {"level": self.interval, "relative_quantiles": self.residual_quantiles_},
            "seed": self.seed,
            "n_rows": self.n_rows_,
            "n_groups": self.n_groups_,
            "sklearn_version": sklearn.__version__,
            "python_version": platform.python_version(),
        }

    def save(self, directory: Path | str) -> Path:
        """Write ``model.joblib`` (the fitted pipeline) and ``schema.json`` into ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        schema = self.schema()
        tmp = path / "model.joblib.tmp"
        joblib.dump(self.model_, tmp)
        tmp.replace(path / "model.joblib")
        (path / "schema.json.tmp").write_text(json.dumps(schema, indent=2, sort_keys=True))
        (path / "schema.json.tmp").replace(path / "schema.json")
        return path

    @classmethod
    def load(cls, directory: Path | str) -> PowerPredictor:
        """Reload a saved model. joblib files are pickles: load only models you made."""
        path = Path(directory)
        try:
            schema = json.loads((path / "schema.json").read_text())
            model = joblib.load(path / "model.joblib")
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load a model from {path}: {exc}; pass the directory written by "
                "`advisor report --save-model DIR`"
            ) from exc
        if schema.get("schema_version") != MODEL_SCHEMA_VERSION:
            raise ModelError(
                f"{path}: model schema_version {schema.get('schema_version')!r} unsupported; "
                "re-create it with this advisor version"
            )
        names = [f["name"] for f in schema.get("features", [])]
        if names != list(FEATURES):
            raise ModelError(f"{path}: features {names} differ from {list(FEATURES)}; re-create it")
        self = cls(
            target=schema["target"],
            seed=int(schema["seed"]),
            interval=float(schema["interval"]["level"]),
        )
        self.model_ = model
        self.model_name_ = schema["model"]
        self.mape_ = schema["heldout_mape_pct"]
        lo, hi = schema["interval"]["relative_quantiles"]
        self.residual_quantiles_ = (float(lo), float(hi))
        self.cv_results_ = pd.DataFrame(schema["cv"]["results"])
        self.categories_ = list(schema["categories"][CODEC])
        self.trained_ranges_ = {k: list(v) for k, v in schema["trained_ranges"].items()}
        self.n_rows_ = int(schema["n_rows"])
        self.n_groups_ = int(schema["n_groups"])
        self.sklearn_version_ = schema.get("sklearn_version")
        if self.sklearn_version_ != sklearn.__version__:
            log.warning(
                "model saved with scikit-learn %s, running %s: predictions may differ",
                self.sklearn_version_,
                sklearn.__version__,
            )
        return self


def stream_predictions(
    predictor: PowerPredictor, data: pd.DataFrame, streams: Sequence[int] = PREDICT_STREAMS
) -> pd.DataFrame:
    """Predictions for each measured configuration (encoder, ladder, bitrate) at N streams.

    The pixel rate scales with the stream count (per-stream rate taken from the measurements).
    """
    if data.empty:
        return pd.DataFrame()
    d = data.copy()
    d["per_stream_px"] = d["pixels_per_s"] / d["streams"]
    configs = (
        d.groupby(["encoder", "preset", "ladder", "bitrate"], dropna=False)
        .agg(per_stream_px=("per_stream_px", "median"), bitrate_bps=("bitrate_bps", "first"))
        .reset_index()
    )
    rows = []
    for _, c in configs.iterrows():
        for s in streams:
            rows.append(
                {
                    "encoder": c["encoder"],
                    "preset": c["preset"],
                    "ladder": c["ladder"],
                    "bitrate": c["bitrate"],
                    "streams": s,
                    "pixels_per_s": c["per_stream_px"] * s,
                    "bitrate_bps": c["bitrate_bps"],
                }
            )
    return predictor.predict(pd.DataFrame(rows))


def measured_vs_predicted(predictor: PowerPredictor) -> pd.DataFrame:
    """Per configuration: measured mean vs its held-out (out-of-fold) prediction."""
    if predictor.oof_ is None:
        return pd.DataFrame()
    lo, hi = predictor.residual_quantiles_ or (0.0, 0.0)
    o = predictor.oof_
    keys = [
        c for c in ("group", "scenario", "encoder", "preset", "ladder", "streams") if c in o.columns
    ]
    g = o.groupby(keys, sort=True).agg(
        measured=("measured", "mean"), predicted=("predicted", "mean"), n=("measured", "size")
    )
    g = g.reset_index().drop(columns=["group"])
    g["error_pct"] = (g["predicted"] - g["measured"]) / g["measured"] * 100.0
    g["within_interval"] = (g["measured"] >= g["predicted"] * (1 + lo)) & (
        g["measured"] <= g["predicted"] * (1 + hi)
    )
    return g
