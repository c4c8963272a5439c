"""The coverage report and the coverage maps of a set (owner: the coverage and maps helpers)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/sets/{set_name}", tags=["coverage"])
