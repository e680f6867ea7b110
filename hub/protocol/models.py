"""The base of every wire shape the hub sends: REST answers, socket acks and pushed events.

Answers and events are built as plain dicts on the hot path (a pydantic model per delivered
event would cost CPU on every message), so each shape has a model here that documents it,
feeds the OpenAPI document, and is checked against what the hub really sends in the tests.
``pushed`` registers the model of one pushed socket event under its name: the test clients
validate every event they receive against ``PUSHED_EVENTS`` and fail on an event that has
no model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


class View(BaseModel):
    """A shape the hub sends: unknown keys are a test failure, not silently accepted."""

    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The JSON object as sent: wire names (``from``), and an optional key that was not
        given when the view was built left out (absent, not ``null``: e.g. ``email`` in a
        profile of someone else)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


Shape = TypeVar("Shape", bound=type[View])

# Event name -> the model of its payload, filled by ``pushed`` as the views modules load.
PUSHED_EVENTS: dict[str, type[View]] = {}


def pushed(*names: str) -> Callable[[Shape], Shape]:
    """Declare ``names`` as socket events whose payload is the decorated model."""

    def register(model: Shape) -> Shape:
        for name in names:
            if name in PUSHED_EVENTS and PUSHED_EVENTS[name] is not model:
                raise ValueError(f"pushed event {name!r} has two models")
            PUSHED_EVENTS[name] = model
        return model

    return register
