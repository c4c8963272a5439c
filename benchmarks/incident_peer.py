"""The peer GeoGrid's incident intake is measured against: plain FastAPI + SQLAlchemy ORM, one insert per request.

``POST /incidents`` takes the same JSON body as ``POST /v1/incidents``, validates it with pydantic, adds one
ORM object in a session and commits before answering 201 with its id — what a team writes first. It does
no placing, no idempotency, no log and no deadline: the floor of a committed insert per request on this stack.

    GEOGRID_BENCH_URL=postgresql+psycopg://... uvicorn benchmarks.incident_peer:app
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class PeerIncident(Base):
    __tablename__ = "peer_incident"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    crs: Mapped[str | None] = mapped_column(String(20))
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)


class Coordinates(BaseModel):
    x: float
    y: float
    crs: str = "wgs84"


class IncidentIn(BaseModel):
    category: str = Field(max_length=40)
    description: str = Field(max_length=4000)
    coordinates: Coordinates | None = None
    reported_at: dt.datetime | None = None


engine = create_engine(os.environ.get("GEOGRID_BENCH_URL", "sqlite://"), pool_size=20)
Base.metadata.create_all(engine)
app = FastAPI()


@app.post("/incidents", status_code=201)
def report(body: IncidentIn) -> dict[str, int]:
    """Insert one row and commit before answering."""
    with Session(engine) as session:
        row = PeerIncident(
            category=body.category,
            description=body.description,
            x=body.coordinates.x if body.coordinates else None,
            y=body.coordinates.y if body.coordinates else None,
            crs=body.coordinates.crs if body.coordinates else None,
            reported_at=body.reported_at or dt.datetime.now(dt.UTC),
            extra={},
        )
        session.add(row)
        session.commit()
        return {"id": row.id}
