"""The landing page and the API docs, served with their assets from the package (no CDN, no fonts)."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from geogrid import __version__

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
# Served by name from this table only: no path from the request reaches the file system.
ASSETS: dict[str, tuple[str, str]] = {
    "swagger-ui/swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui/swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css"),
    "swagger-ui/favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "redoc/redoc.standalone.js": ("redoc/redoc.standalone.js", "text/javascript"),
    "redoc/logo-mini.svg": ("redoc/logo-mini.svg", "image/svg+xml"),  # ReDoc's CDN logo, served here
    "maplibre/maplibre-gl.js": ("maplibre/maplibre-gl.js", "text/javascript"),  # the dashboard's map
    "maplibre/maplibre-gl.css": ("maplibre/maplibre-gl.css", "text/css"),
}
EXAMPLE_LOOKUP = "/v1/lookup?lon=111.2&lat=39.85"
LINKS = [
    ("/dashboard", "Commander dashboard (指挥大屏)"),
    ("/docs", "Interactive API docs (Swagger UI)"),
    ("/redoc", "API reference (ReDoc)"),
    ("/ogc", "OGC API - Features (QGIS, GDAL)"),
    ("/v1/sets", "Boundary sets"),
    (EXAMPLE_LOOKUP, "Example lookup"),
    ("/healthz", "Health"),
    ("/readyz", "Readiness"),
]


def _loaded(request: Request) -> list[tuple[str, int]]:
    """The (set, version) pairs whose index is in memory; none before start-up finished."""
    service = getattr(request.app.state, "service", None)
    return list(service.loaded) if service is not None else []


@router.get("/", response_model=None)
def landing(request: Request) -> Response:
    """A small page naming what is loaded and linking the docs, the sets and an example lookup."""
    loaded = _loaded(request)
    if "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get(
        "accept", ""
    ):
        return JSONResponse(
            {
                "service": "GeoGrid",
                "version": __version__,
                "indexes": [{"set": s, "version": v} for s, v in loaded],
                "links": [{"href": href, "title": title} for href, title in LINKS],
            }
        )
    what = (
        ", ".join(f"set <b>{html.escape(s)}</b> version <b>{v}</b>" for s, v in loaded)
        or "no published version yet (<code>geogrid demo</code> loads one)"
    )
    items = "\n".join(
        f'<li><a href="{href}">{html.escape(title)}</a> <code>{href}</code></li>' for href, title in LINKS
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GeoGrid {__version__}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;line-height:1.5}}code{{color:#555}}</style>
</head><body>
<h1>GeoGrid {__version__}</h1>
<p>Point-in-grid lookup and grid boundaries. Loaded: {what}.</p>
<ul>
{items}
</ul>
</body></html>
"""
    return HTMLResponse(page)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI with its script, style and icon from this package."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title="GeoGrid - Swagger UI",
        swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc with its script from this package and no web fonts."""
    return get_redoc_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title="GeoGrid - ReDoc",
        redoc_js_url="/static/redoc/redoc.standalone.js",
        redoc_favicon_url="/static/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get("/static/{folder}/{name}", response_model=None)
def asset(folder: str, name: str) -> Response:
    """One of the vendored docs assets, cached for a day; anything else is 404."""
    entry = ASSETS.get(f"{folder}/{name}")
    if entry is None:
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": f"no asset {folder}/{name}",
            },
            status_code=404,
            media_type="application/problem+json",
        )
    path, media_type = entry
    return FileResponse(
        STATIC / path, media_type=media_type, headers={"cache-control": "public, max-age=86400"}
    )
