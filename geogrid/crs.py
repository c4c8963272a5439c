"""What coordinate system is this, and what is it in WGS-84?

GeoGrid names a CRS one way everywhere: ``wgs84``, ``gcj02``, ``bd09``, ``cgcs2000`` or ``EPSG:NNNN``.
WGS-84 and CGCS2000 differ by centimetres and are handled by pyproj like any EPSG code. GCJ-02 (the
obfuscated datum of Amap, Tencent and WeChat maps) and BD-09 (Baidu's extra offset on top of GCJ-02) are
not in any EPSG registry; they are computed here, vectorised over numpy arrays.

The GCJ-02 forward transform is the standard published algorithm (Krasovsky ellipsoid constants, identity
outside China's box). Its inverse has no closed form: the common one-step inverse is off by up to 2 m, so
:func:`gcj02_to_wgs84` iterates the forward transform to well under a millimetre.

>>> lon, lat = wgs84_to_gcj02(116.377817, 39.911954)
>>> round(float(lon), 6), round(float(lat), 6)
(116.384047, 39.913345)
>>> back = gcj02_to_wgs84(lon, lat)
>>> round(float(back[0]), 9), round(float(back[1]), 9)
(116.377817, 39.911954)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
import shapely
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray

from geogrid.errors import InvalidCoordinates, UnknownCRS

Array = NDArray[np.float64]

WGS84 = "wgs84"
GCJ02 = "gcj02"
BD09 = "bd09"
CGCS2000 = "cgcs2000"

_ALIASES = {
    "wgs84": WGS84,
    "wgs-84": WGS84,
    "wgs 84": WGS84,
    "epsg:4326": WGS84,
    "4326": WGS84,
    "gcj02": GCJ02,
    "gcj-02": GCJ02,
    "gcj": GCJ02,
    "mars": GCJ02,
    "amap": GCJ02,
    "tencent": GCJ02,
    "bd09": BD09,
    "bd-09": BD09,
    "bd09ll": BD09,
    "baidu": BD09,
    "cgcs2000": CGCS2000,
    "cgcs-2000": CGCS2000,
    "epsg:4490": CGCS2000,
    "4490": CGCS2000,
}
_EPSG_OF = {WGS84: 4326, CGCS2000: 4490}

# Standard GCJ-02 constants: semi-major axis and eccentricity squared of the Krasovsky 1940 ellipsoid.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
# The box outside which GCJ-02 is the identity (the rule every public implementation uses).
CHINA_BOX = (72.004, 0.8293, 137.8347, 55.8271)
_INVERSE_TOL_DEG = 1e-12  # ~0.1 µm; the iteration stops well below the 1 cm we promise
_INVERSE_MAX_ITER = 40
_PARALLEL_FROM = 4096  # points: below this, numba's threads cost more to start than they save


def normalize_crs(crs: str | int | pyproj.CRS | None) -> str:
    """Return the one GeoGrid name of ``crs``: ``wgs84``, ``gcj02``, ``bd09``, ``cgcs2000`` or ``EPSG:N``.

    >>> normalize_crs("GCJ-02"), normalize_crs(4326), normalize_crs("epsg:4546")
    ('gcj02', 'wgs84', 'EPSG:4546')
    """
    if crs is None:
        raise UnknownCRS("no CRS given")
    if isinstance(crs, pyproj.CRS):
        epsg = crs.to_epsg(min_confidence=70)
        if epsg is None:
            raise UnknownCRS(f"CRS has no EPSG code: {crs.name}", crs=crs.name)
        return normalize_crs(epsg)
    key = str(crs).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    code = key.removeprefix("epsg:")
    if code.isdigit():
        try:
            pyproj.CRS.from_epsg(int(code))
        except pyproj.exceptions.CRSError as exc:
            raise UnknownCRS(f"unknown EPSG code {code}", crs=str(crs)) from exc
        return normalize_crs(int(code)) if int(code) in (4326, 4490) else f"EPSG:{int(code)}"
    raise UnknownCRS(f"unknown CRS {crs!r}; use wgs84, gcj02, bd09, cgcs2000 or EPSG:NNNN", crs=str(crs))


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where a point lies outside China's box, where GCJ-02 equals WGS-84."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x0, y0, x1, y1 = CHINA_BOX
    return ~((lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1))


@njit(cache=True, inline="always")
def _gcj_offset(lon: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 offset (dlon, dlat) in degrees at a WGS-84 point; zero outside China's box."""
    if not (CHINA_BOX[0] <= lon <= CHINA_BOX[2] and CHINA_BOX[1] <= lat <= CHINA_BOX[3]):
        return 0.0, 0.0
    x, y = lon - 105.0, lat - 35.0
    xy, abs_x = x * y, math.sqrt(abs(x))
    x_pi, y_pi = x * math.pi, y * math.pi
    d = 20.0 * math.sin(6.0 * x_pi) + 20.0 * math.sin(2.0 * x_pi)
    dlat = d + 20.0 * math.sin(y_pi) + 40.0 * math.sin(y_pi / 3.0)
    dlon = d + 20.0 * math.sin(x_pi) + 40.0 * math.sin(x_pi / 3.0)
    dlat += 160.0 * math.sin(y_pi / 12.0) + 320.0 * math.sin(y_pi / 30.0)
    dlon += 150.0 * math.sin(x_pi / 12.0) + 300.0 * math.sin(x_pi / 30.0)
    dlat = dlat * 2.0 / 3.0 + (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * xy + 0.2 * abs_x)
    dlon = dlon * 2.0 / 3.0 + (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * xy + 0.1 * abs_x)
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlon, dlat


