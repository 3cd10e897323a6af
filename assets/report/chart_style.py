"""What every chart shares to stay legible: the page width, the text colours chosen by the fill behind them, the
segment focus (the page's segment selector), and the check that every text label is readable.

Contrast: WCAG 2 relative luminance and contrast ratio. A label drawn on a cell or bar takes dark ink or white,
whichever contrasts more with that cell's fill (`ink_on`), so no label falls below CONTRAST_MIN (4.5:1, WCAG AA for
normal text). `text_contrast_problems` walks a finished Vega-Lite spec and resolves, for every text mark and every
row of its data, the text colour and the colour behind it; the tests run it on every chart of the report.

Focus: a segment chart declares the variable parameter FOCUS (default "": every segment) and filters its rows with
`focus_test`; the page's selector sets that signal in every chart (html.EMBED), and tables hide the other rows.
"""

from __future__ import annotations

import math

PAGE_WIDTH = 860  # the plot area of a full-width chart: with axis labels it fills the page's 1,116 px column
INK = "#1f2933"
WHITE = "#ffffff"
BLACK = "#000000"
BACKGROUND = "#ffffff"
CONTRAST_MIN = 4.5
MIN_TEXT_SIZE = 12  # the smallest in-chart label
FOCUS = "focus_segment"
FILLED_MARKS = ("rect", "bar", "arc")
NAMED = {"white": "#ffffff", "black": "#000000"}
# d3's "blues" scheme at nine stops: the migration heatmap's fills, computed here so each label's ink can be chosen.
BLUES = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]


def focus_test(*fields: str) -> str:
    """The filter keeping the rows of the focused segment (all rows while nothing is focused)."""
    return f"{FOCUS} === ''" + "".join(f" || datum.{field} === {FOCUS}" for field in fields)


def focus_param() -> dict:
    return {"name": FOCUS, "value": ""}


def _rgb(color: str) -> tuple[float, float, float]:
    color = NAMED.get(color.lower(), color)
    if not color.startswith("#") or len(color) not in (4, 7):
        raise ValueError(f"not a colour the contrast check can read: {color!r}")
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))


def luminance(color: str) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    channels = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in _rgb(color)]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def ink_on(fill: str) -> str:
    """The label colour for text drawn on `fill`: dark ink or white, whichever contrasts more; black where
    neither reaches CONTRAST_MIN (mid-tones: every colour reaches 4.58:1 against black or white)."""
    best = INK if contrast(INK, fill) >= contrast(WHITE, fill) else WHITE
    if contrast(best, fill) >= CONTRAST_MIN:
        return best
    return BLACK if contrast(BLACK, fill) >= contrast(WHITE, fill) else WHITE


def blues(share: float) -> str:
    """A colour of BLUES for a position 0..1 (nearest stop)."""
    share = min(max(share, 0.0), 1.0)
    return BLUES[round(share * (len(BLUES) - 1))]


def symlog_share(value: float, top: float) -> float:
    """Where `value` sits between 0 and `top` on a symmetric log scale (as Vega's symlog with constant 1)."""
    return math.log1p(max(value, 0)) / math.log1p(top) if top > 0 else 0.0


# --- the check ------------------------------------------------------------------------------------------------------

def _rows(data: dict | None, datasets: dict) -> list[dict] | None:
    if not data:
        return None
    if "values" in data:
        return data["values"]
    return datasets.get(data.get("name"))


def _mark(spec: dict) -> dict:
    mark = spec.get("mark")
    return {"type": mark} if isinstance(mark, str) else dict(mark or {})


