"""Model families with a size knob. Each reports its parameter count and training FLOPs per example."""

# registers the families (speech: cnn2d and crnn; seq2seq: translation; resnet: glyph images; lstm and
# transformer: charlm)
from scalinglab.models import cnn1d, lstm, mlp, resnet, seq2seq, speech, transformer
from scalinglab.models.registry import FAMILIES, build, build_spec, describe, describe_spec, register

__all__ = ["FAMILIES", "build", "build_spec", "describe", "describe_spec", "register"]
