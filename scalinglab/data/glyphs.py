"""Glyphs: 2-D grayscale images of characters rendered from the machine's TrueType fonts.

The image domain of Hestness et al. (2017) at a CPU's scale: dozens of classes (letters, digits, a few
symbols), so top-5 error means something, and a distribution that is unlimited (every example is a
fresh draw) and made locally (no download).

How an example is made:
1. Templates: every (font, character, stroke width) is rendered once with PIL at TEMPLATE px, centred.
2. Per example, drawn from a NumPy generator seeded by (seed, split): a font of the split, a stroke
   width, an affine map (rotation, scale, shear, translation) and a smooth elastic displacement field;
   one `grid_sample` call per chunk samples the templates through them at `size` x `size` (vectorised).
3. Clutter strokes (line segments at random) and Gaussian noise are added; pixels are clipped to [0, 1].

The split is by font file: fonts are the sorted `.ttf` files under FONT_GLOB that render every class;
every HOLDOUT_EVERY-th of them (indices HOLDOUT_EVERY-1, 2*HOLDOUT_EVERY-1, ...) is held out for dev and
test, the rest are training fonts, so dev error measures generalisation to unseen fonts. meta lists both.
"""

from __future__ import annotations

import glob
import hashlib
import os
import string
from functools import lru_cache

import numpy as np

from scalinglab.data.registry import Dataset, register
from scalinglab.errors import UserError

FONT_GLOB = "/usr/share/fonts/truetype/**/*.ttf"
HOLDOUT_EVERY = 4  # one font file in 4 is a dev/test font
TEMPLATE = 64  # px of a rendered template; examples are sampled down from it
STROKES = (0, 1, 2)  # extra stroke widths (px at TEMPLATE): the font as drawn and two heavier variants
# Letters that look unlike their capitals are kept in lower case (c/o/s/u/v/w/x/z are not).
CLASSES = string.digits + string.ascii_uppercase + "abdefghnqrt" + "+=%&?@#$"
CHUNK = 2048  # examples per grid_sample call (bounds memory: CHUNK x TEMPLATE^2 floats per template gather)
DEFAULTS = {"n_train": 16384, "n_dev": 1024, "n_test": 1024, "size": 32, "classes": CLASSES, "seed": 0}


def _font_files() -> list[str]:
    return sorted(glob.glob(FONT_GLOB, recursive=True))


def _fingerprint(**_) -> str:
    """The installed fonts (name, size) are part of the cache key: other fonts, other images."""
    files = _font_files()
    blob = "|".join(f"{os.path.basename(f)}:{os.path.getsize(f)}" for f in files)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _check(size, classes) -> None:
    if not 8 <= size <= 128:
        raise ValueError(f"size: given {size}; allowed: 8..128 pixels")
    if len(classes) < 2 or len(set(classes)) != len(classes) or any(c.isspace() for c in classes):
        raise ValueError(f"classes: given {classes!r}; allowed: a string of at least 2 distinct visible characters")


def _pool_size(n_train, size, classes, **_):
    _check(size, classes)
    fonts(classes)  # no fonts: one line at load, before anything is generated
    return n_train


