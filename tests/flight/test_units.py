"""The parts of flight/ that need no vehicle: URLs, parameter renames, mission comparison, the
energy model, standoff geometry, configuration, plan directories."""
from __future__ import annotations

import doctest
import importlib
import math

import pytest
from pydantic import ValidationError

from common.values import MissionItem, MissionType
from flight.cli import _InputError, drone_plan_dirs
from flight.config import EnergyConfig, FlightConfig
from flight.errors import LinkError, UrlError
from flight.fleet import fleet_urls
from flight.link import load_signing_key, parse_url
from flight.mission import first_mismatch
from flight.params import RENAMES, vehicle_name_and_factor
from flight.retask import standoff_point
from flight.safety import energy_needed_pct


@pytest.mark.parametrize("module", ["flight.link", "flight.mission", "flight.params", "flight.safety",
                                    "flight.retask", "flight.fleet"])
def test_docstring_examples_hold(module):
    """Every example in the module docstrings runs and gives what it shows."""
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("url, kind, where", [
    ("tcp:127.0.0.1:5760", "tcp", "tcp:127.0.0.1:5760"),
    ("udpin:0.0.0.0:14550", "udpin", "udpin:0.0.0.0:14550"),
    ("udp::14550", "udpin", "udpin:0.0.0.0:14550"),
    ("udpout:10.0.0.2:14550", "udpout", "udpout:10.0.0.2:14550"),
    ("/dev/ttyUSB0,57600", "serial", "/dev/ttyUSB0,57600"),
    ("serial:/dev/ttyACM0:115200", "serial", "/dev/ttyACM0,115200"),
])
def test_connection_urls_parse(url, kind, where):
    """Each transport an operator types is understood."""
    a = parse_url(url)
    assert a.kind == kind and str(a) == where


@pytest.mark.parametrize("url, says", [
    ("", "empty"), ("bogus:1:2", "unknown transport 'bogus'"), ("tcp:127.0.0.1", "tcp:HOST:PORT"),
    ("tcp:host:99999", "port 1-65535"), ("/dev/ttyUSB0,fast", "baud rate 'fast'"), ("localhost", "expected"),
])
def test_bad_connection_urls_say_what_is_wrong(url, says):
    with pytest.raises(UrlError, match=says):
        parse_url(url)


def test_fleet_ports_follow_the_sitl_spacing():
    """Vehicle i is on base + 10 i; a serial base cannot be offset."""
    assert [a.port for a in fleet_urls("tcp:127.0.0.1:5760", 4)] == [5760, 5770, 5780, 5790]
    with pytest.raises(UrlError):
        fleet_urls("/dev/ttyUSB0,57600", 2)


@pytest.mark.parametrize("rename", RENAMES, ids=lambda r: r.new)
def test_every_renamed_parameter_round_trips(rename):
    """Asked by either name on either generation, a value converts there and back unchanged."""
    for style in ("4.5", "4.7"):
        for name in (rename.new, rename.old):
            vname, factor = vehicle_name_and_factor(name, style)
            assert vname == (rename.old if style == "4.5" else rename.new)
            assert math.isclose(12.5 * factor / factor, 12.5)
    assert vehicle_name_and_factor(rename.new, "4.5")[1] == rename.old_per_new


def test_mission_compare_tolerates_what_the_vehicle_rewrites():
    """Home, INT frames, DO_* frames and fence autocontinue are rewritten by ArduCopter: not mismatches."""
    sent = [MissionItem(16, 32.0, 119.58, 0.0, frame=0), MissionItem(16, 32.001, 119.581, 30.0, frame=6),
            MissionItem(178, param1=1, param2=6, param3=-1), MissionItem(20)]
    got = [MissionItem(16, 32.0001, 119.5801, 10.1, frame=0), MissionItem(16, 32.001, 119.581, 30.0, frame=3),
           MissionItem(178, param1=1, param2=6, param3=-1, frame=0), MissionItem(20, frame=0)]
    assert first_mismatch(sent, got) is None
    fence = [MissionItem(5001, 32.0, 119.58, frame=0, param1=3)]
    assert first_mismatch(fence, [MissionItem(5001, 32.0, 119.58, frame=0, param1=3, autocontinue=0)],
                          MissionType.FENCE) is None


@pytest.mark.parametrize("change, field", [
    (dict(lat=32.0011), "lat"), (dict(alt_m=31.0), "alt_m"), (dict(command=19), "command"),
    (dict(param1=5.0), "param1"), (dict(frame=10), "frame"), (dict(autocontinue=0), "autocontinue"),
])
def test_mission_compare_names_the_first_difference(change, field):
    base = dict(command=16, lat=32.001, lon=119.581, alt_m=30.0, frame=3)
    sent = [MissionItem(16, frame=0), MissionItem(**base), MissionItem(**base)]
    got = [sent[0], sent[1], MissionItem(**{**base, **change})]
    why = first_mismatch(sent, got)
    assert why is not None and why.startswith(f"item 2 ") and f"{field} sent" in why


