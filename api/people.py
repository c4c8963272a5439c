"""People and posts: list, read, create, end a post, import a roster (owner: the store helper)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/sets/{set_name}", tags=["people"])
