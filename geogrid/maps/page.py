"""One offline HTML page from map layers: folium with Leaflet inlined, a legend, stable element ids.

The only module that imports folium, inside :func:`render` (``pip install folium``). Leaflet is vendored
in ``geogrid/static/leaflet`` (npm ``leaflet@1.9.4``, unchanged, licence kept) and inlined with its images
as ``data:`` URIs; folium's CDN defaults (Leaflet, jQuery, Bootstrap, Font Awesome, awesome-markers) are
dropped, so a saved page opens from disk and asks no host for anything but an optional tile server.
"""

from __future__ import annotations

import base64
import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import shapely

LEAFLET = Path(__file__).resolve().parent.parent / "static" / "leaflet"
DIGITS = 6  # coordinates are written to 6 decimals (~0.1 m): compact, and nothing is simplified
UNKNOWN_COLOUR = "#999999"

# Binds each feature's popup and tooltip. Leaflet writes a string of either with innerHTML, so both are
# HTML escaped in Python: the popup where it is composed, the tooltip (text) by :func:`feature`.
_BIND = (
    "function(f, l) { var p = f.properties;"
    " if (p.popup) { l.bindPopup(p.popup, {maxWidth: 420}); }"
    " if (p.tip) { l.bindTooltip(p.tip, {sticky: true}); } }"
)
_CSS = """
.leaflet-container{background:#f4f4f2}
.geogrid-title{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1001;background:#fff;
padding:4px 12px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:bold 15px sans-serif}
.geogrid-legend{position:absolute;bottom:28px;right:10px;z-index:1001;background:#fff;padding:6px 10px;
border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:12px sans-serif;max-height:70vh;overflow:auto}
.geogrid-legend h4{margin:6px 0 2px;font-size:12px}
.geogrid-legend-item i{display:inline-block;width:14px;height:10px;margin-right:6px;border:1px solid #555}
.geogrid-legend-item.geogrid-dot i{width:10px;border-radius:50%}
.geogrid-legend-item.geogrid-outline i{background:transparent!important}
.geogrid-legend-none{color:#555;font-style:italic}
.geogrid-legend-count{color:#555}
.leaflet-popup-content table{border-collapse:collapse}
.leaflet-popup-content td,.leaflet-popup-content th{border:1px solid #ccc;padding:1px 4px;text-align:left}
"""
_HEX32 = re.compile(r"(?<=_)[0-9a-f]{32}(?![0-9A-Za-z])")


@dataclass
class Layer:
    """An overlay and its legend section.

    ``css`` is the class on every path it draws; ``labels`` maps each legend key a feature may carry (in
    ``properties.key``) to its label and colour, in legend order; ``note`` follows the name in the legend.
    """

    name: str
    css: str
    features: list[dict[str, Any]]
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    show: bool = True
    points: bool = False
    outline: bool = False  # drawn as outlines: the legend's swatch is one too
    note: str = ""

    def legend(self) -> list[tuple[str, str, str, int]]:
        """(key, label, colour, count) per known key (zero counts too), then any other key found."""
        counts = Counter(f["properties"]["key"] for f in self.features)
        keys = list(self.labels) + sorted(k for k in counts if k not in self.labels)
        return [(k, *self.labels.get(k, (k, UNKNOWN_COLOUR)), counts.get(k, 0)) for k in keys]


def feature(geom: Any, style: dict[str, Any], popup: str, tip: str, key: str, **extra: Any) -> dict[str, Any]:
    """A GeoJSON feature carrying its style, popup, tooltip, legend key and ``extra`` properties.

    ``popup`` is HTML, every value in it already escaped; ``tip`` is plain text, escaped here (Leaflet
    writes a tooltip with innerHTML: a grid named ``<img onerror=...>`` would run on hover).
    """
    properties = {"key": key, "style": style, "popup": popup, "tip": escape(tip)}
    properties.update({k: v for k, v in extra.items() if v is not None})
    return {"type": "Feature", "geometry": geom.__geo_interface__, "properties": properties}


def rounded(geoms: Any) -> Any:
    """Geometries with every coordinate rounded to :data:`DIGITS` decimals (no vertex dropped)."""
    return shapely.transform(geoms, lambda xy: np.round(xy, DIGITS))


def escape(value: Any) -> str:
    """``value`` as HTML text or attribute."""
    return html.escape(str(value), quote=True)


