"""Model families with a size knob. Each reports its parameter count and training FLOPs per example."""

from scalinglab.models.registry import FAMILIES, build, describe, register

from scalinglab.models import cnn1d, mlp  # noqa: F401,E402  (registers the families)

__all__ = ["FAMILIES", "build", "describe", "register"]
