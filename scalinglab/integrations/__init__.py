"""Small adapters between scalinglab's trial and the training frameworks users already have."""
