"""What every figure shares: its colours, its frame (title above, provenance below) and its files.

Figures are matplotlib Figures (the object-oriented API: no pyplot, no global backend), saved as
<stem>.png (200 dpi) and .svg. The files carry no date or software version: re-plotting the same run gives
the same bytes.
"""
import textwrap
from contextlib import ExitStack
from pathlib import Path

import matplotlib
from matplotlib.colors import to_rgb

from kit import layout
from kit.plot import FORMATS
from kit.workload.steps import base_arm

DPI = 200
PNG_METADATA = {"Software": None}                  # Agg PNGs carry no date
SVG_METADATA = {"Date": None, "Creator": None}     # no date, no matplotlib version
SVG_RC = {"svg.hashsalt": "sleepkit",            # stable ids
          "svg.fonttype": "none"}     # text as SVG text: a third less drawing time and size than glyph paths
SAVE_OPTIONS = {"png": {"dpi": DPI, "metadata": PNG_METADATA}, "svg": {"metadata": SVG_METADATA}}
ARM_COLOURS = {"l1": "#4c72b0", "nosleep": "#c44e52", "l1-fp8": "#55a868", "l1-nowarm": "#8172b3", "l2": "#dd8452"}
KIND_COLOURS = {"load": "#4c72b0", "warmup": "#dd8452", "wake": "#55a868", "prompt": "#c44e52",
                "sleep": "#8172b3", "stop": "#937860"}


def arm_colour(unit):
    return ARM_COLOURS.get(base_arm(unit), "grey")


def lighter(colour, amount=0.55):
    return tuple(c + (1 - c) * amount for c in to_rgb(colour))


FOOTER_PT, FOOTER_SPACING = 7.5, 1.5      # the provenance lines below a figure's plot


def footer(lines, width=200):
    """Provenance lines wrapped at width characters, and the inches they take below a figure's plot."""
    wrapped = [w for line in lines for w in textwrap.wrap(line, width, subsequent_indent="  ") or [""]]
    return wrapped, len(wrapped) * FOOTER_PT * FOOTER_SPACING / 72 + 0.1


def frame(fig, title, lines):
    height = fig.get_figheight()
    fig.text(0.01, 1 - 0.12 / height, title, ha="left", va="top", fontsize=13, fontweight="bold")
    fig.text(0.01, 0.08 / height, "\n".join(lines), ha="left", va="bottom", fontsize=FOOTER_PT, color="#333333",
             linespacing=FOOTER_SPACING)


def save(fig, stem, formats=FORMATS):
    """<stem>.<format> for each format (PNG at DPI, SVG with stable ids); returns the paths. The files are
    written beside their names and moved into place together, so a full disk leaves no half figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.{fmt}" for fmt in formats]
    with matplotlib.rc_context(SVG_RC), ExitStack() as files:
        for path, fmt in zip(paths, formats):
            fig.savefig(files.enter_context(layout.replacing(path)), format=fmt, **SAVE_OPTIONS[fmt])
    return paths