def test_mission_compare_counts_and_nan():
    assert "holds 1 items, 2 were sent" in first_mismatch([MissionItem(16)] * 2, [MissionItem(16)])
    nan = MissionItem(16, 32.0, 119.0, 20.0, param4=float("nan"))  # QGC's "unchanged yaw"
    kept = MissionItem(16, 32.0, 119.0, 20.0, param4=0.0)  # ArduCopter keeps it as 0 on a waypoint
    assert first_mismatch([nan, nan], [nan, kept]) is None


def test_energy_needed_grows_with_distance_altitude_and_drain():
    """Further, higher or hungrier always needs more; at the dock on the ground only the reserve."""
    cfg = EnergyConfig()
    assert energy_needed_pct(0, 0, 0.1, cfg, 15) == pytest.approx(15)
    a = energy_needed_pct(500, 30, 0.1, cfg, 15)
    assert energy_needed_pct(1000, 30, 0.1, cfg, 15) > a
    assert energy_needed_pct(500, 60, 0.1, cfg, 15) > a
    assert energy_needed_pct(500, 30, 0.2, cfg, 15) > a


def test_standoff_point_is_on_the_drone_side():
    from common.geo import distance_m
    lat, lon = standoff_point(32.001, 119.58, 32.0, 119.58, 40.0)
    assert distance_m(lat, lon, 32.0, 119.58) == pytest.approx(40, abs=0.1)
    assert lat > 32.0
    assert standoff_point(32.0, 119.58, 32.0, 119.58, 40.0) != (32.0, 119.58)  # directly overhead: still off


def test_config_rejects_unknown_keys_by_name():
    with pytest.raises(ValidationError, match="hearbeat_timeout_s"):
        FlightConfig(link={"hearbeat_timeout_s": 3})
    with pytest.raises(ValidationError, match="gcs_heartbeat_hz is too slow"):
        FlightConfig(link={"gcs_heartbeat_hz": 0.1})
    fast = FlightConfig.for_speedup(10)
    assert fast.link.gcs_heartbeat_hz == 10 and fast.link.heartbeat_timeout_s == 1.0


def test_signing_keys_in_three_spellings(tmp_path):
    raw = bytes(range(32))
    (tmp_path / "raw").write_bytes(raw)
    (tmp_path / "hex").write_text(raw.hex() + "\n")
    (tmp_path / "pass").write_text("danyang patrol\n")
    assert load_signing_key(tmp_path / "raw") == raw
    assert load_signing_key(tmp_path / "hex") == raw
    assert len(load_signing_key(tmp_path / "pass")) == 32
    with pytest.raises(LinkError, match="missing"):
        load_signing_key(tmp_path / "missing")


def test_plan_directories_sorted_drones_and_sorties(tmp_path):
    for drone, files in {"drone-02": ["b.plan", "a.plan"], "drone-01": ["s1.plan"], "notes": ["x.txt"]}.items():
        (tmp_path / drone).mkdir()
        for f in files:
            (tmp_path / drone / f).write_text("{}")
    got = drone_plan_dirs(tmp_path)
    assert [(d, [p.name for p in ps]) for d, ps in got] == [("drone-01", ["s1.plan"]), ("drone-02", ["a.plan", "b.plan"])]
    with pytest.raises(_InputError, match="no drone directories"):
        drone_plan_dirs(tmp_path / "notes")


def _square(centre: tuple[float, float], half_m: float) -> tuple[tuple[float, float], ...]:
    from common.geo import offset
    return tuple(offset(*centre, n, e) for n, e in [(-half_m, -half_m), (half_m, -half_m), (half_m, half_m),
                                                    (-half_m, half_m)])