@lru_cache(maxsize=4)
def fonts(classes: str) -> tuple[str, ...]:
    """The sorted font files that have a glyph for every class (a symbol or math font may lack some)."""
    from PIL import ImageFont

    files = _font_files()
    if not files:
        raise UserError(
            f"data glyphs: no TrueType fonts found under {FONT_GLOB}; allowed: a machine with fonts "
            f"installed (Debian/Ubuntu: apt-get install fonts-dejavu-core)"
        )
    ok = []
    for f in files:
        font = ImageFont.truetype(f, TEMPLATE // 2)
        missing = _ink(font, "\U0010fffd")  # what this font draws for a missing glyph
        if all(_ink(font, c) != missing for c in classes):
            ok.append(f)
    if len(ok) < 2:
        raise UserError(
            f"data glyphs: given classes {classes!r}; {len(ok)} of the {len(files)} fonts under {FONT_GLOB} draw "
            f"them all; allowed: classes that at least 2 fonts draw (Debian/Ubuntu: fonts-dejavu-core)"
        )
    return tuple(ok)


def _ink(font, ch: str) -> bytes:
    m = font.getmask(ch)
    return repr(m.size).encode() + bytes(m)  # the glyph's bitmap (size and pixels), comparable between glyphs


def font_split(classes: str) -> tuple[list[str], list[str]]:
    """(training fonts, dev/test fonts): disjoint font files (see the module docstring)."""
    fs = fonts(classes)
    # Every HOLDOUT_EVERY-th font in an order fixed by a hash of the file name: in plain sorted order
    # the held-out fonts would all be one style (each family lists Bold, BoldItalic, Italic, Regular).
    by_hash = sorted(fs, key=lambda f: hashlib.sha256(os.path.basename(f).encode()).hexdigest())
    held = sorted(by_hash[HOLDOUT_EVERY - 1 :: HOLDOUT_EVERY]) or [fs[-1]]
    return [f for f in fs if f not in held], held


@lru_cache(maxsize=8)
def _templates(font_files: tuple[str, ...], classes: str) -> np.ndarray:
    """(fonts, strokes, classes, TEMPLATE, TEMPLATE) float32 in [0, 1]: each glyph centred, its larger
    side scaled to about 60% of the template (room for rotation and shear)."""
    from PIL import Image, ImageDraw, ImageFont

    out = np.zeros((len(font_files), len(STROKES), len(classes), TEMPLATE, TEMPLATE), np.float32)
    for i, f in enumerate(font_files):
        font = ImageFont.truetype(f, int(TEMPLATE * 0.6))
        for j, sw in enumerate(STROKES):
            for k, ch in enumerate(classes):
                img = Image.new("L", (TEMPLATE * 2, TEMPLATE * 2), 0)
                ImageDraw.Draw(img).text(
                    (TEMPLATE, TEMPLATE), ch, font=font, fill=255, anchor="mm", stroke_width=sw, stroke_fill=255
                )
                box = img.getbbox()
                cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2  # centre the ink, not the advance box
                h = TEMPLATE // 2
                out[i, j, k] = np.asarray(img.crop((cx - h, cy - h, cx + h, cy + h)), np.float32) / 255.0
    return out


def _render(templates: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size, size) float32 images of `labels` drawn from `templates` (one split's fonts)."""
    import torch
    import torch.nn.functional as F

    n_fonts, n_strokes = templates.shape[:2]
    n = len(labels)
    # Every random draw is made here, in a fixed order, so the images depend only on the generator.
    font = rng.integers(0, n_fonts, n)
    stroke = rng.integers(0, n_strokes, n)
    rot = rng.uniform(-0.35, 0.35, n)  # radians, about +-20 degrees
    scale = rng.uniform(0.75, 1.2, n)
    shear = rng.uniform(-0.3, 0.3, n)
    shift = rng.uniform(-0.12, 0.12, (n, 2))  # in units of the half-width
    warp = rng.normal(0.0, 0.05, (n, 2, 4, 4))  # elastic: a 4x4 displacement field, smoothed up to size
    n_lines = rng.integers(0, 3, n)  # clutter: 0-2 strokes per image
    ends = rng.uniform(-1, 1, (n, 2, 2, 2))  # (example, stroke, end point, xy)
    width = rng.uniform(0.03, 0.08, (n, 2))
    ink = rng.uniform(0.3, 0.8, (n, 2))
    noise_sd = rng.uniform(0.02, 0.12, (n, 1, 1)).astype(np.float32)
    noise = rng.standard_normal((n, size, size), dtype=np.float32) * noise_sd

    # Output pixel (u, v) in [-1, 1] samples the template at A @ (u, v) + shift + warp(u, v).
    f32 = lambda v: torch.as_tensor(v, dtype=torch.float32)  # noqa: E731
    c, s = np.cos(rot), np.sin(rot)
    a = f32(np.stack([np.stack([c, -s + shear * c], -1), np.stack([s, c + shear * s], -1)], -2) / scale[:, None, None])
    lin = np.linspace(-1, 1, size)
    uv = np.stack(np.meshgrid(lin, lin, indexing="xy"), -1)  # (size, size, 2) as (x, y)
    px, py = f32(uv[..., 0]), f32(uv[..., 1])  # (size, size)
    a, sh = a[:, :, :, None, None], f32(shift)[:, :, None, None]  # (n, 2, 2, 1, 1), (n, 2, 1, 1)
    grid = torch.stack([a[:, 0, 0] * px + a[:, 0, 1] * py + sh[:, 0], a[:, 1, 0] * px + a[:, 1, 1] * py + sh[:, 1]], -1)
    grid += F.interpolate(f32(warp), size=(size, size), mode="bicubic").permute(0, 2, 3, 1)
    x = np.empty((n, size, size), np.float32)
    for i in range(0, n, CHUNK):
        sl = slice(i, i + CHUNK)
        src = torch.as_tensor(templates[font[sl], stroke[sl], labels[sl]][:, None])  # (b, 1, T, T)
        x[sl] = F.grid_sample(src, grid[sl], mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0].numpy()

    # Clutter: ink within `width` of each segment (distance from a pixel to the segment), in float32
    # torch ops on (n, 2 strokes, size, size): the one part of the work that grows with every pixel.
    e = f32(ends)[..., None, None]  # (n, 2, 2, 2, 1, 1)
    x0, y0, dx, dy = e[:, :, 0, 0], e[:, :, 0, 1], e[:, :, 1, 0] - e[:, :, 0, 0], e[:, :, 1, 1] - e[:, :, 0, 1]
    t = (((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy).clamp_min(1e-9)).clamp(0, 1)
    dist = torch.hypot(px - x0 - t * dx, py - y0 - t * dy)  # (n, 2, size, size)
    on = np.arange(2)[None, :] < n_lines[:, None]  # (n, 2): which strokes are drawn
    line = (1 - dist / f32(width)[..., None, None]).clamp(0, 1) * f32(ink * on)[..., None, None]
    x = np.maximum(x, line.amax(1).numpy())
    return np.clip(x + noise, 0, 1).astype(np.float32)


def balanced_labels(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """n labels of k classes, each class n // k or n // k + 1 times, in a random order."""
    return rng.permutation(np.arange(n) % k).astype(np.int64)


@register(
    "glyphs",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    fingerprint=_fingerprint,
    doc="glyphs: characters rendered from the installed fonts (55 classes, 32x32), dev/test on unseen fonts",
)
def make_glyphs(n_train, n_dev, n_test, size, classes, seed) -> Dataset:
    _check(size, classes)
    train_fonts, held_fonts = font_split(classes)
    k = len(classes)
    splits = []
    for split, (n, fs) in enumerate(((n_train, train_fonts), (n_dev, held_fonts), (n_test, held_fonts))):
        rng = np.random.default_rng([seed, split])  # each split its own stream: n_train does not move dev
        y = balanced_labels(n, k, rng)
        splits += [_render(_templates(tuple(fs), classes), y, size, rng), y]
    name = os.path.basename
    meta = {
        "source": "glyphs rendered from installed TrueType fonts",
        "split": f"by font file: dev and test use {len(held_fonts)} fonts that no training example uses",
        "train_fonts": [name(f) for f in train_fonts],
        "dev_fonts": [name(f) for f in held_fonts],
        "test_fonts": [name(f) for f in held_fonts],
        "classes": classes,
    }
    return Dataset(*splits, n_classes=k, meta=meta)
