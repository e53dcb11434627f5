"""What people look at: plan.png (matplotlib Agg) and plan.geojson.

The map shows each cell filled in the colour of the drone that sweeps it in the first patrol
cycle, special cells outlined in gold, every first-cycle route (lanes show as fine
serpentines), no-fly zones hatched red and docks as black triangles, with a legend and the
plan's key figures in the title.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import shapely

from .planner import PatrolPlan


def _first_drone_of_cell(plan: PatrolPlan) -> dict[str, str]:
    owner: dict[str, tuple[float, str]] = {}
    for d in plan.drones:
        for s in d.sorties:
            for g in s.grid_ids:
                if g not in owner or s.start_s < owner[g][0]:
                    owner[g] = (s.start_s, d.drone_id)
    return {g: v[1] for g, v in owner.items()}


def _colours(n: int):
    """Distinct colours: tab10 without its red (red means no-fly), the dark tab20b hues, then more."""
    import matplotlib

    tab10 = list(matplotlib.colormaps["tab10"].colors)
    base = tab10[:3] + tab10[4:] + list(matplotlib.colormaps["tab20b"].colors)[0::4]
    if n > len(base):
        hsv = matplotlib.colormaps["hsv"]
        base += [hsv(i / (n - len(base) + 1))[:3] for i in range(n - len(base))]
    return base[:n]


def _rings(geom):
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon":
            continue
        yield np.asarray(poly.exterior.coords), [np.asarray(r.coords) for r in poly.interiors]


def render_png(plan: PatrolPlan, path: str | Path, *, dpi: int = 130) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, PathPatch
    from matplotlib.path import Path as MplPath

    grids = plan.grids
    drones = [d.drone_id for d in plan.drones]
    colour = dict(zip(drones, _colours(len(drones))))
    owner = _first_drone_of_cell(plan)

    def patch(geom, **kw):
        verts, codes = [], []
        for ext, holes in _rings(geom):
            for ring in [ext, *holes]:
                verts.extend(ring[:, :2].tolist())
                codes.extend([MplPath.MOVETO] + [MplPath.LINETO] * (len(ring) - 2) + [MplPath.CLOSEPOLY])
        return PathPatch(MplPath(verts, codes), **kw) if verts else None

    lat0 = float(np.mean([c.polygon_wgs84.centroid.y for c in grids.cells]))
    minx, miny, maxx, maxy = shapely.bounds(shapely.union_all(
        [c.polygon_wgs84 for c in grids.cells] + [shapely.Point(d.lon, d.lat) for d in grids.docks]))
    shape = (maxy - miny) / max((maxx - minx) * math.cos(math.radians(lat0)), 1e-9)
    map_h = float(np.clip(10.0 * shape + 1.6, 4.5, 12.0))
    gantt_h = float(np.clip(0.22 * len(drones) + 0.9, 1.6, 5.0))
    fig, (ax, gantt) = plt.subplots(2, 1, figsize=(13, map_h + gantt_h),
                                    gridspec_kw={"height_ratios": [map_h, gantt_h]})
    ax.set_aspect(1 / math.cos(math.radians(lat0)))
    ax.ticklabel_format(useOffset=False, style="plain")

    cell_patches, cell_colours = [], []
    for c in grids.cells:
        p = patch(c.polygon_wgs84)
        if p is None:
            continue
        cell_patches.append(p)
        d = owner.get(c.grid_id)
        cell_colours.append((*colour[d], 0.5) if d else (0.85, 0.85, 0.85, 0.6))
    ax.add_collection(PatchCollection(cell_patches, facecolors=cell_colours, edgecolors=(1, 1, 1, 0.9),
                                      linewidths=0.4, zorder=1))
    special = [patch(c.polygon_wgs84) for c in grids.cells if c.kind == "special"]
    ax.add_collection(PatchCollection([p for p in special if p is not None], facecolors="none",
                                      edgecolors="#d4a000", linewidths=1.6, zorder=3))
    nf = [patch(z.polygon_wgs84) for z in grids.no_fly]
    ax.add_collection(PatchCollection([p for p in nf if p is not None], facecolors=(0.85, 0.1, 0.1, 0.25),
                                      edgecolors="#b00000", linewidths=1.2, hatch="///", zorder=4))
    for z in grids.no_fly:
        c = z.polygon_wgs84.representative_point()
        ax.annotate(z.name or z.grid_id, (c.x, c.y), fontsize=7, color="#900000", ha="center", zorder=7,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))

    # Routes of the first cycle and each revisit round once: sweeps bold in the drone's colour,
    # transit thin and faint (it converges on the docks and would hide the cells otherwise).
    proj = grids.projector
    shown: set[int] = set()
    sweep_segs, sweep_cols, transit_segs, transit_cols = [], [], [], []
    for d in plan.drones:
        for s in d.sorties:
            if (s.purpose == "cycle" and s.cycle != 1) or id(s.route_m) in shown:
                continue
            shown.add(id(s.route_m))
            xy = proj.latlon_of(s.route_m)[:, ::-1]
            owner = s.sweep_of if s.sweep_of is not None else np.ones(len(xy), int)
            both = (owner[:-1] > 0) & (owner[:-1] == owner[1:])  # within one cell's sweep
            for a, b, sv in zip(xy[:-1], xy[1:], both):
                (sweep_segs if sv else transit_segs).append((a, b))
                (sweep_cols if sv else transit_cols).append(colour[d.drone_id])
    ax.add_collection(LineCollection(transit_segs, colors=[(*c, 0.35) for c in transit_cols], linewidths=0.4,
                                     linestyles=(0, (3, 3)), zorder=2))
    ax.add_collection(LineCollection(sweep_segs, colors=[tuple(0.6 * np.asarray(c)) + (0.95,) for c in sweep_cols],
                                     linewidths=0.6, zorder=2))

    for dk in grids.docks:
        ax.plot(dk.lon, dk.lat, marker="^", markersize=13, color="black", markeredgecolor="white", zorder=8)
        n = sum(1 for d in plan.drones if d.dock_id == dk.grid_id)
        ax.annotate(f"{dk.grid_id} ({n} drone{'' if n == 1 else 's'})", (dk.lon, dk.lat), xytext=(8, 8), textcoords="offset points",
                    fontsize=9, weight="bold", zorder=9,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="black", alpha=0.85))

    ax.autoscale_view()
    ax.set_xlabel("longitude (deg E)")
    ax.set_ylabel("latitude (deg N)")
    ax.grid(True, lw=0.3, alpha=0.5)
    t = plan.summary()["totals"]
    specials = [c for c in plan.cells.values() if c.kind == "special"]
    ok_specials = sum(1 for c in specials if c.revisit_ok)
    ax.set_title(
        f"Patrol plan: {t['cells']} cells, {len(plan.drones)} drones, {len(grids.docks)} docks  |  "
        f"first cycle {plan.makespan_s / 3600:.1f} h, {t['sorties']} sorties in {plan.horizon_s / 3600:g} h\n"
        f"coverage min {plan.min_coverage * 100:.1f} %  |  special cells on revisit target "
        f"{ok_specials}/{len(specials)} (worst gap {t['worst_special_gap_s'] / 60:.0f} min)",
        fontsize=11)
    handles = [Patch(facecolor=(*colour[d], 0.6), edgecolor="none", label=d) for d in drones[:24]]
    if len(drones) > 24:
        handles.append(Patch(facecolor="none", edgecolor="none", label=f"... {len(drones) - 24} more"))
    handles += [
        Patch(facecolor="none", edgecolor="#d4a000", linewidth=1.6, label="special cell"),
        Patch(facecolor=(0.85, 0.1, 0.1, 0.25), edgecolor="#b00000", hatch="///", label="no-fly zone"),
        Line2D([], [], marker="^", color="black", linestyle="none", markersize=10, label="dock"),
        Line2D([], [], color="dimgrey", linewidth=0.8, label="sweep lanes"),
        Line2D([], [], color="grey", linewidth=0.6, linestyle=(0, (3, 3)), alpha=0.6, label="transit"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="cell colour = drone", title_fontsize=9)
    _draw_timeline(gantt, plan, colour)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")  # keep the legend outside the map
    plt.close(fig)
    return path


def _draw_timeline(ax, plan: PatrolPlan, colour) -> None:
    """One row per drone: cycle sorties in the drone's colour, revisit rounds gold, the horizon
    and the end of the first cycle marked, so idle time and the cycle length show at a glance."""
    for row, d in enumerate(plan.drones):
        y = len(plan.drones) - 1 - row
        cyc = [(s.start_s / 3600, s.duration_s / 3600) for s in d.sorties if s.purpose == "cycle"]
        rnd = [(s.start_s / 3600, s.duration_s / 3600) for s in d.sorties if s.purpose != "cycle"]
        ax.broken_barh(cyc, (y - 0.38, 0.76), facecolors=[(*colour[d.drone_id], 0.85)], edgecolor="white",
                       linewidth=0.3)
        ax.broken_barh(rnd, (y - 0.38, 0.76), facecolors="#d4a000", edgecolor="white", linewidth=0.3)
    ax.axvline(plan.horizon_s / 3600, color="black", lw=1.0, ls="--")
    ax.axvline(plan.makespan_s / 3600, color="#555555", lw=1.0, ls=":")
    ax.text(plan.horizon_s / 3600, len(plan.drones) - 0.4, " horizon", fontsize=8, va="bottom")
    ax.text(plan.makespan_s / 3600, len(plan.drones) - 0.4, " first cycle done", fontsize=8, va="bottom",
            color="#555555")
    ax.set_yticks(range(len(plan.drones)))
    ax.set_yticklabels([d.drone_id for d in reversed(plan.drones)], fontsize=7)
    ax.set_ylim(-0.7, len(plan.drones) + 0.3)
    ax.set_xlim(0, max(plan.horizon_s, plan.makespan_s, max((d.end_s for d in plan.drones), default=0)) / 3600 * 1.02)
    ax.set_xlabel("hours from first takeoff  (bars: sorties; gold = special-cell revisit rounds)")
    ax.grid(True, axis="x", lw=0.3, alpha=0.6)


def plan_geojson(plan: PatrolPlan) -> dict:
    grids = plan.grids
    owner = _first_drone_of_cell(plan)
    feats = []
    for c in grids.cells:
        r = plan.cells[c.grid_id]
        feats.append({"type": "Feature", "geometry": shapely.geometry.mapping(c.polygon_wgs84), "properties": {
            "grid_id": c.grid_id, "kind": c.kind, "drone_id": owner.get(c.grid_id), "coverage": round(r.coverage, 5),
            "worst_gap_min": None if math.isinf(r.worst_gap_s) else round(r.worst_gap_s / 60, 1),
            "revisit_min": c.revisit_min, "visits": len(r.visits_s)}})
    for z in grids.no_fly:
        feats.append({"type": "Feature", "geometry": shapely.geometry.mapping(z.polygon_wgs84),
                      "properties": {"grid_id": z.grid_id, "kind": "no_fly", "name": z.name}})
    for d in grids.docks:
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [d.lon, d.lat]},
                      "properties": {"grid_id": d.grid_id, "kind": "dock", "name": d.name}})
    for dp in plan.drones:
        for s in dp.sorties:
            ll = grids.projector.latlon_of(s.route_m)
            feats.append({"type": "Feature",
                          "geometry": {"type": "LineString", "coordinates": [[round(lon, 7), round(lat, 7)]
                                                                             for lat, lon in ll]},
                          "properties": {"kind": "route", "drone_id": dp.drone_id, "sortie_id": s.sortie_id,
                                         "purpose": s.purpose, "cycle": s.cycle, "start_s": round(s.start_s, 1),
                                         "duration_s": round(s.duration_s, 1), "grid_ids": list(s.grid_ids)}})
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(plan: PatrolPlan, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(plan_geojson(plan), separators=(",", ":")) + "\n", encoding="utf-8")
    return path
