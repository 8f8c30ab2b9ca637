"""Model families with a size knob. Each reports its parameter count and training FLOPs per example."""

from scalinglab.models.registry import FAMILIES, build, build_spec, describe, describe_spec, register

from scalinglab.models import cnn1d, mlp, transformer  # noqa: F401,E402  (registers the families)

__all__ = ["FAMILIES", "build", "build_spec", "describe", "describe_spec", "register"]
