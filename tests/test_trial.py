from scalinglab.train import run_trial, trial_id

SPEC = {
    "data": {"name": "teacher", "options": {"n_train": 1000, "n_dev": 300, "n_test": 300}, "split_seed": 0},
    "data_size": 200,
    "model": {"family": "mlp", "size": {"width": 32, "depth": 2}, "batchnorm": False},
    "train": {
        "optimizer": "adam",
        "lr": 0.01,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "batch_size": 64,
        "max_epochs": 12,
        "min_steps_per_epoch": 5,
        "patience": 4,
    },
    "seed": 1,
}


def test_trial_is_deterministic_and_complete():
    a, b = run_trial(SPEC), run_trial(SPEC)
    assert a["status"] == "ok" and a["history"] == b["history"] and a["min_dev_error"] == b["min_dev_error"]
    assert a["id"] == trial_id(SPEC) and a["params"] > 0 and a["train_flops"] > 0
    assert a["min_dev_error"] == min(h["dev_error"] for h in a["history"])
    assert a["history"][a["best_epoch"] - 1]["dev_error"] == a["min_dev_error"]
    assert 0 <= a["final_train_error"] <= 1 and a["wall_time"] > 0
    c = run_trial({**SPEC, "seed": 2})
    assert c["history"] != a["history"]


def test_diverging_trial_is_recorded_not_raised():
    spec = {**SPEC, "train": {**SPEC["train"], "optimizer": "sgd", "lr": 10.0, "momentum": 0.99}}
    spec["model"] = {**SPEC["model"], "size": {"width": 256, "depth": 4}}
    r = run_trial(spec)
    assert r["status"] == "diverged" and "non-finite" in r["error"]


def test_failed_trial_keeps_error_text():
    r = run_trial({**SPEC, "data_size": 10**9, "model": {**SPEC["model"], "family": "nope"}})
    assert r["status"] == "failed" and r["error"]


def test_trial_id_ignores_key_order():
    spec2 = dict(reversed(list(SPEC.items())))
    assert trial_id(spec2) == trial_id(SPEC)