@njit(cache=True, inline="always")
def _gcj_unoffset(gx: float, gy: float, tol: float, max_iter: int) -> tuple[float, float]:
    """Solve forward(p) = g by fixed-point iteration (the forward is near the identity)."""
    px, py = gx, gy
    for _ in range(max_iter):
        dx, dy = _gcj_offset(px, py)
        ex, ey = px + dx - gx, py + dy - gy
        px, py = px - ex, py - ey
        if abs(ex) < tol and abs(ey) < tol:
            break
    return px, py


# Each conversion twice: in parallel for batches (releasing the GIL meanwhile), one by one for a few points,
# where starting numba's threads would cost a hundred times the arithmetic.
@njit(cache=True, parallel=True, nogil=True)
def _gcj_forward(lon: Array, lat: Array) -> tuple[Array, Array]:
    out_x, out_y = np.empty(lon.size), np.empty(lon.size)
    for i in prange(lon.size):
        dx, dy = _gcj_offset(lon[i], lat[i])
        out_x[i], out_y[i] = lon[i] + dx, lat[i] + dy
    return out_x, out_y


@njit(cache=True, nogil=True)
def _gcj_forward_few(lon: Array, lat: Array) -> tuple[Array, Array]:
    out_x, out_y = np.empty(lon.size), np.empty(lon.size)
    for i in range(lon.size):
        dx, dy = _gcj_offset(lon[i], lat[i])
        out_x[i], out_y[i] = lon[i] + dx, lat[i] + dy
    return out_x, out_y


@njit(cache=True, parallel=True, nogil=True)
def _gcj_inverse(gx: Array, gy: Array, tol: float, max_iter: int) -> tuple[Array, Array]:
    out_x, out_y = np.empty(gx.size), np.empty(gx.size)
    for i in prange(gx.size):
        out_x[i], out_y[i] = _gcj_unoffset(gx[i], gy[i], tol, max_iter)
    return out_x, out_y


@njit(cache=True, nogil=True)
def _gcj_inverse_few(gx: Array, gy: Array, tol: float, max_iter: int) -> tuple[Array, Array]:
    out_x, out_y = np.empty(gx.size), np.empty(gx.size)
    for i in range(gx.size):
        out_x[i], out_y[i] = _gcj_unoffset(gx[i], gy[i], tol, max_iter)
    return out_x, out_y


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _invert(
    forward: Callable[[Array, Array], tuple[Array, Array]], x: Array, y: Array
) -> tuple[Array, Array]:
    """Solve ``forward(p) = (x, y)`` for p by fixed-point iteration (forward is near the identity)."""
    px, py = x.copy(), y.copy()
    for _ in range(_INVERSE_MAX_ITER):
        fx, fy = forward(px, py)
        ex, ey = fx - x, fy - y
        px, py = px - ex, py - ey
        if ex.size == 0 or max(np.nanmax(np.abs(ex), initial=0), np.nanmax(np.abs(ey), initial=0)) < (
            _INVERSE_TOL_DEG
        ):
            break
    return px, py


