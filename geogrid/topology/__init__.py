"""Topology of a layer: does it tile its parent (:func:`check`), and the least change that makes it so.

``check`` and its report live in :mod:`geogrid.topology.checks`, ``repair`` in
:mod:`geogrid.topology.repairs` (modules named apart from the functions, so that ``geogrid.topology.check``
is always the function); import them from here.
"""

from geogrid.topology.checks import (
    INFO_KINDS,
    KINDS,
    MIN_AREA_M2,
    TOLERANCE_M,
    CheckReport,
    check,
    enclosed,
    polygonal,
)
from geogrid.topology.repairs import RepairResult, repair

__all__ = [
    "INFO_KINDS",
    "KINDS",
    "MIN_AREA_M2",
    "TOLERANCE_M",
    "CheckReport",
    "RepairResult",
    "check",
    "enclosed",
    "polygonal",
    "repair",
]
