"""API keys, for admins: create one (the key is shown once), list them, revoke one; and who a key is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from api.auth import Admin, KeyHolder
from api.dependencies import MAX_INT, StateDep
from geogrid.access import Role

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyIn(BaseModel):
    """A key to create."""

    name: str = Field(min_length=1, max_length=100, description="Who or what uses the key.")
    role: Role
    scope: str | None = Field(
        None,
        max_length=32,
        description="A street or community code to limit it to (a worker's key also a grid).",
    )


@router.post("", status_code=201, summary="Create an API key")
def create(state: StateDep, principal: Admin, body: KeyIn) -> dict[str, Any]:
    """A new key with a role, optionally limited to a street or community; the key is in this answer only."""
    info, key = state.keys.create(body.name, body.role, scope=body.scope, actor=principal.name)
    return {**info.__dict__, "key": key}


@router.get("", summary="API keys")
def list_keys(state: StateDep, principal: Admin) -> list[dict[str, Any]]:
    """Every key (never the key itself), revoked ones included."""
    return [info.__dict__ for info in state.keys.list()]


@router.get("/me", summary="The caller's key: its name, role and scope")
def me(principal: KeyHolder) -> dict[str, Any]:
    """Who the key sent is (the dashboard shows a scoped commander their street or community)."""
    return {"name": principal.name, "role": principal.role.value, "scope": principal.scope}


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key")
def revoke(state: StateDep, principal: Admin, key_id: int = Path(ge=1, le=MAX_INT)) -> Response:
    """Revoke a key: it stops working at once here (other processes: within 30 s)."""
    state.keys.revoke(key_id, actor=principal.name)
    state.forget_keys()
    return Response(status_code=204)
