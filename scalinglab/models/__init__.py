"""Model families with a size knob. Each reports its parameter count and training FLOPs per example."""

from scalinglab.models import cnn1d, mlp, resnet, transformer  # registers the families
from scalinglab.models.registry import FAMILIES, build, build_spec, describe, describe_spec, register

__all__ = ["FAMILIES", "build", "build_spec", "describe", "describe_spec", "register"]
