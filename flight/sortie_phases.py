"""The phases of one sortie and every way from one to the next, in one table.

`flight/sortie.py` observes the vehicle once a second (or per event), condenses what it sees into
`Facts` and asks `next_transition(phase, facts)` what to do; the table alone decides. Nothing here
touches a vehicle, so each transition is tested on its own (tests/flight/test_sortie_phases.py).

    CLIMB ──at altitude──▶ SURVEY ──last item / failsafe──▶ VEHICLE_RTL ──disarmed──▶ LANDED
      └──retasked──▶ OVERWATCH ──AUTO again──▶ SURVEY      ▲
                          any airborne phase ──return would cross a no-fly zone──▶ ROUTED_RETURN

>>> f = Facts(in_auto=True)
>>> next_transition(Phase.OVERWATCH, f).target
<Phase.SURVEY: 'survey'>
>>> next_transition(Phase.SURVEY, f) is None
True
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    CLIMB = "climb"  # armed, taking off in GUIDED
    OVERWATCH = "overwatch"  # retasked mid-climb: the sortie waits until the overwatch hands back (AUTO)
    SURVEY = "survey"  # AUTO, flying the mission's items
    ROUTED_RETURN = "routed return"  # our return home round the no-fly zones (GUIDED legs, then RTL)
    VEHICLE_RTL = "vehicle rtl"  # the vehicle flies home or down by itself (RTL / LAND / failsafe)
    LANDED = "landed"  # disarmed on the ground with the link up: the sortie is over


AIRBORNE = frozenset({Phase.OVERWATCH, Phase.SURVEY, Phase.ROUTED_RETURN, Phase.VEHICLE_RTL})


@dataclass(frozen=True, slots=True)
class Facts:
    """What the sortie sees now, as yes/no answers (sortie.py works them out from the vehicle)."""

    retasked: bool = False  # an overwatch has taken the drone over
    in_auto: bool = False  # the vehicle is in AUTO
    failsafe_pending: bool = False  # a failsafe was reported and its return is not decided yet
    vehicle_returning: bool = False  # the vehicle is in a mode of its own (not AUTO, not GUIDED)
    routing: bool = False  # our routed return is still flying
    routed_before: bool = False  # we have started a routed return in this sortie
    routed_gave_way: bool = False  # our last routed return gave way (to a failsafe) without ending in RTL
    failsafe_return_crosses: bool = False  # the vehicle's own RTL would cross a no-fly zone it cannot plan round
    on_mission_return_crossing: bool = False  # AUTO at the mission's closing RTL item, whose line crosses a zone
    last_item_reached: bool = False  # a mission not ending home has reached its last item; no RTL sent yet
    return_crosses: bool = False  # the straight line home from here crosses a no-fly zone
    landed: bool = False  # link up, disarmed
    timed_out: bool = False  # longer than the sortie's timeout


@dataclass(frozen=True, slots=True)
class Transition:
    source: frozenset[Phase]
    when: str  # what has to be true, in words (for logs and tests)
    test: Callable[[Facts], bool]
    target: Phase
    action: str  # what sortie.py does on the way (a method of its sortie run), "" for nothing


def _failsafe_return_shows(f: Facts) -> bool:
    return f.failsafe_pending and not f.routing and f.vehicle_returning


def _t(source, when, test, target, action=""):
    return Transition(frozenset(source), when, test, target, action)


_ANY = AIRBORNE
# First match wins, and sortie.py fires transitions until none matches, so order only matters
# where two can be true at once (a failsafe is decided before the end of the mission is).
TRANSITIONS: tuple[Transition, ...] = (
    _t({Phase.CLIMB}, "an overwatch took the drone over while it climbed", lambda f: f.retasked,
       Phase.OVERWATCH, "wait_for_overwatch"),
    _t({Phase.CLIMB}, "at the takeoff altitude", lambda f: not f.retasked, Phase.SURVEY, "start_mission"),
    _t(_ANY, "a failsafe's return shows and would cross a no-fly zone (and no routed return of ours stands)",
       lambda f: _failsafe_return_shows(f) and (not f.routed_before or f.routed_gave_way)
       and f.failsafe_return_crosses, Phase.ROUTED_RETURN, "route_failsafe_return"),
    _t(_ANY, "a failsafe's return shows", _failsafe_return_shows, Phase.VEHICLE_RTL, "accept_failsafe_return"),
    _t(_ANY, "AUTO at the mission's closing RTL, whose straight line crosses a no-fly zone",
       lambda f: not f.routed_before and f.on_mission_return_crossing, Phase.ROUTED_RETURN,
       "route_mission_return"),
    _t(_ANY, "last item reached, the way home crosses a no-fly zone",
       lambda f: f.last_item_reached and f.return_crosses, Phase.ROUTED_RETURN, "route_home"),
    _t(_ANY, "last item reached", lambda f: f.last_item_reached, Phase.VEHICLE_RTL, "command_rtl"),
    _t({Phase.OVERWATCH}, "the overwatch handed back (AUTO)", lambda f: f.in_auto and not f.retasked,
       Phase.SURVEY),
    _t({Phase.ROUTED_RETURN}, "our routed return ended (in the vehicle's RTL, or it gave up)",
       lambda f: not f.routing and not f.failsafe_pending, Phase.VEHICLE_RTL),
    _t(_ANY, "disarmed on the ground", lambda f: f.landed, Phase.LANDED),
    _t(_ANY, "the sortie took longer than its timeout", lambda f: f.timed_out, Phase.LANDED, "give_up"),
)


def next_transition(phase: Phase, facts: Facts) -> Transition | None:
    """The transition to take from `phase` given `facts`, or None to stay."""
    for t in TRANSITIONS:
        if phase in t.source and t.test(facts):
            return t
    return None
