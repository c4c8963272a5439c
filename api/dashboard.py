"""The commander dashboard (指挥大屏) at ``/dashboard``: the county's levels drawn from the vector tiles by
zoom — streets, then communities, grids and micro-grids — with MapLibre GL JS served from this package,
so the page loads nothing from outside the host. Chinese by default, English with ``?lang=en``."""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from api.auth import reader
from api.dependencies import StateDep
from geogrid.crs import WGS84
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
        "all": "全部",
        "category": "类别",
        "period": "时段",
        "today": "今日",
        "days7": "近 7 天",
        "days30": "近 30 天",
        "days90": "近 90 天",
        "colour_by": "网格着色",
        "staffing": "人员配备",
        "staffed": "已配齐",
        "no_leader": "缺网格长",
        "no_worker": "缺网格员",
        "unstaffed": "无人负责",
        "leaders": "网格长",
        "workers": "网格员",
        "received": "受理",
        "open_incidents": "在办事件",
        "none": "无",
        "households": "户数",
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
        "all": "all",
        "category": "category",
        "period": "period",
        "today": "today",
        "days7": "last 7 days",
        "days30": "last 30 days",
        "days90": "last 90 days",
        "colour_by": "colour grids by",
        "staffing": "staffing",
        "staffed": "staffed",
        "no_leader": "no leader",
        "no_worker": "no worker",
        "unstaffed": "nobody responsible",
        "leaders": "leaders",
        "workers": "workers",
        "received": "received",
        "open_incidents": "open incidents",
        "none": "none",
        "households": "households",
    },
}


def config(state: StateDep, set_name: str, at: dt.date | None) -> dict[str, Any]:
    """What the page draws: the set, its version in force, its bounds and each level's tiles and zooms, in
    the dashboard's datum (GCJ-02 over a GCJ-02 base map; the base map itself comes from ``setup``)."""
    datum = _datum(state)
    params = ({"at": at.isoformat()} if at else {}) | ({"crs": datum} if datum != WGS84 else {})
    levels = []
    bounds: tuple[float, ...] = ()
    for i, (level, start) in enumerate(ZOOMS):
        number, layer = state.tile_layer(set_name, level, at, datum)
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
                + (f"?{urlencode(params)}" if params else ""),
            }
        )
    tz = state.incidents.calendar.tz  # "today" is the calendar's day, as the figures count it
    return {
        "set": set_name, "version": number, "bounds": bounds, "levels": levels, "tz": tz, "crs": datum,
        "at": at.isoformat() if at else None,
    }  # fmt: skip


def _datum(state: StateDep) -> str:
    """The datum the dashboard draws in: its base map's (GEOGRID_TILE_CRS), WGS-84 without one."""
    return state.settings.tile_crs if state.settings.tile_url else WGS84


