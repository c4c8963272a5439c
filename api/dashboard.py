"""The commander dashboard (指挥大屏) at ``/dashboard``: the county's levels drawn from the vector tiles by
zoom — streets, then communities, grids and micro-grids — with MapLibre GL JS served from this package,
so the page loads nothing from outside the host. Chinese by default, English with ``?lang=en``."""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.dependencies import StateDep
from geogrid.hierarchy import Level

router = APIRouter(include_in_schema=False)

# Each level is drawn from its zoom (MapLibre's: 512-px tiles) until the next one takes over; micro-grids
# from 12, where a county of ~25 km fits a wall screen whole.
ZOOMS = ((Level.street, 0), (Level.community, 10), (Level.grid, 11), (Level.microgrid, 12))
COLOURS = {"street": "#1d4ed8", "community": "#0f766e", "grid": "#b45309", "microgrid": "#6d28d9"}
TEXT = {
    "zh": {
        "title": "网格化管理指挥大屏",
        "version": "版本",
        "street": "街道",
        "community": "社区",
        "grid": "网格",
        "microgrid": "微网格",
    },
    "en": {
        "title": "GeoGrid commander dashboard",
        "version": "version",
        "street": "streets",
        "community": "communities",
        "grid": "grids",
        "microgrid": "micro-grids",
    },
}


def config(state: StateDep, set_name: str, at: dt.date | None) -> dict[str, Any]:
    """What the page draws: the set, its version in force, its bounds and each level's tiles and zooms."""
    levels = []
    bounds: tuple[float, ...] = ()
    for i, (level, start) in enumerate(ZOOMS):
        number, layer = state.tile_layer(set_name, level, at)
        if not len(layer):
            continue
        bounds = bounds or layer.bounds
        end = ZOOMS[i + 1][1] if i + 1 < len(ZOOMS) else 24
        levels.append(
            {
                "name": level.name,
                "units": len(layer),
                "minzoom": start,
                "maxzoom": end,
                "colour": COLOURS[level.name],
                "tiles": f"/tiles/{set_name}/{level.name}/{{z}}/{{x}}/{{y}}.mvt"
                + (f"?at={at.isoformat()}" if at else ""),
            }
        )
    return {"set": set_name, "version": number, "bounds": bounds, "levels": levels}


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    state: StateDep,
    set_name: Annotated[str | None, Query(alias="set", max_length=100)] = None,
    at: Annotated[dt.date | None, Query()] = None,
    lang: Annotated[str, Query(pattern="^(zh|en)$")] = "zh",
) -> HTMLResponse:
    """The dashboard page of a set (default: the configured one)."""
    setup = config(state, set_name or state.settings.default_set, at)
    words = TEXT[lang]
    legend = "".join(
        f'<li><span style="background:{level["colour"]}"></span>{html.escape(words[level["name"]])} '
        f"<b>{level['units']:,}</b></li>"
        for level in setup["levels"]
    )
    page = PAGE.format(
        lang="zh-CN" if lang == "zh" else "en",
        title=html.escape(words["title"]),
        heading=html.escape(f"{words['title']} · {setup['set']} {words['version']} {setup['version']}"),
        legend=legend,
        config=json.dumps(setup, ensure_ascii=False).replace("</", "<\\/"),
    )
    return HTMLResponse(page, headers={"cache-control": "no-cache"})


PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/maplibre/maplibre-gl.css">
<style>
html,body{{margin:0;height:100%;font-family:system-ui,sans-serif;background:#0b1220;color:#e5e7eb}}
header{{position:absolute;z-index:2;top:0;left:0;right:0;padding:.5em 1em;background:rgba(11,18,32,.85)}}
header h1{{font-size:1.1em;margin:0;display:inline-block}}
ul.legend{{list-style:none;display:inline-flex;gap:1.2em;margin:0 0 0 2em;padding:0;font-size:.9em}}
ul.legend span{{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}}
#map{{position:absolute;top:0;bottom:0;left:0;right:0}}
</style></head><body>
<header><h1>{heading}</h1><ul class="legend">{legend}</ul></header>
<div id="map"></div>
<script src="/static/maplibre/maplibre-gl.js"></script>
<script>
const config = {config};
const sources = {{}}, layers = [];
for (const level of config.levels) {{
  sources[level.name] = {{type: "vector", tiles: [location.origin + level.tiles], minzoom: Math.floor(level.minzoom),
                           maxzoom: 16, bounds: config.bounds}};
  layers.push({{id: level.name + "-fill", type: "fill", source: level.name, "source-layer": level.name,
               minzoom: level.minzoom, maxzoom: level.maxzoom,
               paint: {{"fill-color": level.colour, "fill-opacity": 0.18}}}});
  layers.push({{id: level.name + "-line", type: "line", source: level.name, "source-layer": level.name,
               minzoom: level.minzoom, maxzoom: level.maxzoom,
               paint: {{"line-color": level.colour, "line-width": 1.2}}}});
}}
const map = new maplibregl.Map({{
  container: "map", bounds: config.bounds, fitBoundsOptions: {{padding: 40}}, attributionControl: false,
  style: {{version: 8, sources, layers: [{{id: "background", type: "background",
                                          paint: {{"background-color": "#111827"}}}}, ...layers]}},
}});
map.addControl(new maplibregl.NavigationControl(), "bottom-right");
window.dashboard = {{map, config, ready: new Promise(resolve => map.once("idle", resolve))}};
</script>
</body></html>
"""
