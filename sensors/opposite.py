"""Two people crossing the line in opposite directions inside one blob.

Why: a resident leaving while a visitor comes in pass each other at the
sill, and seen from the front (or from above, walking close) their blobs
merge there. The tracker keeps one of them on the merged blob (the one
whose blob it matches, say the visitor outside) and loses the other (the
resident, inside). The kept track's floor point is the merged blob's: it
comes to the line with the visitor's feet and goes away from it on the same
side with the resident's, so the kept track never crosses, and the lost
one has no blob left to cross with: both passages were lost.

Identities kept through the merge (tried in session 8) do not survive the
two pairs of feet meeting at the sill. This module decides from the
merge's geometry instead: a track ``member`` clearly on one side, walking
towards the line, is lost into the blob of a track ``host`` that is on the
other side; the host's floor point then comes into the line's band and
goes back out on its own side, ``origin_depth`` margins deep (someone
standing at the band's edge is not going back out). What went back out is
the member when it is nearer the member's place along the line than where
the host came from (people passing each other keep their lanes; someone
who came up to the door and turned back goes back in their own): the
member crossed over, and the host's person, who walked into the band and
is not the one walking away, crossed the other way. Both are dated halfway
through the host's time in the band, as any crossing is.

The other way round, the host's floor point going over to the member's
side while the note stands is the track moving onto the member (the merged
blob's bottom became the member's feet, or the track took the member's
part when the blob parted), not a walk: the track takes the member's line
state, and the note, reversed, now holds the host's own person.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Swap", "lanes_swapped", "other_side", "walked_towards"]


@dataclass(slots=True)
class Swap:
    """A track from the other side lost into a host track's blob near the line."""

    member: int
    # The member's side ("inside" or "outside"), the host's is the other.
    side: str
    # Where along the line (0..1 of its length) the member was last seen,
    # and where the host came from before the two merged.
    member_along: float
    approach_along: float
    recorded: int
    # The host's floor point in the band: its first frame there, and the
    # last frame and time it was clearly on its own side before.
    band: int | None = None
    left: tuple[int, float] | None = None
    # The first frame and time clearly back on its own side after the band.
    back: tuple[int, float] | None = None


def other_side(side: str) -> str:
    """The other side of the line."""
    return "outside" if side == "inside" else "inside"


def lanes_swapped(swap: Swap, along: float) -> bool:
    """Whether the floor point going back out at ``along`` is the member's
    (nearer where the member was than where the host came from)."""
    return abs(along - swap.member_along) < abs(along - swap.approach_along)


def walked_towards(history: list[tuple[int, float]], frame: int, window: int,
                   distance: float) -> bool:
    """Whether the signed distances to the line in ``history`` ((frame, d),
    oldest first) came at least ``distance`` nearer the line within the
    last ``window`` frames before ``frame``, never changing side."""
    recent = [d for f, d in history if frame - f <= window]
    if len(recent) < 2 or (recent[0] > 0) != (recent[-1] > 0):
        return False
    return abs(recent[0]) - abs(recent[-1]) >= distance
