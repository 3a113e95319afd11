"""Glyph sources for synthetic detection images, all available offline.

- ``digits``: scikit-learn's 8x8 handwritten digits (UCI optdigits, shipped with scikit-learn),
  upscaled; 10 classes with about 180 writers' variants each;
- ``letters``: A-Z drawn with Pillow's built-in font (``ImageFont.load_default``), 26 classes;
- ``symbols``: ten punctuation and currency symbols from the same font;
- ``shapes``: procedural filled shapes (circle, square, triangle, ...), 8 classes.

A source draws one glyph of a class as a float array in [0, 1] that fits in ``side x side``
pixels, varied by the random generator it is given (variant, rotation, aspect, stroke).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SOURCES = ("digits", "letters", "symbols", "shapes")
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SYMBOLS = ("+", "#", "@", "&", "%", "$", "?", "*", "<", "=")
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "hexagon")
TEMPLATE_SIZE = 64


def _fit(glyph: Image.Image, side: int, aspect: float) -> np.ndarray:
    """Crop ``glyph`` to its ink and resize it so that its longer edge is ``side`` pixels."""
    box = glyph.getbbox()
    if box is not None:
        glyph = glyph.crop(box)
    width, height = glyph.size
    width *= aspect
    scale = side / max(width, height)
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    return np.asarray(glyph.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


@dataclass
class GlyphSource:
    """Draws glyphs of ``classes``; ``templates[c]`` holds class ``c``'s base images (L mode)."""

    name: str
    classes: tuple[str, ...]
    templates: list[list[Image.Image]] = field(default_factory=list)
    max_rotation: float = 15.0

    def draw(self, rng: np.random.Generator, label: int, side: int) -> np.ndarray:
        if self.name == "shapes":
            template = _draw_shape(SHAPES[label], rng)
        else:
            variants = self.templates[label]
            template = variants[int(rng.integers(len(variants)))]
        angle = float(rng.uniform(-self.max_rotation, self.max_rotation))
        rotated = template.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        return _fit(rotated, side, aspect=float(rng.uniform(0.8, 1.25)))


def _digit_templates() -> list[list[Image.Image]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    templates: list[list[Image.Image]] = [[] for _ in range(10)]
    for image, target in zip(digits.images, digits.target, strict=True):
        pixels = (image / 16.0 * 255).astype(np.uint8)
        templates[int(target)].append(
            Image.fromarray(pixels).resize((TEMPLATE_SIZE // 2, TEMPLATE_SIZE // 2), Image.Resampling.BICUBIC)
        )
    return templates


def _font_templates(characters: tuple[str, ...]) -> list[list[Image.Image]]:
    font = ImageFont.load_default(size=TEMPLATE_SIZE - 8)
    templates = []
    for character in characters:
        image = Image.new("L", (TEMPLATE_SIZE * 2, TEMPLATE_SIZE * 2))
        ImageDraw.Draw(image).text((TEMPLATE_SIZE, TEMPLATE_SIZE), character, font=font, fill=255, anchor="mm")
        templates.append([image])
    return templates


def _draw_shape(shape: str, rng: np.random.Generator) -> Image.Image:
    """One procedural shape, drawn at twice the template size for smooth edges."""
    n = TEMPLATE_SIZE * 2
    image = Image.new("L", (n, n))
    draw = ImageDraw.Draw(image)
    c, r = n / 2, n * 0.42
    jitter = float(rng.uniform(0.85, 1.0))

    def polygon(count: int, radius: float, start: float) -> list[tuple[float, float]]:
        return [
            (
                c + radius * math.cos(start + 2 * math.pi * k / count),
                c + radius * math.sin(start + 2 * math.pi * k / count),
            )
            for k in range(count)
        ]

    if shape == "circle":
        draw.ellipse((c - r, c - r * jitter, c + r, c + r * jitter), fill=255)
    elif shape == "square":
        draw.rectangle((c - r, c - r * jitter, c + r, c + r * jitter), fill=255)
    elif shape == "triangle":
        draw.polygon(polygon(3, r, -math.pi / 2), fill=255)
    elif shape == "diamond":
        draw.polygon([(c, c - r), (c + r * 0.7 * jitter, c), (c, c + r), (c - r * 0.7 * jitter, c)], fill=255)
    elif shape == "cross":
        t = r * 0.3
        draw.rectangle((c - r, c - t, c + r, c + t), fill=255)
        draw.rectangle((c - t, c - r, c + t, c + r), fill=255)
    elif shape == "ring":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=255)
        inner = r * float(rng.uniform(0.45, 0.65))
        draw.ellipse((c - inner, c - inner, c + inner, c + inner), fill=0)
    elif shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + math.pi * k / 5
            points.append((c + radius * math.cos(angle), c + radius * math.sin(angle)))
        draw.polygon(points, fill=255)
    elif shape == "hexagon":
        draw.polygon(polygon(6, r, 0.0), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return image


def glyph_source(name: str) -> GlyphSource:
    """The glyph source called ``name`` (one of ``SOURCES``), templates loaded."""
    if name == "digits":
        return GlyphSource(name, tuple(str(d) for d in range(10)), _digit_templates())
    if name == "letters":
        return GlyphSource(name, LETTERS, _font_templates(LETTERS))
    if name == "symbols":
        return GlyphSource(name, SYMBOLS, _font_templates(SYMBOLS))
    if name == "shapes":
        return GlyphSource(name, SHAPES, max_rotation=45.0)
    raise ValueError(f"unknown glyph source {name!r} (choose from {', '.join(SOURCES)})")
