"""The commander dashboard (指挥大屏) at ``/dashboard``: the county's levels drawn from the vector tiles by
zoom — streets, then communities, grids and micro-grids — with MapLibre GL JS served from this package,
so the page loads nothing from outside the host. Chinese by default, English with ``?lang=en``."""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Annotated, Any
from urllib.parse import quote

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
        "open": "在办",
        "overdue": "超期",
        "resolved_today": "今日办结",
        "resolution_rate": "办结率",
        "on_time_rate": "按期率",
        "red": "红榜",
        "black": "黑榜",
        "key": "API 密钥",
        "enter": "进入",
        "last30": "近 30 天",
    },
    "en": {
        "title": "GeoGrid commander dashboard",
        "version": "version",
        "street": "streets",
        "community": "communities",
        "grid": "grids",
        "microgrid": "micro-grids",
        "open": "open",
        "overdue": "overdue",
        "resolved_today": "resolved today",
        "resolution_rate": "resolution rate",
        "on_time_rate": "on-time rate",
        "red": "red list",
        "black": "black list",
        "key": "API key",
        "enter": "Enter",
        "last30": "last 30 days",
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
                "tiles": f"/tiles/{quote(set_name, safe='')}/{level.name}/{{z}}/{{x}}/{{y}}.mvt"
                + (f"?at={at.isoformat()}" if at else ""),
            }
        )
    tz = state.incidents.calendar.tz  # "today" is the calendar's day, as the figures count it
    return {"set": set_name, "version": number, "bounds": bounds, "levels": levels, "tz": tz}


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
        config=_script(setup),
        words=_script(words),
        key_label=html.escape(words["key"]),
        enter=html.escape(words["enter"]),
    )
    return HTMLResponse(page, headers={"cache-control": "no-cache"})


