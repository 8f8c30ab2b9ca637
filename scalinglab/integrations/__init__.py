"""Small adapters between scalinglab and the tools users already have: Lightning (the trial's
callback), MLflow (export)."""
