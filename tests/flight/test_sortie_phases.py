"""Every transition of the sortie's phase table (flight/sortie_phases.py), one procedure each:
given what the sortie sees, the drone moves to the phase a pilot would expect, or holds its phase.
The whole sorties these transitions make up are flown in test_no_fly_returns.py / test_procedures.py."""
import pytest

from flight.sortie_phases import AIRBORNE, TRANSITIONS, Facts, Phase, next_transition

C, O, S, R, V, L = (Phase.CLIMB, Phase.OVERWATCH, Phase.SURVEY, Phase.ROUTED_RETURN, Phase.VEHICLE_RTL,
                    Phase.LANDED)
taken: set[str] = set()


def wait_transition(phase: Phase, target: Phase, action: str = "", **seen) -> None:
    """From `phase`, seeing `seen`, the sortie moves to `target` doing `action`."""
    t = next_transition(phase, Facts(**seen))
    assert t is not None, f"{phase} held, expected {target} on {seen}"
    assert (t.target, t.action) == (target, action), f"{phase} on {seen}: took '{t.when}'"
    taken.add(t.when)


def hold_phase(phase: Phase, **seen) -> None:
    """From `phase`, seeing `seen`, the sortie stays where it is."""
    t = next_transition(phase, Facts(**seen))
    assert t is None, f"{phase} on {seen}: took '{t.when}', expected to hold"


def test_climb_ends_in_survey_or_in_overwatch_when_retasked():
    wait_transition(C, S, "start_mission")
    wait_transition(C, O, "wait_for_overwatch", retasked=True)


def test_overwatch_holds_until_the_overwatch_hands_back_in_auto():
    hold_phase(O, retasked=True)
    hold_phase(O, retasked=True, in_auto=True)
    wait_transition(O, S, in_auto=True)


def test_survey_holds_while_auto_flies_the_items():
    hold_phase(S, in_auto=True)
    hold_phase(S, in_auto=True, return_crosses=True)  # far out: the way home only matters once going home
    hold_phase(S, failsafe_pending=True)  # a failsafe's own mode has not shown yet (still AUTO)


@pytest.mark.parametrize("phase", sorted(AIRBORNE, key=lambda p: p.value))
def test_a_failsafe_return_through_a_no_fly_zone_is_routed_round_it(phase):
    wait_transition(phase, R, "route_failsafe_return", failsafe_pending=True, vehicle_returning=True,
                    failsafe_return_crosses=True)


def test_a_failsafe_return_with_a_clear_line_home_is_left_to_the_vehicle():
    wait_transition(S, V, "accept_failsafe_return", failsafe_pending=True, vehicle_returning=True)


def test_a_failsafe_waits_for_our_routed_return_to_give_way_then_routes_again():
    seen = dict(failsafe_pending=True, vehicle_returning=True, failsafe_return_crosses=True, routed_before=True)
    hold_phase(R, routing=True, **seen)
    wait_transition(R, R, "route_failsafe_return", routed_gave_way=True, **seen)
    # our return ended in a plain RTL (no way round): the vehicle's RTL stands
    wait_transition(R, V, "accept_failsafe_return", **seen)


def test_the_missions_own_rtl_through_a_no_fly_zone_is_flown_round():
    wait_transition(S, R, "route_mission_return", in_auto=True, on_mission_return_crossing=True)
    hold_phase(R, routing=True, routed_before=True, in_auto=True, on_mission_return_crossing=True)


def test_after_the_last_item_the_drone_is_sent_home_straight_or_round_the_zones():
    wait_transition(S, V, "command_rtl", in_auto=True, last_item_reached=True)
    wait_transition(S, R, "route_home", in_auto=True, last_item_reached=True, return_crosses=True)


def test_our_routed_return_ends_in_the_vehicles_rtl():
    hold_phase(R, routing=True, routed_before=True)
    wait_transition(R, V, routed_before=True)


@pytest.mark.parametrize("phase", sorted(AIRBORNE, key=lambda p: p.value))
def test_disarmed_on_the_ground_is_landed_and_a_timeout_gives_up(phase):
    seen = dict(routing=True, retasked=phase is O)  # held in its phase apart from these
    wait_transition(phase, L, landed=True, **seen)
    wait_transition(phase, L, "give_up", timed_out=True, **seen)
    hold_phase(L, landed=True, timed_out=True)


def test_every_transition_of_the_table_is_taken_by_a_procedure_above():
    # runs them all here too: under pytest-xdist the procedures may run in another worker
    for name, test in list(globals().items()):
        if name.startswith("test_") and test is not test_every_transition_of_the_table_is_taken_by_a_procedure_above:
            params = [{}] if "phase" not in test.__code__.co_varnames else [{"phase": p} for p in AIRBORNE]
            for kw in params:
                test(**kw)
    assert taken == {t.when for t in TRANSITIONS}, {t.when for t in TRANSITIONS} - taken
