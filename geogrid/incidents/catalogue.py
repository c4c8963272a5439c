"""Which service handles this kind of incident, who gets it first, and by when? The service catalogue.

Each category is an **event** (事件: rubbish, street vending, a dispute) or a **component** (部件: a
manhole cover, a street lamp) with a time limit in working hours or days and, for components, the
department that owns them. Events go to the area first and then up to its owners (事件先属地后属主);
components go to their owner first and then to the area (部件先属主后属地). Escalation climbs one level
at a time: grid → community → street → county. The shipped catalogue (``catalogue.csv``) is modelled on the
classes of the urban-management classification (CJ/T 214: 市容环境, 宣传广告, 施工管理, 突发事件, 街面秩序;
公用设施, 道路交通, 园林绿化) plus grid-governance cases (矛盾纠纷, 安全隐患, 民生诉求); its codes and limits
are GeoGrid's defaults, to be replaced by a county's own file (``GEOGRID_CATALOGUE``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from geogrid.errors import InvalidIncident, InvalidValue

SHIPPED = Path(__file__).with_name("catalogue.csv")
KINDS = ("event", "component")
UNITS = ("hours", "days")
AREA = ("grid", "community", "street", "county")  # the levels an event climbs, first to last
COLUMNS = ("code", "name", "kind", "group", "limit", "unit", "owner")


@dataclass(frozen=True)
class Service:
    """One category of the catalogue: an event or a component, its limit and, for components, its owner."""

    code: str
    name: str
    kind: str
    group: str
    limit: float
    unit: str
    owner: str | None = None

    def route(self) -> tuple[str, ...]:
        """The levels it goes to, first to last: the area then the owner, or the owner then the area."""
        owner = (f"department:{self.owner}",) if self.owner else ()
        if self.kind == "component":
            return (*owner, *AREA) if owner else AREA
        return (*AREA, *owner)


class Catalogue:
    """The categories an incident may have, by code and by name."""

    def __init__(self, services: Iterable[Service]) -> None:
        self.services: dict[str, Service] = {}
        self._by_name: dict[str, Service] = {}
        for service in services:
            if service.code in self.services:
                raise InvalidValue(f"category code {service.code!r} is given twice", field="code")
            self.services[service.code] = service
            self._by_name.setdefault(service.name, service)

    @classmethod
    def load(cls, path: str | Path) -> Catalogue:
        """A catalogue from a CSV file with the columns of :data:`COLUMNS` (UTF-8); errors name row and field."""
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return cls(_service(row, n) for n, row in enumerate(rows, start=2))

    def get(self, category: str) -> Service:
        """The service of a category given by code or by name; InvalidIncident naming a few codes if none."""
        found = self.services.get(category.strip()) or self._by_name.get(category.strip())
        if found is None:
            some = ", ".join(list(self.services)[:5])
            raise InvalidIncident(
                f"no category {category[:40]!r} in the catalogue (codes such as {some}; GET /v1/services)",
                field="category",
            )
        return found

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services.values())

    def __len__(self) -> int:
        return len(self.services)


def _service(row: Mapping[str, str | None], line: int) -> Service:
    """One CSV row as a Service; InvalidValue naming the line and the field at fault."""
    get = {k: (row.get(k) or "").strip() for k in COLUMNS}
    for column in ("code", "name", "kind", "limit", "unit"):
        if not get[column]:
            raise InvalidValue(f"line {line}: {column} is empty", row=line, field=column)
    if get["kind"] not in KINDS:
        raise InvalidValue(
            f"line {line}: kind {get['kind']!r} is not event or component", row=line, field="kind"
        )
    if get["unit"] not in UNITS:
        raise InvalidValue(f"line {line}: unit {get['unit']!r} is not hours or days", row=line, field="unit")
    try:
        limit = float(get["limit"])
    except ValueError:
        limit = -1.0
    if not 0 < limit < 10_000:
        raise InvalidValue(
            f"line {line}: limit {get['limit']!r} is not a positive number", row=line, field="limit"
        )
    if get["kind"] == "component" and not get["owner"]:
        raise InvalidValue(f"line {line}: a component needs its owner department", row=line, field="owner")
    return Service(
        get["code"], get["name"], get["kind"], get["group"], limit, get["unit"], get["owner"] or None
    )


@lru_cache(maxsize=8)
def catalogue(path: str | None = None) -> Catalogue:
    """The catalogue at ``path`` (the shipped one when None), read once."""
    return Catalogue.load(path or SHIPPED)