def test_no_fly_route_home_goes_round_zones_and_stays_inside_the_fence():
    """From beyond a no-fly zone the way home bends round it (never within half the margin) and
    stays inside the inclusion fence; a clear line is just home; a zone across the whole fence
    is a FlightError naming the points."""
    from shapely.geometry import LineString, Polygon

    from common.geo import LocalFrame, offset
    from common.values import FenceZone
    from flight.avoidance import NoFlyZones
    from flight.errors import FlightError

    home = (32.0, 119.58)
    zone = FenceZone(False, _square(offset(*home, 80, 0), 20))
    circle = FenceZone(False, (offset(*home, 80, -80),), radius_m=25)
    fence = FenceZone(True, _square(home, 300))
    nf = NoFlyZones.from_fence((fence, zone, circle), margin_m=10)
    far = offset(*home, 160, 0)
    assert nf.crosses(far, home) and not nf.crosses(offset(*home, 0, 100), home)
    route = nf.route(far, home)
    assert len(route) >= 2 and route[-1] == home
    f = LocalFrame(*home)
    line = LineString([f.to_en(*p) for p in (far, *route)])
    square = Polygon([f.to_en(*p) for p in zone.vertices])
    assert line.distance(square) >= 5.0 - 1e-6
    assert line.distance(LineString([f.to_en(*circle.vertices[0])] * 2).buffer(25)) >= 5.0 - 1e-6
    assert Polygon([f.to_en(*p) for p in fence.vertices]).contains(line)
    assert nf.route(offset(*home, 0, 100), home) == (home,)
    wall = FenceZone(False, (offset(*home, 60, -400), offset(*home, 100, -400), offset(*home, 100, 400),
                             offset(*home, 60, 400)))
    with pytest.raises(FlightError, match="no way from"):
        NoFlyZones.from_fence((fence, wall), margin_m=10).route(far, home)


def test_avoidance_config_rejects_unknown_keys_and_bad_margins():
    """`avoidance:` is typed like every section: a misspelt key or a zero margin is named."""
    with pytest.raises(ValidationError, match="margn_m"):
        FlightConfig.model_validate({"avoidance": {"margn_m": 5}})
    with pytest.raises(ValidationError, match="margin_m"):
        FlightConfig.model_validate({"avoidance": {"margin_m": 0}})


def test_no_fly_route_from_inside_a_margin_steps_out_first():
    """A drone already closer to a zone than the margin (blown there, or it strayed) still gets a
    way home: first out to the outline without entering the zone, then round it."""
    from shapely.geometry import LineString, Polygon

    from common.geo import LocalFrame, offset
    from common.values import FenceZone
    from flight.avoidance import NoFlyZones

    home = (32.0, 119.58)
    zone = FenceZone(False, _square(offset(*home, 80, 0), 20))
    nf = NoFlyZones.from_fence((zone,), margin_m=10)
    start = offset(*home, 102, 0)  # 2 m north of the zone's far edge
    route = nf.route(start, home)
    f = LocalFrame(*home)
    line = LineString([f.to_en(*p) for p in (start, *route)])
    assert route[-1] == home and len(route) >= 3
    assert not line.intersects(Polygon([f.to_en(*p) for p in zone.vertices]))


def test_return_legs_head_where_rtl_goes_and_never_let_rtl_turn_across_a_zone():
    """With rally points RTL flies to the nearest of home and them. A rally point across a long
    zone from the drone (nearer than home) is where RTL goes: the return is routed round the zone
    to it, though the line home is clear. A return whose last turn leaves a rally point across
    the zone nearer than its destination is flown to the destination itself."""
    from shapely.geometry import LineString, Polygon

    from common.geo import LocalFrame, offset
    from common.values import FenceZone
    from flight.avoidance import FenceAvoidance, NoFlyZones

    home = (32.0, 119.58)
    f = LocalFrame(*home)
    strip = FenceZone(False, tuple(offset(*home, n, e) for n, e in [(-50, 20), (150, 20), (150, 35), (-50, 35)]))
    nf = NoFlyZones.from_fence((FenceZone(True, _square(home, 400)), strip), margin_m=10)
    rally = offset(*home, 100, 60)
    fa = FenceAvoidance(nf, False, "", (rally,))
    here = offset(*home, 100, 5)
    assert not nf.crosses(here, home) and fa.rtl_destination(here, home) == rally
    assert fa.return_crosses(here, home)
    legs = fa.return_legs(here, home)
    line = LineString([f.to_en(*p) for p in (here, *legs, rally)])
    assert line.distance(Polygon([f.to_en(*p) for p in strip.vertices])) >= 5.0 - 1e-6
    assert fa.rtl_destination(legs[-1], home) == rally

    # East of the strip home is nearest, but RTL from the turn round the strip's south end would
    # head for a rally point east of the strip, back past its corner: fly to home itself first.
    east_rally = offset(*home, -40, 60)
    fa = FenceAvoidance(nf, False, "", (east_rally,))
    start = offset(*home, 20, 45)
    assert fa.rtl_destination(start, home) == home
    turn = nf.route(start, home)[-2]
    assert fa.rtl_destination(turn, home) == east_rally and nf.crosses(turn, east_rally)
    legs = fa.return_legs(start, home)
    assert legs[-1] == home
    path = LineString([f.to_en(*p) for p in (start, *legs)])
    assert path.distance(Polygon([f.to_en(*p) for p in strip.vertices])) >= 5.0 - 1e-6
