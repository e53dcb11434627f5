"""runloop: the stages of a patrol run (`patrol run`, `patrol demo`, `patrol report`).

patrol.py `run_patrol` starts them as named tasks in one asyncio.TaskGroup (the set-up and
shutdown steps are in stages.py); each module does one job: scenario (the YAML), clock (scenario
time), eventstore (SQLite in the run dir), world (camera actors, simulated riders), drones
(sorties, overwatch, resume, re-plan), eyes (camera -> vision -> MQTT), coverage (what was seen
and when), recorder (what crossed the broker), live (terminal table), report (report.json,
report.html, report.png). See docs/run.md.
"""
from runloop.errors import RunError

__all__ = ["RunError"]
