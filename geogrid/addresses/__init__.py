"""Where is this address? The standard-address registry, Chinese address text and the matcher.

The registry's files are read and checked in :mod:`geogrid.addresses.registry`, texts are normalised
and parsed in :mod:`geogrid.addresses.text`, matched in :mod:`geogrid.addresses.matcher` (its confidence
fitted by :mod:`geogrid.addresses.calibration`); :mod:`geogrid.addresses.variants` writes registry
addresses the way a hotline operator might, for tests and benchmarks. Import the everyday names from here.

>>> from geogrid.addresses import normalize, parse
>>> parse(normalize("内蒙古鄂尔多斯市准格尔旗迎泽路三十二号康和小区五栋二单元")).building
'5'
"""

from geogrid.addresses.matcher import Candidate, Match, Matcher
from geogrid.addresses.registry import (
    ADDRESS_COLUMNS,
    address_text,
    read_addresses,
    validate_addresses,
    write_addresses,
)
from geogrid.addresses.text import Parts, check_text, normalize, parse

__all__ = [
    "ADDRESS_COLUMNS",
    "Candidate",
    "Match",
    "Matcher",
    "Parts",
    "address_text",
    "check_text",
    "normalize",
    "parse",
    "read_addresses",
    "validate_addresses",
    "write_addresses",
]
