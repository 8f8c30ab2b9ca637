"""A scikit-learn learner as a scalinglab trial: gradient-boosted trees on handwritten digits.

scalinglab picks the nested training subset (`trial.indices`), the model size (`trial.model_size`)
and the seed; this function trains and returns the dev error. The data are scikit-learn's own 8x8
digits (1,797 real scans shipped inside the package), split once, here, into a training pool and
dev/test sets.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_pool, X_rest, y_pool, y_rest = train_test_split(X, y, train_size=1280, stratify=y, random_state=0)
X_dev, X_test, y_dev, y_test = train_test_split(X_rest, y_rest, train_size=0.5, stratify=y_rest, random_state=0)


def train(trial):
    idx = trial.indices
    model = HistGradientBoostingClassifier(
        max_iter=trial.model_size["n_estimators"],
        max_leaf_nodes=trial.model_size.get("max_leaf_nodes", 15),
        learning_rate=trial.hparams["lr"],
        early_stopping=False,
        random_state=trial.seed,
    )
    model.fit(X_pool[idx], y_pool[idx])
    n_leaves = sum(p.get_n_leaf_nodes() for it in model._predictors for p in it)
    return {
        "dev": float(np.mean(model.predict(X_dev) != y_dev)),
        "test": float(np.mean(model.predict(X_test) != y_test)),
        "train": float(np.mean(model.predict(X_pool[idx]) != y_pool[idx])),
        "params": int(2 * n_leaves),
    }  # a leaf value and a split per leaf, roughly