def _vectorised(
    kernels: tuple[Callable[..., tuple[Array, Array]], Callable[..., tuple[Array, Array]]],
    lon: ArrayLike,
    lat: ArrayLike,
    *args: Any,
) -> tuple[Array, Array]:
    """Apply a (parallel, one-by-one) pair of kernels, the first to many points, the second to a few."""
    x, y = _arrays(lon, lat)
    shape = np.broadcast_shapes(x.shape, y.shape)
    x, y = np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()
    kernel = kernels[0] if x.size >= _PARALLEL_FROM else kernels[1]
    out_x, out_y = kernel(np.ascontiguousarray(x), np.ascontiguousarray(y), *args)
    return out_x.reshape(shape), out_y.reshape(shape)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS-84 to GCJ-02 (identity outside China)."""
    return _vectorised((_gcj_forward, _gcj_forward_few), lon, lat)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 to WGS-84 exactly (iterated to < 1e-12°, not the 1-2 m one-step inverse)."""
    return _vectorised((_gcj_inverse, _gcj_inverse_few), lon, lat, _INVERSE_TOL_DEG, _INVERSE_MAX_ITER)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 to BD-09 (Baidu's offset, applied everywhere as Baidu does)."""
    x, y = _arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 to GCJ-02 exactly (the usual closed form is only approximate; this iterates)."""
    return _invert(gcj02_to_bd09, *_arrays(lon, lat))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS-84 to BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 to WGS-84 exactly."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


_TO_WGS84 = {GCJ02: gcj02_to_wgs84, BD09: bd09_to_wgs84}
_FROM_WGS84 = {GCJ02: wgs84_to_gcj02, BD09: wgs84_to_bd09}


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj_crs(src), pyproj_crs(dst), always_xy=True)


def pyproj_crs(crs: str | int | pyproj.CRS) -> pyproj.CRS:
    """Return the pyproj CRS for a GeoGrid CRS name (GCJ-02/BD-09 are geographic, labelled WGS-84)."""
    name = normalize_crs(crs)
    if name in (GCJ02, BD09):
        return pyproj.CRS.from_epsg(4326)
    return pyproj.CRS.from_epsg(_EPSG_OF.get(name) or int(name.split(":")[1]))


def is_geographic(crs: str | int | pyproj.CRS) -> bool:
    """True when coordinates in ``crs`` are longitude/latitude degrees."""
    return bool(pyproj_crs(crs).is_geographic)


def transform(x: ArrayLike, y: ArrayLike, src: Any, dst: Any = WGS84) -> tuple[Array, Array]:
    """Transform coordinate arrays from ``src`` to ``dst`` (any GeoGrid CRS name or EPSG code).

    >>> lon, lat = transform([111.2], [39.85], "wgs84", "bd09")
    >>> x, y = transform(lon, lat, "bd09", "wgs84")
    >>> bool(abs(x[0] - 111.2) < 1e-10 and abs(y[0] - 39.85) < 1e-10)
    True
    """
    src, dst = normalize_crs(src), normalize_crs(dst)
    x, y = _arrays(x, y)
    if src == dst:
        return x.copy(), y.copy()
    if src in _TO_WGS84:
        x, y = _TO_WGS84[src](x, y)
        src = WGS84
    if dst in _FROM_WGS84:
        if src != WGS84:
            x, y = _transformer(src, WGS84).transform(x, y)
        return _FROM_WGS84[dst](x, y)
    if src == dst:
        return x, y
    # WGS-84 <-> CGCS2000 is a null transformation in pyproj (they agree to a few cm); that is deliberate.
    out = _transformer(src, dst).transform(x, y)
    return np.asarray(out[0], dtype=float), np.asarray(out[1], dtype=float)


def to_wgs84(x: ArrayLike, y: ArrayLike, crs: Any) -> tuple[Array, Array]:
    """Transform coordinates in ``crs`` to WGS-84 longitude/latitude."""
    return transform(x, y, crs, WGS84)


def transform_geometries(geoms: Any, src: Any, dst: Any = WGS84) -> NDArray[np.object_]:
    """Transform an array of shapely geometries from ``src`` to ``dst``, vertex by vertex."""
    src, dst = normalize_crs(src), normalize_crs(dst)
    arr = np.asarray(geoms, dtype=object)
    if src == dst:
        return arr

    def _xy(coords: Array) -> Array:
        x, y = transform(coords[:, 0], coords[:, 1], src, dst)
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(arr, _xy), dtype=object)


def check_lonlat(lon: ArrayLike, lat: ArrayLike) -> None:
    """Raise :class:`InvalidCoordinates` naming the first point that is not a valid lon/lat."""
    lon, lat = _arrays(lon, lat)
    bad = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidCoordinates(
            f"{int(bad.sum())} point(s) are not valid longitude/latitude; first at index {i}",
            index=i,
            lon=float(lon.flat[i]),
            lat=float(lat.flat[i]),
        )


def local_metric_crs(lon: float, lat: float) -> pyproj.CRS:
    """Return a metric CRS for areas and distances near (lon, lat).

    Inside China: the CGCS2000 3-degree Gauss-Krüger zone (EPSG:4534-4554); elsewhere: the UTM zone.

    >>> local_metric_crs(111.2, 39.85).name
    'CGCS2000 / 3-degree Gauss-Kruger CM 111E'
    """
    if not (np.isfinite(lon) and np.isfinite(lat)):
        raise InvalidCoordinates("cannot choose a metric CRS for a non-finite point", lon=lon, lat=lat)
    if 73.5 <= lon < 136.5 and 0 < lat <= 56:
        return pyproj.CRS.from_epsg(4534 + round((lon - 75.0) / 3.0))
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
