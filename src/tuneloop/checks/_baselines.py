"""Non-deep-learning baselines (scikit-learn): how far above them is the deep model?"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np


def baselines(train: tuple[Any, Any], val: tuple[Any, Any], classify: bool, seed: int = 0) -> dict[str, dict[str, float]]:
    """{name: {"score": accuracy (classification) or MSE (regression), "seconds"}} on the validation split."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(train[0]).reshape(len(train[0]), -1), np.asarray(train[1])
    xv, yv = np.asarray(val[0]).reshape(len(val[0]), -1), np.asarray(val[1])
    if classify:
        models = {
            "majority class": DummyClassifier(strategy="most_frequent"),
            "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            "random forest": RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=-1),
            "gradient boosting": HistGradientBoostingClassifier(random_state=seed),
        }
    else:
        y, yv = y.reshape(len(y), -1).squeeze(-1), yv.reshape(len(yv), -1).squeeze(-1)
        models = {
            "mean": DummyRegressor(),
            "ridge regression": make_pipeline(StandardScaler(), Ridge()),
            "gradient boosting": HistGradientBoostingRegressor(random_state=seed),
        }
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the score says how it went
            model.fit(x, y)
            pred = model.predict(xv)
        score = float((pred == yv).mean()) if classify else float(mean_squared_error(yv, pred))
        out[name] = {"score": score, "seconds": time.perf_counter() - start}
    return out
