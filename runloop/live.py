"""The live terminal table during a run: drones (mode, battery, sortie progress, overwatch),
incidents (state, unit) and units. Redrawn in place on a terminal, one line every few seconds
otherwise (CI logs)."""
from __future__ import annotations

import asyncio
import sys


def render_table(t_s: float, drones, recorder, world) -> str:
    lines = [f"patrol  t={t_s:7.1f} s"]
    lines.append(f"{'drone':<9}{'mode':<9}{'alt m':>7}{'batt %':>8}  {'sortie':<12}{'done':>6}  overwatch")
    for rec in drones.drones.values():
        s = rec.vehicle.state
        alt = f"{s.pose.alt_rel_m:.0f}" if s.pose else "-"
        batt = f"{s.battery_remaining_pct:.0f}" if s.battery_remaining_pct is not None else "-"
        mode = s.mode + ("" if s.link_ok else "!")
        lines.append(f"{rec.drone_id:<9}{mode:<9}{alt:>7}{batt:>8}  {rec.current or '-':<12}"
                     f"{rec.done}/{rec.total:<4}  {', '.join(getattr(rec, 'watching', None) or [rec.overwatch_incident or ''])}")
    lines.append(f"{'incident':<28}{'kind':<17}{'status':<12}unit")
    for iid, rec in sorted(recorder.incidents.items()):
        lines.append(f"{iid:<28}{(rec.get('incident') or {}).get('kind', ''):<17}{rec.get('status', ''):<12}"
                     f"{rec.get('unit_id') or ''}")
    waiting = [i.name for i in world.incidents if i.started_s is None]
    if waiting:
        lines.append(f"(scripted, not started yet: {', '.join(waiting)})")
    lines.append(f"{'unit':<8}{'status':<12}position")
    for unit, (lat, lon, status) in sorted(recorder.unit_positions.items()):
        lines.append(f"{unit:<8}{status:<12}{lat:.5f},{lon:.5f}")
    return "\n".join(lines)


async def live_table(stop: asyncio.Event, clock, drones, recorder, world, stream=None, every_wall_s: float = 1.0) -> None:
    out = stream or sys.stderr
    tty = out.isatty()
    last_lines = 0
    n = 0
    while not stop.is_set():
        text = render_table(clock(), drones, recorder, world)
        if tty:
            if last_lines:
                out.write(f"\x1b[{last_lines}F\x1b[J")
            out.write(text + "\n")
            last_lines = text.count("\n") + 1
        elif n % 10 == 0:
            out.write(text + "\n\n")
        out.flush()
        n += 1
        try:
            await asyncio.wait_for(stop.wait(), every_wall_s)
        except asyncio.TimeoutError:
            pass
