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
import re
from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
import shapely
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray

from geogrid.errors import InvalidCoordinates, UnknownCRS, cut

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

    Names are matched case-insensitively (``GCJ-02``, ``Baidu``, ``epsg:4490``); an EPSG code must be
    written in ASCII digits (``int()`` would also read ``٤٣٢٦`` or ``４３２６``, and fail on ``²``) and
    name a horizontal CRS (geographic or projected). Anything else raises :class:`UnknownCRS`.

    >>> normalize_crs("GCJ-02"), normalize_crs(4326), normalize_crs("epsg:4546")
    ('gcj02', 'wgs84', 'EPSG:4546')
    """
    if crs is None:
        raise UnknownCRS("no CRS given")
    if isinstance(crs, pyproj.CRS):
        epsg = crs.to_epsg(min_confidence=70)
        if epsg is None:
            raise UnknownCRS(f"CRS has no EPSG code: {cut(crs.name)}", crs=cut(crs.name))
        return normalize_crs(epsg)
    if isinstance(crs, bool):  # int(True) is 1: not a code anyone meant
        raise UnknownCRS(f"a CRS is a name or an EPSG code, not {crs}")
    key = str(crs).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    code = key.removeprefix("epsg:")
    if _EPSG_CODE.fullmatch(code):
        number = int(code)
        if number in (4326, 4490):
            return normalize_crs(number)
        _check_epsg(number)
        return f"EPSG:{number}"
    raise UnknownCRS(
        f"unknown CRS {cut(str(crs))!r}; use wgs84, gcj02, bd09, cgcs2000 or EPSG:NNNN", crs=cut(str(crs))
    )


_EPSG_CODE = re.compile(r"[0-9]{1,9}", re.ASCII)  # ASCII digits only; \d and str.isdigit take far more


def _check_epsg(number: int) -> None:
    """Refuse an EPSG code pyproj does not know, or one that is not a horizontal CRS (vertical, geocentric)."""
    problem = _epsg_problem(number)
    if problem:
        raise UnknownCRS(problem, crs=f"EPSG:{number}")


@lru_cache(maxsize=1024)
def _epsg_problem(number: int) -> str:
    """What is wrong with an EPSG code ('' when nothing); kept, since asking pyproj takes milliseconds and a
    refused code is asked again as often as a good one."""
    try:
        found = pyproj.CRS.from_epsg(number)
    except pyproj.exceptions.CRSError:
        return f"unknown EPSG code {number}"
    if not (found.is_geographic or found.is_projected):
        return f"EPSG:{number} is a {found.type_name}, not a geographic or projected CRS of lon/lat or x/y"
    return ""


def named_crs(spelling: str) -> str | None:
    """The name of one of the four named systems for a spelling of it (``GCJ-02``, ``EPSG:4326``), else
    None; a dictionary lookup, for the hot path (EPSG codes are :func:`normalize_crs`'s, through pyproj)."""
    return _ALIASES.get(spelling.strip().lower())


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
def _bd_from_gcj(x: float, y: float) -> tuple[float, float]:
    """GCJ-02 to BD-09 (Baidu's offset, applied everywhere as Baidu does)."""
    z = math.sqrt(x * x + y * y) + 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) + 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


@njit(cache=True, inline="always")
def _gcj_from_wgs(x: float, y: float) -> tuple[float, float]:
    dx, dy = _gcj_offset(x, y)
    return x + dx, y + dy


@njit(cache=True, inline="always")
def _solve(bd: bool, tx: float, ty: float, tol: float, max_iter: int) -> tuple[float, float]:
    """The point the forward conversion (GCJ-02's offset, or Baidu's if ``bd``) takes to (tx, ty): fixed-point
    iteration from (tx, ty), the forward being near the identity; exact where the usual closed forms are
    only approximate."""
    px, py = tx, ty
    for _ in range(max_iter):
        fx, fy = _bd_from_gcj(px, py) if bd else _gcj_from_wgs(px, py)
        ex, ey = fx - tx, fy - ty
        px, py = px - ex, py - ey
        if abs(ex) < tol and abs(ey) < tol:
            break
    return px, py


# Conversions between the Chinese systems, by number: one kernel for every direction.
_WGS_GCJ, _GCJ_WGS, _GCJ_BD, _BD_GCJ, _WGS_BD, _BD_WGS = range(6)


@njit(cache=True, inline="always")
def _convert(way: int, x: float, y: float) -> tuple[float, float]:
    tol, n = _INVERSE_TOL_DEG, _INVERSE_MAX_ITER
    if way == _WGS_GCJ:
        return _gcj_from_wgs(x, y)
    if way == _GCJ_WGS:
        return _solve(False, x, y, tol, n)
    if way == _GCJ_BD:
        return _bd_from_gcj(x, y)
    if way == _BD_GCJ:
        return _solve(True, x, y, tol, n)
    if way == _WGS_BD:
        gx, gy = _gcj_from_wgs(x, y)
        return _bd_from_gcj(gx, gy)
    gx, gy = _solve(True, x, y, tol, n)
    return _solve(False, gx, gy, tol, n)


