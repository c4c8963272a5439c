"""Request dependencies: the service state, typed for handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.state import ServiceState


async def get_state(request: Request) -> ServiceState:  # async: no I/O, so no hop to the threadpool
    """The service state the app was created with."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]
MAX_INT = 2**31 - 1  # the largest id or number the databases store: bounds every integer parameter
