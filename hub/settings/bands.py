"""The bands section: how long band invitations and invite links live, and how many a band
or an inviter may hand out (kept beside ``sections.py``, which is full)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.settings.variables import setting


@dataclass(frozen=True, slots=True)
class BandSettings:
    invitation_seconds: int = setting(
        "BAND_INVITATION_SECONDS",
        604_800,
        "a band invitation not accepted within this expires; also the default and the longest "
        "lifetime of an invite link",
        minimum=1,
    )
    invitations_per_day: int = setting(
        "INVITATIONS_PER_DAY",
        50,
        "band invitations and invite links one band, and one inviter, may create in 24 hours",
        minimum=1,
    )