def _colour(spec: dict, row: dict, what: str) -> str | None:
    """The colour a mark gives a row: from its encoding (a constant, an identity field or an explicit
    domain -> range scale) or its mark properties. Anything else (a continuous scale, a condition) cannot be
    checked, so it is an error: charts must draw labels and the fills under labels in a way this can read."""
    encoding = spec.get("encoding", {})
    channel = encoding.get("fill") or encoding.get("color")
    if channel is not None:
        if "condition" in channel:
            raise ValueError(f"{what}: a conditional colour cannot be checked; give each row its colour")
        if "value" in channel:
            return channel["value"]
        field = channel.get("field")
        scale = channel.get("scale", {})
        if scale is None:
            return row[field]
        domain, colours = scale.get("domain"), scale.get("range")
        if isinstance(domain, list) and isinstance(colours, list):
            return colours[domain.index(row[field])]
        raise ValueError(f"{what}: the colour of {field!r} comes from a scale the check cannot read")
    mark = _mark(spec)
    return mark.get("fill") or mark.get("color")


def _units(spec: dict, data: list[dict] | None, encoding: dict, datasets: dict, path: str):
    """(layer siblings, data, path) of every group of unit specs, with inherited data and encoding merged."""
    data = _rows(spec.get("data"), datasets) or data
    merged = {**encoding, **spec.get("encoding", {})}
    for key in ("vconcat", "hconcat", "concat"):
        for i, child in enumerate(spec.get(key, [])):
            yield from _units(child, data, {}, datasets, f"{path}.{key}[{i}]")
    if "spec" in spec:
        yield from _units(spec["spec"], data, merged, datasets, f"{path}.spec")
    if "layer" in spec:
        units = []
        for i, child in enumerate(spec["layer"]):
            if "layer" in child:
                yield from _units(child, data, merged, datasets, f"{path}.layer[{i}]")
                continue
            child_data = _rows(child.get("data"), datasets) or data
            units.append(({**child, "encoding": {**merged, **child.get("encoding", {})}}, child_data,
                          f"{path}.layer[{i}]"))
        yield units
    elif "mark" in spec:
        yield [({**spec, "encoding": merged}, data, path)]


def text_contrast_problems(spec: dict, name: str = "chart") -> list[str]:
    """Every text label of the spec whose contrast with what is behind it is below CONTRAST_MIN, or whose size
    is below MIN_TEXT_SIZE, as messages (empty: all legible). Behind a label is the filled mark (rect, bar, arc)
    of the same layer stack drawn from the same rows, when the label sits on it; otherwise the chart background."""
    datasets = spec.get("datasets", {})
    background = spec.get("config", {}).get("background", BACKGROUND)
    problems = []
    for units in _units(spec, None, {}, datasets, name):
        filled = [(unit, rows) for unit, rows, _ in units if _mark(unit).get("type") in FILLED_MARKS]
        for unit, rows, path in units:
            mark = _mark(unit)
            if mark.get("type") != "text":
                continue
            size = mark.get("fontSize", spec.get("config", {}).get("text", {}).get("fontSize", 11))
            if size < MIN_TEXT_SIZE:
                problems.append(f"{path}: font size {size} < {MIN_TEXT_SIZE}")
            under = next((f for f, f_rows in filled if f_rows is rows and _on_fill(mark, f)), None)
            text_field = unit["encoding"].get("text", {}).get("field")
            for row in rows or []:
                if text_field is not None and row.get(text_field) in ("", None):
                    continue  # nothing drawn
                ink = _colour(unit, row, path)
                if ink is None:
                    problems.append(f"{path}: text without an explicit colour")
                    break
                behind = _colour(under, row, path) if under is not None else background
                ratio = contrast(ink, behind or background)
                if ratio < CONTRAST_MIN:
                    problems.append(f"{path}: {ink} on {behind} has contrast {ratio:.2f} ({row})")
    return problems


def _on_fill(text_mark: dict, filled: dict) -> bool:
    """A label drawn on its row's filled mark, not beside it: an arc's label outside its outer radius is on the
    background."""
    outer = _mark(filled).get("outerRadius")
    radius = text_mark.get("radius")
    return not (radius is not None and outer is not None and radius > outer)