@router.get("/dashboard/setup", dependencies=[Depends(reader)])
def setup(
    state: StateDep,
    set_name: Annotated[str | None, Query(alias="set", max_length=100)] = None,
    at: Annotated[dt.date | None, Query()] = None,
) -> dict[str, Any]:
    """What the page needs once it has its key (not written into the page, which loads without one): the
    streets and communities (code, name) and categories (code, name) its filters offer, and the base map
    (``GEOGRID_TILE_URL``, which may carry an access token)."""
    name, datum = set_name or state.settings.default_set, _datum(state)
    units = {
        level.name: state.tile_layer(name, level, at, datum)[1].names()
        for level in (Level.street, Level.community)
    }
    base = None
    if state.settings.tile_url:  # MapLibre shows attribution as HTML
        host = html.escape(urlsplit(state.settings.tile_url).hostname or "base map")
        base = {"tiles": state.settings.tile_url, "attribution": host}
    return {"units": units, "categories": [(s.code, s.name) for s in state.incidents.catalogue], "base": base}


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    state: StateDep,
    set_name: Annotated[str | None, Query(alias="set", max_length=100)] = None,
    at: Annotated[dt.date | None, Query()] = None,
    lang: Annotated[str, Query(pattern="^(zh|en)$")] = "zh",
    zoom: Annotated[float | None, Query(ge=0, le=22, description="Open at this zoom, centred.")] = None,
) -> HTMLResponse:
    """The dashboard page of a set (default: the configured one); the whole county in view unless ``zoom``
    (a wall screen that should open on the micro-grids: 12)."""
    setup = config(state, set_name or state.settings.default_set, at) | {"zoom": zoom}
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
        colour_by=html.escape(words["colour_by"]),
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
form#filters{{display:none;gap:.8em;margin-top:.4em;font-size:.85em}}
select{{background:#111827;color:#e5e7eb;border:1px solid #374151;border-radius:.3em;max-width:12em}}
#map{{position:absolute;top:0;bottom:0;left:0;right:0}}
aside{{position:absolute;z-index:2;top:5em;width:17em;display:none}}
aside#panel{{right:.8em}} aside#unit{{left:.8em;width:19em;max-height:80%;overflow:auto}}
.tiles{{display:grid;grid-template-columns:1fr 1fr;gap:.4em}}
.tile{{background:rgba(17,24,39,.9);border:1px solid #374151;border-radius:.4em;padding:.4em .6em}}
.tile b{{display:block;font-size:1.5em}} .tile.bad b{{color:#f87171}}
.box{{background:rgba(17,24,39,.9);border:1px solid #374151;border-radius:.4em;margin-top:.4em;padding:.4em .6em;font-size:.85em}}
.box h2{{font-size:1em;margin:.2em 0}} .box ol,.box ul{{margin:0;padding-left:1.4em}}
#red h2{{color:#f87171}} #black h2{{color:#9ca3af}}
.staffing{{font-weight:bold}} .staffing.unstaffed{{color:#f87171}} .staffing.no_leader,.staffing.no_worker{{color:#fbbf24}}
.scale span{{display:inline-block;width:1.6em;height:.7em}}
form#login{{position:absolute;z-index:3;top:40%;left:50%;transform:translate(-50%,-50%);display:none;
  background:#111827;border:1px solid #374151;border-radius:.5em;padding:1em}}
</style></head><body>
<header><h1>{heading}</h1><ul class="legend">{legend}</ul>
<form id="filters"><select id="f-street"></select><select id="f-community"></select>
<select id="f-category"></select><select id="f-period"></select></form></header>
<div id="map"></div>
<aside id="panel"><div class="tiles" id="kpis"></div>
<div class="box"><label>{colour_by} <select id="measure"></select></label><div class="scale" id="scale"></div></div>
<div class="box" id="red"></div><div class="box" id="black"></div></aside>
<aside id="unit" class="box"></aside>
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
const esc = text => String(text ?? "").replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";");
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
// the incidents, in the style from the start: drawn with the first tiles, not after the map's load
const none = {{type: "FeatureCollection", features: []}};
const pointSources = {{incidents: {{type: "geojson", data: none, cluster: true, clusterRadius: 40, clusterMaxZoom: 14}},
                heat: {{type: "geojson", data: none}}}};
const incidentLayers = [
  {{id: "heat", type: "heatmap", source: "heat", maxzoom: 12, paint: {{"heatmap-radius": 18, "heatmap-opacity": 0.6}}}},
  {{id: "clusters", type: "circle", source: "incidents", filter: ["has", "point_count"],
   paint: {{"circle-color": "#f59e0b", "circle-opacity": 0.85,
           "circle-radius": ["step", ["get", "point_count"], 8, 10, 12, 100, 18, 1000, 26]}}}},
  {{id: "incident", type: "circle", source: "incidents", filter: ["!", ["has", "point_count"]],
   paint: {{"circle-radius": 5, "circle-stroke-width": 1, "circle-stroke-color": "#111827",
           "circle-color": ["case", ["==", ["get", "overdue"], 1], "#ef4444", "#22c55e"]}}}},
];
for (const level of config.levels.filter(level => level.name === "grid"))  // the grid clicked, outlined at its zooms
  incidentLayers.push({{id: "grid-selected", type: "line", source: "grid", "source-layer": "grid",
                        minzoom: level.minzoom, maxzoom: level.maxzoom, filter: ["==", ["get", "code"], ""],
                        paint: {{"line-color": "#f9fafb", "line-width": 3}}}});
const [w, s, e, n] = config.bounds;
const view = config.zoom == null ? {{bounds: config.bounds, fitBoundsOptions: {{padding: 40}}}}
                                 : {{center: [(w + e) / 2, (s + n) / 2], zoom: config.zoom}};
const map = new maplibregl.Map({{
  container: "map", ...view, attributionControl: false,
  transformRequest: url => url.startsWith(location.origin) ? {{url, headers: auth()}} : {{url}},
  style: {{version: 8, sources: {{...sources, ...pointSources}}, layers: [{{id: "background", type: "background",
                                          paint: {{"background-color": "#111827"}}}}, ...layers, ...incidentLayers]}},
}});
map.addControl(new maplibregl.NavigationControl(), "bottom-right");

const incidents = new Map();  // id -> GeoJSON feature
const grids = new Map();  // grid code -> {{figures, cover}}: the choropleth's and the click panel's
let asOf = null, generation = 0, scope = null;
const today = () => new Date().toLocaleDateString("sv", {{timeZone: config.tz}});  // YYYY-MM-DD
const daysBack = n => {{ const d = new Date(today() + "T12:00:00Z"); d.setUTCDate(d.getUTCDate() - n + 1);
                         return d.toISOString().slice(0, 10); }};
const pct = v => v == null ? "–" : (100 * v).toFixed(1) + "%";
const setParam = "set=" + encodeURIComponent(config.set);
const value = id => document.getElementById(id).value;
function filters() {{  // the query of what the filters ask: unit, category, start
  const unit = value("f-community") || value("f-street"), days = Number(value("f-period") || 30);
  return setParam + (unit ? "&unit=" + unit : "") + "&start=" + daysBack(days);
}}
const category = () => value("f-category");

let loaded, drawable = false;
const mapLoaded = new Promise(resolve => {{ loaded = () => {{ drawable = true; resolve(); }}; }});  // sources and layers there
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

const MEASURES = ["open", "overdue", "resolution_rate", "on_time_rate", "staffing"];
const STAFFING = {{staffed: "#16a34a", no_leader: "#f59e0b", no_worker: "#f97316", unstaffed: "#dc2626"}};
const RAMP = ["#1e3a8a", "#2563eb", "#f59e0b", "#ea580c", "#dc2626"];  // few → many (rates: good → bad)
function paint() {{  // the grids coloured by the measure chosen, from the figures and the coverage
  if (!drawable || !map.getLayer("grid-fill")) return;
  const measure = value("measure"), pairs = [];
  let legend = "";
  if (measure === "staffing") {{
    coverage();
    for (const [code, g] of grids) if (g.cover) pairs.push(code, STAFFING[g.cover.staffing]);
    legend = Object.entries(STAFFING).map(([k, c]) => `<span style="background:${{c}}"></span> ${{words[k]}}`).join(" ");
  }} else {{
    const rate = measure.endsWith("_rate"), values = [...grids.values()].map(g => g.figures?.[measure]).filter(v => v != null);
    const top = rate ? 1 : Math.max(1, ...values);
    for (const [code, g] of grids) {{
      const v = g.figures?.[measure];
      if (v == null) continue;
      const share = rate ? 1 - v : v / top;  // a low rate is the bad end, as a high count
      pairs.push(code, RAMP[Math.min(RAMP.length - 1, Math.floor(share * RAMP.length))]);
    }}
    legend = RAMP.map(c => `<span style="background:${{c}}"></span>`).join("") + (rate ? " 100% → 0%" : ` 0 → ${{top}}`);
  }}
  document.getElementById("scale").innerHTML = legend;
  const colour = pairs.length ? ["match", ["get", "code"], ...pairs, "#374151"] : "#374151";
  map.setPaintProperty("grid-fill", "fill-color", colour);
  map.setPaintProperty("grid-fill", "fill-opacity", 0.55);
}}

async function figures() {{
  const asked = filters();
  const [period, day, ranking, byGrid] = await Promise.all([
    api("/v1/incidents/kpis?by=county&" + asked),
    api("/v1/incidents/kpis?by=county&" + asked.replace(/&start=[^&]*/, "") + "&start=" + today()),
    api("/v1/incidents/ranking?by=grid&top=5&min_received=1&" + asked),
    api("/v1/incidents/kpis?by=grid&" + asked),
  ]);
  const all = period.units[0] || {{}}, now = day.units[0] || {{}};
  const tiles = [["open", all.open ?? 0], ["overdue", all.overdue ?? 0, true], ["resolved_today", now.resolved ?? 0],
                 ["resolution_rate", pct(all.resolution_rate)], ["on_time_rate", pct(all.on_time_rate)]];
  document.getElementById("kpis").innerHTML = tiles.map(([name, v, bad]) =>
    `<div class="tile${{bad && v ? " bad" : ""}}" data-kpi="${{name}}">${{words[name]}}<b>${{v}}</b></div>`).join("");
  lastRanking = ranking;
  ranks();
  for (const g of grids.values()) g.figures = null;
  for (const row of byGrid.units) grids.set(row.unit, {{...(grids.get(row.unit) || {{}}), figures: row}});
  paint();
  if (shown) show(shown);
}}

let lastRanking = null;
function ranks() {{  // the red and black lists, grids by name once the coverage has them
  if (!lastRanking) return;
  for (const side of ["red", "black"]) {{
    const items = lastRanking[side].map(r => `<li title="${{esc(r.unit)}}">${{esc(grids.get(r.unit)?.cover?.name || r.unit)}}` +
                                        ` · ${{pct(r.resolution_rate)}}</li>`).join("");
    document.getElementById(side).innerHTML = `<h2>${{words[side]}}</h2><ol>${{items}}</ol>`;
  }}
}}

let covered = null;
function coverage() {{  // who answers for each grid (names masked as the key's role requires), asked once when first needed
  covered = covered || loadCoverage().catch(error => {{ covered = null; console.warn(String(error)); }});
  return covered;
}}
async function loadCoverage() {{
  const found = await api("/v1/sets/" + encodeURIComponent(config.set) + "/coverage");
  for (const row of found.grids) grids.set(row.code, {{...(grids.get(row.code) || {{}}), cover: row}});
  paint();
  ranks();
  if (shown) show(shown);
}}

let shown = null;
function show(code) {{  // the grid clicked: its people, open incidents and figures (the people once asked for)
  shown = code;
  coverage();
  if (map.getLayer("grid-selected")) map.setFilter("grid-selected", ["==", ["get", "code"], code]);
  const g = grids.get(code) || {{}}, c = g.cover, f = g.figures || {{}};
  const open = [...incidents.values()].filter(i => i.properties.grid === code && !["closed", "void"].includes(i.properties.state));
  const staffing = c ? c.staffing : null;
  const people = c ? `<li>${{words.leaders}}: ${{esc((c.leaders || []).join("、")) || words.none}}</li>
      <li>${{words.workers}}: ${{esc((c.worker_names || []).join("、")) || words.none}}</li>
      <li>${{words.households}}: ${{c.households ?? "–"}}</li>` : "";
  document.getElementById("unit").innerHTML = `<h2 data-unit="${{esc(code)}}">${{esc(c?.name || "")}} ${{esc(code)}}</h2>
    <div class="staffing ${{staffing || ""}}" data-staffing="${{staffing || ""}}">${{words.staffing}}: ${{staffing ? words[staffing] : "–"}}</div>
    <ul>${{people}}</ul>
    <div class="tiles">${{[["received", f.received ?? 0], ["open", f.open ?? 0], ["overdue", f.overdue ?? 0],
      ["resolution_rate", pct(f.resolution_rate)], ["on_time_rate", pct(f.on_time_rate)]].map(([n, v]) =>
      `<div class="tile" data-figure="${{n}}">${{words[n]}}<b>${{v}}</b></div>`).join("")}}</div>
    <h2>${{words.open_incidents}} (${{open.length}})</h2>
    <ol>${{open.slice(0, 20).map(i => `<li>#${{i.id}} ${{esc(i.properties.category)}}${{i.properties.overdue ? " ⚠" : ""}}</li>`).join("")}}</ol>`;
  document.getElementById("unit").style.display = "block";
}}
function gridOf(code) {{  // the grid a clicked unit is, or lies in (a micro-grid's code starts with its grid's)
  for (let n = code.length; n > 0; n--) if (grids.has(code.slice(0, n))) return code.slice(0, n);
  return null;
}}

function options(select, items, all) {{
  select.innerHTML = (all ? `<option value="">${{esc(all)}}</option>` : "") +
    items.map(([v, label]) => `<option value="${{esc(v)}}">${{esc(label)}}</option>`).join("");
}}
function setUpFilters(offered) {{  // offered: /dashboard/setup, read with the key
  const inScope = code => !scope || code.startsWith(scope) || scope.startsWith(code);
  options(document.getElementById("f-street"),
          offered.units.street.filter(([c]) => inScope(c)).map(([c, n]) => [c, n || c]), words.street + ": " + words.all);
  const communities = () => offered.units.community.filter(([c]) => inScope(c) && c.startsWith(value("f-street")));
  options(document.getElementById("f-community"), communities().map(([c, n]) => [c, n || c]), words.community + ": " + words.all);
  options(document.getElementById("f-category"), offered.categories.map(([c, n]) => [c, c + " " + n]), words.category + ": " + words.all);
  options(document.getElementById("f-period"), [["1", words.today], ["7", words.days7], ["30", words.days30], ["90", words.days90]]);
  document.getElementById("f-period").value = "30";
  options(document.getElementById("measure"), MEASURES.map(m => [m, words[m]]));
  document.getElementById("f-street").addEventListener("change", () => {{
    options(document.getElementById("f-community"), communities().map(([c, n]) => [c, n || c]), words.community + ": " + words.all);
    reload();
  }});
  for (const id of ["f-community", "f-category", "f-period"]) document.getElementById(id).addEventListener("change", reload);
  document.getElementById("measure").addEventListener("change", paint);
  document.getElementById("filters").style.display = "flex";
}}

async function points(since) {{
  const c = category();
  return api("/v1/incidents/points?" + filters() + (c ? "&category=" + encodeURIComponent(c) : "") +
             (config.crs !== "wgs84" ? "&crs=" + config.crs : "") +
             (since ? "&since=" + encodeURIComponent(since) : ""));
}}
async function reload() {{  // the filters changed: everything asked again
  const mine = ++generation;
  incidents.clear(); asOf = null;
  const [first] = await Promise.all([points(null), figures(), mapLoaded]);  // asked together, drawn once loaded
  if (mine !== generation) return;
  put(first);
  paint();
  following = !first.truncated;  // too many to follow live: narrow the filters (no moment to poll from)
  window.dashboard.generation = mine;
}}

function addBase(base) {{  // a base map (GEOGRID_TILE_URL): under the units, from this host or the intranet's
  const template = base.tiles.startsWith("/") ? location.origin + base.tiles : base.tiles;
  map.addSource("base", {{type: "raster", tiles: [template], tileSize: 256, maxzoom: 19, attribution: base.attribution}});
  map.addLayer({{id: "base", type: "raster", source: "base"}}, map.getStyle().layers[1]?.id);  // above the background
  map.addControl(new maplibregl.AttributionControl({{compact: true}}));
}}

let following = false;
function scoped(me) {{  // a scoped key: its street or community, and the units above it, drawn; nothing else
  if (!me.scope) return;
  const code = ["get", "code"], n = me.scope.length;
  const filter = ["any", ["==", ["slice", code, 0, n], me.scope], ["==", code, ["slice", me.scope, 0, ["length", code]]]];
  for (const level of config.levels) for (const part of ["-fill", "-line"]) map.setFilter(level.name + part, filter);
}}

async function start() {{  // called at once: the data is asked for while the map loads
  document.getElementById("login").style.display = "none";
  const [me, offered] = await Promise.all([  // the server scopes the data itself
    api("/v1/keys/me"), api("/dashboard/setup?" + setParam + (config.at ? "&at=" + config.at : "")), reload()]);
  scope = me.scope || null;
  mapLoaded.then(() => {{ scoped(me); if (offered.base) addBase(offered.base); }});
  setUpFilters(offered);
  document.getElementById("panel").style.display = "block";
  window.dashboard.started = true;
  let changedSince = 0;
  setInterval(async () => {{  // live: what changed since the last answer (a few seconds back: late commits)
    if (!following) return;
    const mine = generation, since = asOf ? new Date(Date.parse(asOf) - 5000).toISOString() : null;
    const found = await points(since);
    if (mine === generation && found.id.length) {{ put(found); changedSince += found.id.length; }}
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

function styled() {{  // sources and layers are there: data can be drawn as it comes
  if (drawable) return;
  loaded();
  map.on("click", event => {{
    const fills = config.levels.map(level => level.name + "-fill").filter(id => map.getLayer(id));
    const hit = map.queryRenderedFeatures(event.point, {{layers: fills}})[0];
    const grid = hit && gridOf(String(hit.properties.code));
    if (grid) show(grid);
  }});
}}
map.once("style.load", styled);
if (map.isStyleLoaded()) styled();
if (key()) start().catch(failed);
else document.getElementById("login").style.display = "block";
document.getElementById("login").addEventListener("submit", event => {{
  event.preventDefault();
  sessionStorage.setItem(STORE, document.getElementById("key").value.trim());
  start().catch(failed);
}});
window.dashboard = {{map, config, incidents, grids, show, ready: new Promise(resolve => map.once("idle", resolve))}};
</script>
</body></html>
"""
