"""Geocoding: address text to building and micro-grid, coordinates to the nearest address, and the queue."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["addresses"])