# Twice: in parallel for many points (releasing the GIL meanwhile), one by one for a few, where starting
# numba's threads would cost more than the arithmetic; the same bits either way.
@njit(cache=True, parallel=True, nogil=True)
def _convert_many(way: int, x: Array, y: Array) -> tuple[Array, Array]:
    out_x, out_y = np.empty(x.size), np.empty(x.size)
    for i in prange(x.size):
        out_x[i], out_y[i] = _convert(way, x[i], y[i])
    return out_x, out_y


@njit(cache=True, nogil=True)
def _convert_few(way: int, x: Array, y: Array) -> tuple[Array, Array]:
    out_x, out_y = np.empty(x.size), np.empty(x.size)
    for i in range(x.size):
        out_x[i], out_y[i] = _convert(way, x[i], y[i])
    return out_x, out_y


@njit(cache=True)
def _convert_one(way: int, x: float, y: float) -> tuple[float, float]:
    return _convert(way, x, y)


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _vectorised(way: int, lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert arrays of any (broadcastable) shape one ``way``."""
    x, y = _arrays(lon, lat)
    shape = np.broadcast_shapes(x.shape, y.shape)
    x, y = np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()
    kernel = _convert_many if x.size >= _PARALLEL_FROM else _convert_few
    out_x, out_y = kernel(way, np.ascontiguousarray(x), np.ascontiguousarray(y))
    return out_x.reshape(shape), out_y.reshape(shape)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS-84 to GCJ-02 (identity outside China)."""
    return _vectorised(_WGS_GCJ, lon, lat)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 to WGS-84 exactly (iterated to < 1e-12°, not the 1-2 m one-step inverse)."""
    return _vectorised(_GCJ_WGS, lon, lat)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 to BD-09 (Baidu's offset, applied everywhere as Baidu does)."""
    return _vectorised(_GCJ_BD, lon, lat)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 to GCJ-02 exactly (the usual closed form is only approximate; this iterates)."""
    return _vectorised(_BD_GCJ, lon, lat)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS-84 to BD-09."""
    return _vectorised(_WGS_BD, lon, lat)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 to WGS-84 exactly."""
    return _vectorised(_BD_WGS, lon, lat)


_TO_WGS84 = {GCJ02: _GCJ_WGS, BD09: _BD_WGS}
_FROM_WGS84 = {GCJ02: _WGS_GCJ, BD09: _WGS_BD}


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
        x, y = _vectorised(_TO_WGS84[src], x, y)
        src = WGS84
    if dst in _FROM_WGS84:
        if src != WGS84:
            x, y = _transformer(src, WGS84).transform(x, y)
        return _vectorised(_FROM_WGS84[dst], x, y)
    if src == dst:
        return x, y
    # WGS-84 <-> CGCS2000 is a null transformation in pyproj (they agree to a few cm); that is deliberate.
    out = _transformer(src, dst).transform(x, y)
    return np.asarray(out[0], dtype=float), np.asarray(out[1], dtype=float)


def transform_point(x: float, y: float, src: Any, dst: Any = WGS84) -> tuple[float, float]:
    """One point through :func:`transform`; GCJ-02 or BD-09 to WGS-84 without the array overhead."""
    src, dst = normalize_crs(src), normalize_crs(dst)
    if dst == WGS84 and src in _TO_WGS84:  # what WeChat, Amap, Tencent and Baidu maps send
        lon, lat = _convert_one(_TO_WGS84[src], float(x), float(y))
        return float(lon), float(lat)
    out_x, out_y = transform([x], [y], src, dst)
    return float(out_x[0]), float(out_y[0])


def earth_point(x: float, y: float, crs: Any) -> tuple[float, float] | None:
    """(x, y) of ``crs`` as WGS-84 lon/lat, or None when it is no point of the earth: a projection clamps
    what lies beyond its range (1e300 m east lands on the antimeridian), so the way back must come home.

    >>> earth_point(1e300, 1e300, "EPSG:3857") is None
    True
    >>> [round(v, 4) for v in earth_point(12380000.0, 4846000.0, "EPSG:3857")]
    [111.2114, 39.8626]
    """
    lon, lat = transform_point(x, y, crs, WGS84)
    if not (math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90):
        return None
    back = transform_point(lon, lat, WGS84, crs)
    if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-3) for a, b in zip(back, (x, y), strict=True)):
        return None
    return lon, lat


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
