"""Patrol shifts flown end to end (built-in simulator, real vision, dispatcher, Mosquitto): the
fleet keeps patrolling after the first sweep, and the operator ends the shift over MQTT."""
import asyncio
import json
import sqlite3

import aiomqtt
import pytest

from patrol import run_patrol
from runloop.scenario import FaultSpec, LinkCut, PassCriteria, load_scenario

pytestmark = [pytest.mark.mosquitto, pytest.mark.e2e]

CI_SPEEDUP = 20.0


def sorties_started(run_dir) -> list[tuple[str, str]]:
    """(drone, purpose) of each sortie started so far (read from the run's event store)."""
    db = run_dir / "events.sqlite"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute("select subject, data from events where kind = 'sortie_start'").fetchall()
    except sqlite3.Error:
        return []
    return [(s, json.loads(d).get("purpose")) for s, d in rows]


async def wait_all_flying(run_dir, drones: int, timeout_s: float = 240.0) -> None:
    for _ in range(int(timeout_s / 0.5)):
        if len({d for d, _ in sorties_started(run_dir)}) >= drones:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"not all {drones} drones took off")


async def send_operator_command(broker, **fields) -> dict:
    """Publish one command and return the controller's answer."""
    cmd = {"schema": "patrol.operator-command/1", "command_id": "test-1", **fields}
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-operator") as client:
        await client.subscribe("patrol/operator/results", qos=1)
        await client.publish("patrol/operator/commands", json.dumps(cmd), qos=1)
        async with asyncio.timeout(30):
            async for message in client.messages:
                answer = json.loads(message.payload)
                if answer.get("command_id") == "test-1":
                    return answer
    raise AssertionError("no answer")


def run_end(run_dir) -> str:
    with sqlite3.connect(run_dir / "events.sqlite") as con:
        return con.execute("select subject from events where kind = 'run_end'").fetchone()[0]


async def test_end_shift_brings_every_drone_home_and_writes_the_report(mosquitto_broker, tmp_path):
    """The shift scenario without its incident: with every drone in the air, the operator sends
    end_shift; the sorties in the air are finished (none started after), every drone lands, the
    run ends long before its duration and the report lists each cell's visits."""
    scenario = load_scenario("danyang-shift").model_copy(update={
        "speedup": CI_SPEEDUP, "incidents": [], "pass_": PassCriteria(all_incidents_detected=False,
                                                                      all_incidents_alerted=False)})
    run = asyncio.create_task(run_patrol(scenario, tmp_path, broker_url=mosquitto_broker.url, live=False))
    await wait_all_flying(tmp_path, scenario.fleet.drones)
    answer = await send_operator_command(mosquitto_broker, command="end_shift")
    assert answer["ok"], answer
    report = await asyncio.wait_for(run, 600)

    assert run_end(tmp_path) == "shift ended"
    assert report["run"]["ended_s"] < scenario.duration_s / 2
    assert len(sorties_started(tmp_path)) == scenario.fleet.drones  # no sortie after the command
    assert report["sorties"] and all(s["outcome"] == "completed" for s in report["sorties"])  # none cut short
    with sqlite3.connect(tmp_path / "events.sqlite") as con:
        last = {d: armed for d, armed in con.execute(
            "select drone_id, armed from poses p where t_s = (select max(t_s) from poses where drone_id = p.drone_id)")}
    assert last and not any(last.values()), f"drones still armed at the end: {last}"
    cells = report["shift"]["cells"]
    flown = {g for s in report["sorties"] for g in s["grid_ids"]}
    assert set(cells) == set(scenario.cells) and all(cells[g]["visits"] >= 1 for g in flown)
    assert (tmp_path / "report.html").exists() and (tmp_path / "coverage.png").exists()


@pytest.mark.soak
@pytest.mark.timeout(1800)  # 1,500 scenario s with three drones' vision: minutes on a loaded machine
async def test_a_crowd_gathering_after_the_first_sweep_is_found(mosquitto_broker, tmp_path):
    """danyang-shift as written: the crowd starts at 825 s, after every cell was seen once; the
    live schedule's next pass finds it; every cell is seen at least twice, none left unseen
    longer than the scenario's max_revisit_gap_s."""
    scenario = load_scenario("danyang-shift").model_copy(update={"speedup": CI_SPEEDUP})
    report = await run_patrol(scenario, tmp_path, broker_url=mosquitto_broker.url, live=False)
    assert report["passed"], "\n".join(report["failures"])
    crowd = report["incidents"][0]
    assert crowd["started_s"] >= 825 and crowd["detected_s"] is not None
    assert min(c["visits"] for c in report["shift"]["cells"].values()) >= 2


def events_of(run_dir, kind: str) -> list[tuple[float, str, dict]]:
    with sqlite3.connect(run_dir / "events.sqlite") as con:
        return [(t, s, json.loads(d)) for t, s, d in con.execute(
            "select t_s, subject, data from events where kind = ? order by t_s", (kind,))]


@pytest.mark.soak
@pytest.mark.timeout(1200)  # 900 scenario s of three drones with vision at 20x: minutes on a loaded machine
async def test_a_drone_lost_mid_shift_has_its_cells_flown_by_another(mosquitto_broker, tmp_path):
    """danyang-shift, 900 s, and drone 1's link cut for 300 s at 100 s, in the middle of its first
    sortie and before it saw its cells: after the shift's link_gone_s (60 s) it is out of the
    shift; the cells it had not seen go back into the pool, the other drones see them again, and
    the report names the drone and the cells."""
    base = load_scenario("danyang-shift")
    scenario = base.model_copy(update={
        "speedup": CI_SPEEDUP, "duration_s": 900.0, "incidents": [],
        "faults": [FaultSpec(at_s=100, link_cut=LinkCut(drone=1, seconds=300))],
        "pass_": PassCriteria(all_incidents_detected=False, all_incidents_alerted=False)})
    report = await run_patrol(scenario, tmp_path, broker_url=mosquitto_broker.url, live=False)

    [(lost_at, drone, lost)] = events_of(tmp_path, "drone_lost")
    assert drone == "drone01" and 100 < lost_at <= 200, (lost_at, drone)
    assert "link lost" in lost["reason"] and lost["cells_returned"], lost
    returned = set(lost["cells_returned"])
    later = [(t, s, set(d["grid_ids"])) for t, s, d in events_of(tmp_path, "sortie_start") if t > lost_at]
    assert all(s != "drone01" for _, s, _ in later), "a lost drone took another sortie"
    assert returned & set().union(*(cells for _, _, cells in later)), (returned, later)  # flown for them
    # ... and every one of them seen again (another drone's sortie, or its camera on the way)
    seen_after = {d.get("grid_id", s) for t, s, d in events_of(tmp_path, "cell_visit") if t > lost_at}
    assert returned <= seen_after, (returned, seen_after)
    shift = report["shift"]
    assert [d["drone_id"] for d in shift["drones_lost"]] == ["drone01"]
    assert set(shift["drones_lost"][0]["cells_returned"]) == returned
