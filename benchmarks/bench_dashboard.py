"""Dashboard benchmark: time to the first full render in headless Chromium, and the bytes it took.

The demo county on PostGIS (3,552 units, its roster) with a month of incidents (``--incidents``, the last
30 days, each inside a micro-grid, imported as a hotline export), served by ``geogrid serve``. Two pages,
each opened ``--rounds`` times in a fresh browser context (no cache), 1800×1400 so the county fits whole
at zoom 12 where every micro-grid is drawn:

- GeoGrid's ``/dashboard?zoom=12`` with a commander key: done when the KPI tiles are filled, the month's
  incidents are on the map and MapLibre is idle with every tile loaded (the micro-grids counted);
- a plain folium page carrying the same layers as GeoJSON (streets, communities, grids, micro-grids and
  the incidents as points; Leaflet inlined, as ``geogrid.maps`` makes its pages), served from loopback by
  Python's http.server: done when the page has loaded and two frames were painted.

Bytes are what crossed the wire (headers and bodies, as Chromium counts them). Nothing leaves the
machine: every request to another host is refused and counted.

    python benchmarks/bench_dashboard.py
    python benchmarks/bench_dashboard.py --screenshots docs   # the README's two pictures, from this set-up
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import http.server
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import geopandas as gpd
import shapely

from geogrid.maps.page import Layer, feature, render, rounded

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgis import scratch_database
from bench_http import BIN, ROOT, free_port
from bench_incidents import serve

DEMO = ROOT / "boundaries" / "demo"
LEVELS = (("streets", "#1d4ed8"), ("communities", "#0f766e"), ("grids", "#b45309"), ("microgrids", "#6d28d9"))
CHROMIUM = "/usr/bin/chromium"
DASHBOARD_DONE = """async () => {
  const map = window.dashboard.map;
  while (!(window.dashboard.started && map.loaded() && map.areTilesLoaded()))
    await new Promise(resolve => map.once("idle", resolve));
  const codes = new Set(map.querySourceFeatures("microgrid", {sourceLayer: "microgrid"}).map(f => f.properties.code));
  return [performance.now(), codes.size, window.dashboard.incidents.size];
}"""
FOLIUM_DONE = """async () => {
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  return [performance.now(), document.querySelectorAll("path.leaflet-interactive").length, 0];
}"""


def month_of_incidents(path: Path, n: int, seed: int = 7) -> tuple[Path, list[tuple[float, float, str]]]:
    """A hotline export of ``n`` incidents over the last 30 days, each at a point inside a micro-grid."""
    rng = random.Random(seed)
    micro = gpd.read_file(DEMO / "microgrids.geojson")
    cells = list(zip(micro.geometry, micro.geometry.representative_point(), strict=True))
    zone = ZoneInfo("Asia/Shanghai")
    now = dt.datetime.now(zone).replace(tzinfo=None) - dt.timedelta(minutes=10)
    points = []
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["工单编号", "受理时间", "事件类型", "诉求内容", "经度", "纬度", "坐标系"])
        for i in range(n):
            shape, middle = rng.choice(cells)
            x, y = middle.x, middle.y
            for _ in range(10):
                near = (x + rng.uniform(-2e-4, 2e-4), y + rng.uniform(-2e-4, 2e-4))
                if shape.contains(shapely.Point(near)):
                    x, y = near
                    break
            when = now - dt.timedelta(seconds=rng.uniform(0, 29 * 86400))
            category = rng.choice(["E0102", "E0503", "C0104", "E0601"])
            writer.writerow([f"BD{i:06d}", when.strftime("%Y-%m-%d %H:%M:%S"), category, "市民反映", f"{x:.6f}",
                             f"{y:.6f}", "wgs84"])  # fmt: skip
            points.append((x, y, category))
    return path, points


def folium_page(path: Path, points: list[tuple[float, float, str]]) -> Path:
    """The peer: the same layers as GeoJSON in one folium page (Leaflet inlined, no other host)."""
    layers = []
    bounds = None
    for name, colour in LEVELS:
        frame = gpd.read_file(DEMO / f"{name}.geojson")
        if bounds is None:
            x0, y0, x1, y1 = frame.total_bounds
            bounds = [[float(y0), float(x0)], [float(y1), float(x1)]]
        style = {"color": colour, "weight": 1, "fillColor": colour, "fillOpacity": 0.18}
        features = [
            feature(geom, style, "", f"{code} {label}", name)
            for geom, code, label in zip(rounded(frame.geometry.to_numpy()), frame["code"], frame["name"], strict=True)
        ]  # fmt: skip
        layers.append(Layer(name, f"bench-{name}", features, labels={name: (name, colour)}))
    dots = [
        feature(shapely.Point(x, y), {"color": "#ef4444", "radius": 4}, "", category, "incident")
        for x, y, category in points
    ]
    layers.append(Layer("incidents", "bench-incidents", dots, labels={"incident": ("incidents", "#ef4444")},
                        points=True))  # fmt: skip
    path.write_text(render("demo", layers, bounds, tile_url=None, attribution=None), encoding="utf-8")
    return path


def serve_folder(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """``folder`` served on a loopback port by Python's own server (quiet), in a thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def visit(browser, url: str, done: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Open ``url`` in a fresh context; ms to ``done``, bytes over the wire, requests, what ``done`` counted."""
    context = browser.new_context(viewport={"width": 1800, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(120_000)
    sizes: list[int] = []
    outside: list[str] = []

    def route(route) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost", None):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    def finished(request) -> None:  # type: ignore[no-untyped-def]
        size = request.sizes()
        sizes.append(size["responseBodySize"] + size["responseHeadersSize"])

    page.route("**/*", route)
    page.on("requestfinished", finished)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url, wait_until="load")
        if "/dashboard" in url:
            page.wait_for_function("() => window.dashboard && window.dashboard.started === true")
        ms, drawn, points = page.evaluate(done)
    finally:
        context.close()
    if outside or errors:
        raise RuntimeError(f"{url}: asked other hosts {outside[:3]} or failed {errors[:3]}")
    return {"ms": ms, "bytes": sum(sizes), "requests": len(sizes), "drawn": drawn, "points": points}


def screenshots(folder: Path, base: str, key: str) -> None:
    """The dashboard (a grid clicked, coloured by open incidents) and the responsibility map, as PNG files."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{base}/dashboard#key={key}", wait_until="load")
        page.wait_for_function("() => window.dashboard && window.dashboard.started === true", timeout=120_000)
        page.evaluate(DASHBOARD_DONE)
        busiest = page.evaluate(
            "() => [...window.dashboard.grids].sort((a, b) => (b[1].figures?.open ?? 0) - (a[1].figures?.open ?? 0))[0][0]"
        )
        page.evaluate("code => window.dashboard.show(code)", busiest)
        page.wait_for_timeout(1500)  # the coverage asked by the click, drawn into the panel
        page.screenshot(path=str(folder / "dashboard.png"))
        page.close()
        page = browser.new_page(
            viewport={"width": 1600, "height": 1000}, extra_http_headers={"Authorization": f"Bearer {key}"}
        )
        page.goto(f"{base}/v1/sets/demo/maps/responsibility", wait_until="load", timeout=120_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(folder / "responsibility-map.png"))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--hold", action="store_true", help="Set up, print both pages' URLs and wait (Ctrl-C)."
    )
    parser.add_argument("--screenshots", type=Path, help="Save the README's screenshots here and stop.")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with scratch_database() as engine, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        url = engine.url.render_as_string(hide_password=False)
        env = {**os.environ, "GEOGRID_DATABASE_URL": url, "GEOGRID_CACHE_DIR": str(tmp / "cache")}

        def geogrid(*command: str) -> str:
            done = subprocess.run([str(BIN / "geogrid"), *command], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=900)  # fmt: skip
            if done.returncode:
                raise RuntimeError(f"geogrid {' '.join(command)}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
            return done.stdout.strip()

        geogrid("demo", "--valid-from", "2026-01-01")
        export, points = month_of_incidents(tmp / "month.csv", args.incidents)
        geogrid("incidents", "import", str(export), "--set", "demo", "--commit")
        key = geogrid("keys", "create", "--name", "bench", "--role", "commander").splitlines()[-1]
        (tmp / "site").mkdir()
        folium_page(tmp / "site" / "folium.html", points)
        port = free_port()
        service = serve(
            [str(BIN / "geogrid"), "serve", "--port", str(port), "--log-level", "warning"],
            {"GEOGRID_DATABASE_URL": url, "GEOGRID_CACHE_DIR": str(tmp / "cache")}, port, tmp / "serve.log",
            "/readyz",
        )  # fmt: skip
        server, base = serve_folder(tmp / "site")
        pages = {
            "GeoGrid `/dashboard` (MapLibre, vector tiles, live points)": (
                f"http://127.0.0.1:{port}/dashboard?zoom=12#key={key}", DASHBOARD_DONE,
            ),
            "folium page, the same layers as GeoJSON (Leaflet inlined)": (f"{base}/folium.html", FOLIUM_DONE),
        }  # fmt: skip
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in pages}
        try:
            if args.hold:
                print("\n".join(url for url, _ in pages.values()), flush=True)
                threading.Event().wait()
            if args.screenshots:
                screenshots(args.screenshots, f"http://127.0.0.1:{port}", key)
                return
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for page_url, done in pages.values():  # warm-up: the server's tiles and caches
                    visit(browser, page_url, done)
                for r in range(args.rounds):
                    for label in list(pages) if r % 2 == 0 else list(reversed(pages)):
                        runs[label].append(visit(browser, *pages[label]))
                browser.close()
        finally:
            server.shutdown()
            service.terminate()
            service.wait(timeout=30)
    print(f"\nFirst full render, 1800×1400, demo county (2,974 micro-grids drawn) and {args.incidents:,} incidents "
          f"of a month, {args.rounds} rounds (median; worst):\n")  # fmt: skip
    print("| page | ms to full render | worst ms | MB over the wire | requests | units drawn | incidents |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, found in runs.items():
        print(f"| {label} | {statistics.median(r['ms'] for r in found):,.0f} | {max(r['ms'] for r in found):,.0f} | "
              f"{statistics.median(r['bytes'] for r in found) / 1e6:.2f} | {found[0]['requests']} | "
              f"{found[0]['drawn']:,} | {found[0]['points']:,} |")  # fmt: skip


if __name__ == "__main__":
    main()