def render(
    title: str,
    layers: Sequence[Layer],
    bounds: list[list[float]] | None,
    *,
    tile_url: str | None,
    attribution: str | None,
) -> str:
    """The page: ``layers`` fitted to ``bounds`` ([[S, W], [N, E]]), a title, legend, layer control, base map."""
    folium = _folium()
    centre = [round((a + b) / 2, DIGITS) for a, b in zip(*bounds, strict=True)] if bounds else [0.0, 0.0]
    m = folium.Map(location=centre, zoom_start=12 if bounds else 2, tiles=None, control_scale=True)
    # The instance's lists shadow folium's class-level CDN defaults (Leaflet, jQuery, Bootstrap, Font
    # Awesome, awesome-markers): nothing is linked; Leaflet is inlined instead.
    m.default_js, m.default_css = [], []
    root = m.get_root()
    root.title = escape(title)  # folium writes the title as it is
    root.header.add_child(_verbatim(folium, _assets()), name="geogrid_assets", index=0)
    if tile_url:
        attr = attribution or escape(urlsplit(tile_url).hostname or "base map")  # attribution is HTML
        folium.TileLayer(tiles=tile_url, attr=attr, name="Base map", control=False, max_zoom=19).add_to(m)
    bind = folium.utilities.JsCode(_BIND)
    for layer in layers:
        folium.GeoJson(
            {"type": "FeatureCollection", "features": layer.features},
            name=escape(f"{layer.name} ({len(layer.features)})"),  # the layer control writes it as HTML
            show=layer.show,
            marker=folium.CircleMarker(radius=4, className=layer.css) if layer.points else None,
            on_each_feature=bind,
            className=layer.css,  # Leaflet gives it to every path the layer draws
        ).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    if bounds:
        m.fit_bounds(bounds)
    root.html.add_child(_verbatim(folium, _legend(title, layers)), name="geogrid_legend")
    page = root.render()
    return _stable_ids(page, _element_ids(folium, root))


def _folium() -> Any:
    """folium, imported now: drawing a map is the only thing that needs it."""
    try:
        import folium
        import folium.utilities
    except ImportError as exc:
        raise ImportError(
            "coverage maps need folium: pip install 'folium>=0.17' (a dependency of geogrid)"
        ) from exc
    return folium


def _verbatim(folium: Any, text: str) -> Any:
    """An element that writes ``text`` as it is: as data, never as a template (a set named ``{{ x }}``)."""
    element = folium.Element("{{ this.text }}")
    element.text = text
    return element


@lru_cache(maxsize=1)
def _assets() -> str:
    """Leaflet's CSS (comments dropped, images as data: URIs) and script, inline, with GeoGrid's styles."""
    css = re.sub(r"/\*.*?\*/", "", (LEAFLET / "leaflet.css").read_text("utf-8"), flags=re.S)

    def inline(match: re.Match[str]) -> str:
        data = base64.b64encode((LEAFLET / "images" / match.group(2)).read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    css = re.sub(r"url\((['\"]?)images/([\w.-]+\.png)\1\)", inline, css)
    # The source-map comment would send devtools looking for a leaflet.js.map beside the saved page.
    js = re.sub(r"\s*//# sourceMappingURL=\S+\s*$", "", (LEAFLET / "leaflet.js").read_text("utf-8"))
    if "</script" in js.lower() or "</style" in css.lower():  # pragma: no cover - a vendoring mistake
        raise RuntimeError("a vendored Leaflet file would close its inline element early")
    # Upstream's attribution prefix links to leafletjs.com: the credit stays, as plain text. A data: icon
    # stops the browser asking the server for /favicon.ico.
    prefix = 'L.Control.Attribution.prototype.options.prefix = "Leaflet";'
    icon = '<link rel="icon" href="data:,">'
    return f"{icon}\n<style>{css}{_CSS}</style>\n<script>{js}\n{prefix}</script>"


def _legend(title: str, layers: Sequence[Layer]) -> str:
    """The title box and the legend box: per layer, a swatch, a label and a count per entry."""
    parts = [f'<div class="geogrid-title">{escape(title)}</div>', '<div class="geogrid-legend">']
    for layer in layers:
        parts.append(f'<div class="geogrid-legend-section" data-layer="{escape(layer.css)}">')
        parts.append(f"<h4>{escape(layer.name)}{escape(layer.note and ' ' + layer.note)}</h4>")
        shape = " geogrid-dot" if layer.points else " geogrid-outline" if layer.outline else ""
        entries = layer.legend()
        if not entries:
            parts.append('<div class="geogrid-legend-none">none</div>')
        for key, label, colour, count in entries:
            parts.append(
                f'<div class="geogrid-legend-item{shape}" data-key="{escape(key)}" data-color="{escape(colour)}">'
                f'<i style="background:{escape(colour)};border-color:{escape(colour)}"></i>'
                f'<span class="geogrid-legend-label">{escape(label)}</span> '
                f'<span class="geogrid-legend-count">{count}</span></div>'
            )
        parts.append("</div>")
    parts.append("</div>")
    return "\n".join(parts)


def _element_ids(folium: Any, root: Any) -> set[str]:
    """The random 32-hex ids of every element in folium's tree (children, and elements held as options)."""
    ids: set[str] = set()
    seen: set[int] = set()
    stack = [root]
    while stack:
        element = stack.pop()
        if id(element) in seen:
            continue
        seen.add(id(element))
        ids.add(element._id)
        stack.extend(element._children.values())
        stack.extend(v for v in vars(element).values() if isinstance(v, folium.Element))
    return ids


def _stable_ids(page: str, ids: set[str]) -> str:
    """Folium's element ids (``ids``), renumbered in order of appearance: same input, same bytes.

    Only those: an id in the data that merely looks like one (``x_`` and 32 hex digits) is left alone.
    """
    seen: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        found = match.group(0)
        return seen.setdefault(found, str(len(seen) + 1)) if found in ids else found

    return _HEX32.sub(number, page)
