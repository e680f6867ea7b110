"""Typing's wire shapes: the relayed ``typing`` event and its ack (see ``views.py`` for why
each is a model and a TypedDict; ``views.WIRE_SHAPES`` pairs these too)."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from pydantic import ConfigDict, Field

from hub.protocol.models import View, pushed

TypingState = Literal["start", "stop"]


@pushed("typing")
class TypingView(View):
    """``typing``: to the other user (``to``) or the band's other members (``band``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    to: str | None = None
    band: str | None = None
    state: TypingState


TypingViewDict = TypedDict(
    "TypingViewDict",
    {"from": str, "to": NotRequired[str], "band": NotRequired[str], "state": TypingState},
)


def typing_to_user(sender_id: str, to: str, state: TypingState) -> TypingViewDict:
    return {"from": sender_id, "to": to, "state": state}


def typing_in_band(sender_id: str, band_id: str, state: TypingState) -> TypingViewDict:
    return {"from": sender_id, "band": band_id, "state": state}


class TypingAckView(View):
    """The ``typing`` ack (after ``ok``): ``relayed: false`` when it was throttled."""

    relayed: bool


class TypingAckViewDict(TypedDict):
    relayed: bool


def typing_ack(relayed: bool) -> TypingAckViewDict:
    return {"relayed": relayed}