def _script(value: Any) -> str:
    """``value`` as a JavaScript literal that cannot end the <script> it stands in (nor open a comment)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


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
aside{{position:absolute;z-index:2;top:3em;right:.8em;width:17em;display:none}}
.tiles{{display:grid;grid-template-columns:1fr 1fr;gap:.4em}}
.tile{{background:rgba(17,24,39,.9);border:1px solid #374151;border-radius:.4em;padding:.4em .6em}}
.tile b{{display:block;font-size:1.5em}} .tile.bad b{{color:#f87171}}
.ranks{{background:rgba(17,24,39,.9);border:1px solid #374151;border-radius:.4em;margin-top:.4em;padding:.4em .6em;font-size:.85em}}
.ranks h2{{font-size:1em;margin:.2em 0}} .ranks ol{{margin:0;padding-left:1.4em}}
#red h2{{color:#f87171}} #black h2{{color:#9ca3af}}
form#login{{position:absolute;z-index:3;top:40%;left:50%;transform:translate(-50%,-50%);display:none;
  background:#111827;border:1px solid #374151;border-radius:.5em;padding:1em}}
</style></head><body>
<header><h1>{heading}</h1><ul class="legend">{legend}</ul></header>
<div id="map"></div>
<aside id="panel"><div class="tiles" id="kpis"></div>
<div class="ranks" id="red"></div><div class="ranks" id="black"></div></aside>
<form id="login"><label>{key_label} <input id="key" type="password" autocomplete="off" size="36"></label>
<button>{enter}</button></form>
<script src="/static/maplibre/maplibre-gl.js"></script>
<script>
const config = {config};
const words = {words};
const STORE = "geogrid-key";
if (location.hash.startsWith("#key=")) {{  // a kiosk link: kept in this tab only, and out of the address bar
  try {{ sessionStorage.setItem(STORE, decodeURIComponent(location.hash.slice(5))); }} catch (error) {{}}
  history.replaceState(null, "", location.pathname + location.search);
}}
const key = () => sessionStorage.getItem(STORE);
const auth = () => key() ? {{Authorization: "Bearer " + key()}} : {{}};
async function api(path) {{
  const response = await fetch(path, {{headers: auth()}});
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}}
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
  transformRequest: url => url.startsWith(location.origin) ? {{url, headers: auth()}} : {{url}},
  style: {{version: 8, sources, layers: [{{id: "background", type: "background",
                                          paint: {{"background-color": "#111827"}}}}, ...layers]}},
}});
map.addControl(new maplibregl.NavigationControl(), "bottom-right");

const incidents = new Map();  // id -> GeoJSON feature
let asOf = null;
const today = () => new Date().toLocaleDateString("sv", {{timeZone: config.tz}});  // YYYY-MM-DD
const pct = v => v == null ? "–" : (100 * v).toFixed(1) + "%";
const setParam = "set=" + encodeURIComponent(config.set);

function put(found) {{
  for (let i = 0; i < found.id.length; i++) {{
    incidents.set(found.id[i], {{type: "Feature", id: found.id[i],
      geometry: {{type: "Point", coordinates: [found.lon[i], found.lat[i]]}},
      properties: {{id: found.id[i], state: found.state[i], category: found.category[i], grid: found.grid[i],
                   overdue: found.overdue[i] ? 1 : 0}}}});
  }}
  if (found.as_of && (!asOf || found.as_of > asOf)) asOf = found.as_of;
  const data = {{type: "FeatureCollection", features: [...incidents.values()]}};
  map.getSource("incidents").setData(data);
  map.getSource("heat").setData(data);
}}

async function figures() {{
  const [period, day, ranking] = await Promise.all([
    api("/v1/incidents/kpis?by=county&" + setParam),
    api("/v1/incidents/kpis?by=county&start=" + today() + "&" + setParam),
    api("/v1/incidents/ranking?by=grid&top=5&min_received=1&" + setParam),
  ]);
  const all = period.units[0] || {{}}, now = day.units[0] || {{}};
  const tiles = [["open", all.open ?? 0], ["overdue", all.overdue ?? 0, true], ["resolved_today", now.resolved ?? 0],
                 ["resolution_rate", pct(all.resolution_rate)], ["on_time_rate", pct(all.on_time_rate)]];
  document.getElementById("kpis").innerHTML = tiles.map(([name, value, bad]) =>
    `<div class="tile${{bad && value ? " bad" : ""}}" data-kpi="${{name}}">${{words[name]}}<b>${{value}}</b></div>`).join("");
  for (const side of ["red", "black"]) {{
    const items = ranking[side].map(r => `<li>${{r.unit}} · ${{pct(r.resolution_rate)}}</li>`).join("");
    document.getElementById(side).innerHTML = `<h2>${{words[side]}} · ${{words.last30}}</h2><ol>${{items}}</ol>`;
  }}
}}

function scoped(me) {{  // a scoped key: its street or community, and the units above it, drawn; nothing else
  if (!me.scope) return;
  const code = ["get", "code"], n = me.scope.length;
  const filter = ["any", ["==", ["slice", code, 0, n], me.scope], ["==", code, ["slice", me.scope, 0, ["length", code]]]];
  for (const level of config.levels) for (const part of ["-fill", "-line"]) map.setFilter(level.name + part, filter);
}}

async function start() {{
  document.getElementById("login").style.display = "none";
  scoped(await api("/v1/keys/me"));
  const first = await api("/v1/incidents/points?" + setParam);
  put(first);
  document.getElementById("panel").style.display = "block";
  await figures();
  window.dashboard.started = true;
  if (first.truncated) return;  // too many to follow live: narrow the period (no moment to poll from)
  let changedSince = 0;
  setInterval(async () => {{  // live: what changed since the last answer (a few seconds back: late commits)
    const since = asOf ? new Date(Date.parse(asOf) - 5000).toISOString() : null;
    const found = await api("/v1/incidents/points?" + setParam + (since ? "&since=" + encodeURIComponent(since) : ""));
    if (found.id.length) {{ put(found); changedSince += found.id.length; }}
  }}, 1000);
  setInterval(() => {{ if (changedSince) {{ changedSince = 0; figures(); }} }}, 10000);
}}
function failed(error) {{  // a key refused: forget it and ask again
  console.warn(String(error));
  if (/ answered 40[13]$/.test(String(error))) {{
    sessionStorage.removeItem(STORE);
    document.getElementById("login").style.display = "block";
  }}
}}

map.on("load", () => {{
  map.addSource("incidents", {{type: "geojson", data: {{type: "FeatureCollection", features: []}},
                               cluster: true, clusterRadius: 40, clusterMaxZoom: 14}});
  map.addSource("heat", {{type: "geojson", data: {{type: "FeatureCollection", features: []}}}});
  map.addLayer({{id: "heat", type: "heatmap", source: "heat", maxzoom: 13,
                paint: {{"heatmap-radius": 18, "heatmap-opacity": 0.6}}}});
  map.addLayer({{id: "clusters", type: "circle", source: "incidents", filter: ["has", "point_count"],
                paint: {{"circle-color": "#f59e0b", "circle-opacity": 0.85,
                        "circle-radius": ["step", ["get", "point_count"], 8, 10, 12, 100, 18, 1000, 26]}}}});
  map.addLayer({{id: "incident", type: "circle", source: "incidents", filter: ["!", ["has", "point_count"]],
                paint: {{"circle-radius": 5, "circle-stroke-width": 1, "circle-stroke-color": "#111827",
                        "circle-color": ["case", ["==", ["get", "overdue"], 1], "#ef4444", "#22c55e"]}}}});
  if (key()) start().catch(failed);
  else document.getElementById("login").style.display = "block";
}});
document.getElementById("login").addEventListener("submit", event => {{
  event.preventDefault();
  sessionStorage.setItem(STORE, document.getElementById("key").value.trim());
  start().catch(failed);
}});
window.dashboard = {{map, config, incidents, ready: new Promise(resolve => map.once("idle", resolve))}};
</script>
</body></html>
"""
