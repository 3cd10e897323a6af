"""The stored churn model: its joblib file beside the working database, and whether a run may reuse it."""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV

from assets.predict.churn import (
    PROFILE_FEATURES,
    ChurnResult,
    _scores,
    calibration_table,
    churn_features,
    churn_recipe,
)
from assets.predict.runs import FITTED, TRAINED, TimeSplit, _age_reason, _days, _row
from pipelines.core.config import PredictSettings

# --- churn: the stored model and when to reuse it -----------------------------------------------------------------

# The held-out figures a reusing run copies from the run that trained its model.
HELD_OUT_COLUMNS = ("model", "train_cutoff", "eval_cutoff", "n_train", "n_eval", "train_churn_rate",
                    "eval_churn_rate", "auc", "brier", "brier_baseline", "calibration_error", "recency_auc",
                    "auc_gain_over_recency")


def models_folder(working_database: Path) -> Path:
    """Where the models of a working database live: beside it and named after it (work/<name>.models/), since two
    published warehouses in one folder share the work/ folder."""
    return working_database.with_name(f"{working_database.stem}.models")


def model_file(models_dir: Path, version: str) -> Path:
    return models_dir / f"churn-{version}.joblib"


def save_model(models_dir: Path, version: str, model: CalibratedClassifierCV, columns: list[str],
               recipe: str) -> str:
    """Write the model as models_dir/churn-<version>.joblib (atomically: a temporary name, then a rename) and
    return the file's SHA-256."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = model_file(models_dir, version)
    pending = target.with_name(f".{target.name}.pending")
    joblib.dump({"version": version, "features": columns, "recipe": recipe, "model": model}, pending)
    digest = hashlib.sha256(pending.read_bytes()).hexdigest()
    os.replace(pending, target)
    return digest


def remove_other_models(models_dir: Path, keep: str) -> None:
    """Model files other than the one of version `keep` (older models and files of runs that never committed)."""
    for path in models_dir.glob("*churn-*.joblib*"):
        if path != model_file(models_dir, keep):
            path.unlink(missing_ok=True)


def load_model(models_dir: Path, version: str, sha256: str | None) -> CalibratedClassifierCV | None:
    """The stored model of `version`, or None when its file is missing or is not the file that run wrote."""
    path = model_file(models_dir, version)
    if sha256 is None or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        return None
    return joblib.load(path)["model"]



@dataclass
class StoredModel:
    version: str  # the run id that trained it
    model: CalibratedClassifierCV
    trained: dict  # that run's row of predict.churn_model_runs (its held-out figures)


def choose_churn_model(con: duckdb.DuckDBPyConnection, models_dir: Path, run_id: str, split: TimeSplit,
                       columns: list[str], settings: PredictSettings) -> tuple[StoredModel | None, str]:
    """The latest model when this run may reuse it (None: train), and why."""
    if settings.retrain_every_days == 0:
        return None, "predict.retrain_every_days is 0: every run trains"
    # The model that scored the latest earlier run (a retry of this run does not count as earlier).
    latest = _row(con, "SELECT model_version FROM predict.churn_model_runs WHERE run_id <> ? "
                       "ORDER BY trained_at DESC LIMIT 1", [run_id])
    if latest is None or latest["model_version"] is None:
        return None, "no earlier run has a model"
    trained = _row(con, f"SELECT * FROM predict.churn_model_runs WHERE run_id = ? AND model_action = '{FITTED}'",
                   [latest["model_version"]])
    if trained is None:
        return None, f"the run that trained model {latest['model_version']} is no longer recorded"
    age, too_old = _age_reason("model", trained["data_end"], split, settings)
    if too_old:
        return None, too_old
    if list(trained["features"]) != columns:
        return None, f"the feature columns changed: the model has {list(trained['features'])}, the data {columns}"
    if trained["model_recipe"] != churn_recipe(settings):
        return None, f"the model settings changed: the model has '{trained['model_recipe']}'"
    model = load_model(models_dir, trained["run_id"], trained["model_sha256"])
    if model is None:
        return None, f"the file of model {trained['run_id']} is missing or is not the file that run wrote"
    if model.n_features_in_ != len(columns):
        return None, f"the stored model expects {model.n_features_in_} columns, the data has {len(columns)}"
    return StoredModel(trained["run_id"], model, trained), (
        f"reused: trained on data ending {trained['data_end']:%Y-%m-%d}, {_days(age)} before this data "
        f"(retrained at predict.retrain_every_days {settings.retrain_every_days})")


def score_with_stored(con: duckdb.DuckDBPyConnection, stored: StoredModel, split: TimeSplit,
                      columns: list[str]) -> ChurnResult:
    """The stored model on features as of the current data end; the held-out figures of the run that trained."""
    profile_columns = [c for c in columns if c in PROFILE_FEATURES]
    current = churn_features(con, [split.data_end], profile_columns).drop("cutoff")  # one cutoff: nothing to filter
    scores = _scores(stored.model, current, columns)
    run = {"status": TRAINED, "reason": None, **{k: stored.trained[k] for k in HELD_OUT_COLUMNS},
           "n_scored": scores.height}
    return ChurnResult(run, calibration_table(np.array([]), np.array([])), scores, stored.model)

