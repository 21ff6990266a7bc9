"""Pictures for the reports: where a failed comparison's error is, and the points of each item.

Drawn with matplotlib's Agg backend into PNG bytes; the reports embed them as base64 data URIs,
so a report is one self-contained file. The data come from lmgrade.core.compare: an error
profile ("map": a 2-D max |got − expected|, "line": a 1-D one) or a dependence map
("dependence": queries × keys, +1 where the submission's query uses a key the reference's does
not). Without matplotlib the reports simply have no pictures.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Sequence

DPI = 80


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _label(name: str, size: int, width: int) -> str:
    return f"{name} (of {size}" + (f", max over bins of {width})" if width > 1 else ")")


def _ticks(ax_set, count: int, width: int) -> None:
    """Ticks at index positions of the original dimension (a bin is labelled by its first index)."""
    step = max(1, math.ceil(count / 8))
    positions = list(range(0, count, step))
    ax_set(positions, [str(p * width) for p in positions])


def _title(ax, profile: dict) -> None:
    ax.set_title("\n".join(textwrap.wrap(profile.get("title", ""), 60) + textwrap.wrap(profile.get("reduced", ""), 70)),
                 fontsize=8)


def profile_png(profile: dict) -> bytes:
    """One picture of one profile (see the module's docstring)."""
    import numpy as np

    plt = _pyplot()
    kind = profile["kind"]
    values = np.array([[math.inf if v is None else v for v in row] for row in profile["values"]] if kind != "line"
                      else [math.inf if v is None else v for v in profile["values"]], dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    axes, sizes, bins = profile["axes"], profile["sizes"], profile["bins"]
    if kind == "line":
        finite = np.where(np.isfinite(values), values, np.nan)
        ax.plot(np.arange(len(values)), finite, marker="o", markersize=3, color="tab:red", label="max |got − expected|")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            top = np.nanmax(finite) if np.isfinite(finite).any() else 1.0
            ax.plot(bad, [top] * len(bad), "kx", label="NaN / Inf")
        if profile.get("threshold"):
            ax.axhline(profile["threshold"], color="gray", linestyle="--", linewidth=1, label="tolerance (absolute part)")
        ax.set_xlabel(_label(axes[0], sizes[0], bins[0]), fontsize=8)
        ax.set_ylabel("max |got − expected|", fontsize=8)
        _ticks(ax.set_xticks, len(values), bins[0])
        ax.legend(fontsize=7)
    else:
        if kind == "dependence":
            image = ax.imshow(values, cmap="bwr", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
            n = min(values.shape)
            ax.plot([-0.5, n - 0.5], [-0.5, n - 0.5], color="black", linewidth=0.8, linestyle=":")
            colorbar = fig.colorbar(image, ax=ax, ticks=[-1, 0, 1])
            colorbar.ax.set_yticklabels(["reference only", "agree", "yours only"], fontsize=7)
        else:
            masked = np.ma.masked_invalid(values)
            cmap = plt.get_cmap("viridis").with_extremes(bad="magenta")  # NaN / Inf in the output
            image = ax.imshow(masked, cmap=cmap, vmin=0, aspect="auto", interpolation="nearest")
            fig.colorbar(image, ax=ax).set_label("max |got − expected| (magenta: NaN/Inf)", fontsize=7)
        ax.set_ylabel(_label(axes[0], sizes[0], bins[0]), fontsize=8)
        ax.set_xlabel(_label(axes[1], sizes[1], bins[1]), fontsize=8)
        _ticks(ax.set_yticks, values.shape[0], bins[0])
        _ticks(ax.set_xticks, values.shape[1], bins[1])
    ax.tick_params(labelsize=7)
    _title(ax, profile)
    return _png(fig)


def points_png(rows: Sequence[tuple[str, float, float]]) -> bytes:
    """A bar per item: rows of (item id, points earned, max points)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.6 + 0.22 * len(rows)))
    names = [r[0] for r in rows]
    positions = list(range(len(rows)))
    ax.barh(positions, [r[2] for r in rows], color="#dddddd", label="max")
    colours = ["tab:green" if r[1] >= r[2] else ("tab:orange" if r[1] > 0 else "tab:red") for r in rows]
    ax.barh(positions, [r[1] for r in rows], color=colours, label="earned")
    for y, (_, earned, possible) in enumerate(rows):
        ax.text(possible, y, f" {earned:.3g}/{possible:g}", va="center", fontsize=7)
    ax.set_yticks(positions, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("points", fontsize=8)
    ax.set_xlim(0, max((r[2] for r in rows), default=1) * 1.25)
    ax.tick_params(axis="x", labelsize=7)
    return _png(fig)
