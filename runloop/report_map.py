"""The report's drawings: the map (inline SVG in report.html, and report.png) and the timeline,
drawn from the run's data (no map tiles). Geometry is computed here; the SVG markup is in the
templates `runloop/templates/map.svg.j2` and `timeline.svg.j2` (autoescaped).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from common.geo import LocalFrame
from runloop.eventstore import EventStore
from runloop.report_flights import SortieOutcome
from runloop.report_templates import render

PNG_DPI = 110
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
_KIND_COLOUR = {"fire": "#e4572e", "crowd": "#7b2cbf", "stopped_vehicle": "#1d3557", "intrusion": "#f4a261"}


@dataclass(frozen=True)
class MapData:
    """What the map draws besides the report itself, read from the event store with the report."""

    cells: dict[str, list]  # grid_id -> rings of (lat, lon)
    docks: list[dict]
    poses: dict[str, list]  # drone_id -> (t_s, lat, lon, alt_m, ...)
    units: dict[str, list]  # unit_id -> (t_s, lat, lon, status)

    @classmethod
    def read(cls, store: EventStore) -> MapData:
        return cls(store.meta("cells_geo", {}), store.meta("docks", []), store.poses(), store.unit_tracks())


# ------------------------------------------------------------------------------------ labels
@dataclass(frozen=True)
class LabelBox:
    """A label's box in drawing units (pixels, y down) and the point it names."""

    x: float  # left
    y: float  # top
    w: float
    h: float
    anchor: tuple[float, float]

    @property
    def leader(self) -> bool:
        """Drawn away from its point: a leader line joins them."""
        ax, ay = self.anchor
        return not (self.x - 12 <= ax <= self.x + self.w + 12 and self.y - 12 <= ay <= self.y + self.h + 12)

    def overlaps(self, other: "LabelBox", pad: float = 1.0) -> bool:
        return not (self.x + self.w + pad <= other.x or other.x + other.w + pad <= self.x
                    or self.y + self.h + pad <= other.y or other.y + other.h + pad <= self.y)

    def hits_point(self, px: float, py: float, r: float) -> bool:
        cx = min(max(px, self.x), self.x + self.w)
        cy = min(max(py, self.y), self.y + self.h)
        return (cx - px) ** 2 + (cy - py) ** 2 < r * r


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], *,
                 marker_r: float = 8.0, bounds: tuple[float, float] | None = None) -> list[LabelBox]:
    """Boxes for labels of `sizes` (w, h) next to `anchors`, none overlapping another label or any
    marker (radius `marker_r`). Greedy: each label tries eight spots around its point, then the
    same spots further out (drawn with a leader line), and keeps the first free one.

    >>> boxes = place_labels([(100, 100), (104, 102)], [(80, 14), (80, 14)])
    >>> boxes[0].overlaps(boxes[1])
    False
    """
    placed: list[LabelBox] = []
    gap = marker_r + 2.0
    for (ax, ay), (w, h) in zip(anchors, sizes, strict=True):
        choice = None
        for ring in range(12):
            d = gap + ring * (h + 4.0)
            spots = [(ax + d, ay - d * 0.6 - h), (ax + d, ay + d * 0.6), (ax - d - w, ay - d * 0.6 - h),
                     (ax - d - w, ay + d * 0.6), (ax - w / 2, ay - d - h), (ax - w / 2, ay + d),
                     (ax + d, ay - h / 2), (ax - d - w, ay - h / 2)]
            for x, y in spots:
                box = LabelBox(x, y, w, h, (ax, ay))
                if bounds is not None and (x < 0 or y < 0 or x + w > bounds[0] or y + h > bounds[1]):
                    continue
                if any(box.overlaps(b) for b in placed):
                    continue
                if any(box.hits_point(px, py, marker_r) for px, py in anchors):
                    continue
                choice = box
                break
            if choice is not None:
                break
        if choice is None:  # nowhere free within reach: stack below everything placed so far
            y = max([b.y + b.h for b in placed] + [ay]) + 4.0
            choice = LabelBox(ax + gap, y, w, h, (ax, ay))
        placed.append(choice)
    return placed


def _text_size_px(text: str, font_px: float) -> tuple[float, float]:
    """A bold sans-serif label's box, generously: 0.62 em per character."""
    return 0.62 * font_px * len(text) + 4.0, font_px + 4.0


# ------------------------------------------------------------------------------------ SVG map
class _MapProjection:
    """Lat/lon to SVG pixels (y down), fitting every point given in width x height."""

    def __init__(self, pts: list[tuple[float, float]], width: int, height: int):
        self.frame = LocalFrame(sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
        en = [self.frame.to_en(lat, lon) for lat, lon in pts]
        min_e, max_e = min(e for e, _ in en), max(e for e, _ in en)
        min_n, max_n = min(n for _, n in en), max(n for _, n in en)
        self.span = max(max_e - min_e, max_n - min_n, 50.0) * 1.08
        self.scale = min(width, height) / self.span
        self.cx, self.cy = (min_e + max_e) / 2, (min_n + max_n) / 2
        self.width, self.height = width, height

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        e, n = self.frame.to_en(lat, lon)
        return self.width / 2 + (e - self.cx) * self.scale, self.height / 2 - (n - self.cy) * self.scale

    def path(self, points) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in (self.xy(la, lo) for la, lo in points))


def _map_points(data: MapData, report: dict) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = [p for rings in data.cells.values() for ring in rings for p in ring]
    for track in [*data.poses.values(), *data.units.values()]:
        pts.extend((p[1], p[2]) for p in track)
    pts.extend((inc["lat"], inc["lon"]) for inc in report["incidents"])
    return pts


def map_svg(data: MapData, report: dict, width: int = 900, height: int = 640) -> Markup:
    """The map as inline SVG: cells shaded by the share seen, routes flown, unit tracks, docks,
    true and detected incident positions, labels placed clear of each other."""
    pts = _map_points(data, report)
    if not pts:
        return Markup("<p>(nothing to draw)</p>")
    proj = _MapProjection(pts, width, height)
    seen = report.get("coverage", {}).get("cells", {})
    cells = [{"points": proj.path(ring), "grid_id": gid, "frac": seen.get(gid, {}).get("seen_fraction", 0.0)}
             for gid, rings in data.cells.items() for ring in rings]
    routes = []
    for i, (drone, track) in enumerate(sorted(data.poses.items())):
        airborne = [(p[1], p[2]) for p in track if p[3] is not None and p[3] > 2.0]
        if len(airborne) > 1:
            routes.append({"points": proj.path(airborne), "colour": _COLOURS[i % len(_COLOURS)], "drone": drone})
    units = [{"unit": unit, "points": proj.path([(p[1], p[2]) for p in track]) if len(track) > 1 else None,
              "end": proj.xy(track[-1][1], track[-1][2])} for unit, track in sorted(data.units.items())]
    unit_ends = [(u["unit"], u["end"]) for u in units]
    docks = [{"xy": proj.xy(d["lat"], d["lon"]), "grid_id": d["grid_id"]} for d in data.docks]
    # Incident names and unit ids are placed together: a unit ends its track at the incident it
    # rode to, so its label would otherwise sit on the incident's.
    font_px = 12
    anchors = [proj.xy(inc["lat"], inc["lon"]) for inc in report["incidents"]]
    labels = ([(inc["name"], "incident-label", "bold") for inc in report["incidents"]]
              + [(unit, "unit-label", "normal") for unit, _ in unit_ends])
    boxes = place_labels(anchors + [p for _, p in unit_ends], [_text_size_px(t, font_px) for t, _, _ in labels],
                         bounds=(width, height))
    incidents = [{"name": inc["name"], "xy": xy, "colour": _KIND_COLOUR.get(inc["kind"], "#000"),
                  "detected": (None if inc.get("detected_lat") is None
                               else proj.xy(inc["detected_lat"], inc["detected_lon"])),
                  "error_m": inc.get("geolocation_error_m")} for inc, xy in zip(report["incidents"], anchors)]
    placed = [{"text": text, "cls": cls, "weight": weight, "box": box,
               "leader_to": ((min(max(box.anchor[0], box.x), box.x + box.w),
                              min(max(box.anchor[1], box.y), box.y + box.h)) if box.leader else None)}
              for (text, cls, weight), box in zip(labels, boxes)]
    bar_m = 10 ** math.floor(math.log10(proj.span / 4))
    return Markup(render("map.svg.j2", width=width, height=height, cells=cells, routes=routes, units=units,
                         docks=docks, incidents=incidents, labels=placed, font_px=font_px,
                         bar_m=bar_m, bar_px=bar_m * proj.scale))


# ------------------------------------------------------------------------------------ timeline
_TIMELINE_MARKS = [("started_s", "start", "#999"), ("in_view_s", "in view", "#f1c40f"),
                   ("detected_s", "detected", "#e67e22"), ("alerted_s", "alerted", "#c0392b"),
                   ("accepted_s", "accepted", "#2980b9"), ("arrived_s", "arrived", "#27ae60"),
                   ("resolved_s", "resolved", "#2c3e50")]


def _timeline_rows(report: dict, end: float) -> list[tuple[str, list[tuple], list[tuple]]]:
    """(label, bars (from_s, to_s, colour, what), points (t_s, what, colour)) per row."""
    rows: list[tuple[str, list[tuple], list[tuple]]] = []
    for s in report["sorties"]:
        colour = ("#2e8b57" if s["outcome"] == SortieOutcome.COMPLETED
                  else "#c0392b" if s["outcome"] == SortieOutcome.ABORTED else "#888")
        rows.append((f"{s['drone_id']} {s['sortie']}", [(s["start_s"] or 0.0, s["end_s"] or end, colour,
                                                         str(s["outcome"]))], []))
    for inc in report["incidents"]:
        rows.append((inc["name"], [], [(inc[k], name, c) for k, name, c in _TIMELINE_MARKS if inc.get(k) is not None]))
    for f in report["faults"]:
        rows.append((f"fault {f['fault']}", [], [(f["t_s"], f["fault"], "#000")]))
    for f in report.get("faults_refused", []):
        rows.append((f"NOT injected: {f['fault']}", [], [(f["t_s"], f"{f['fault']} refused: {f.get('reason')}", "#bbb")]))
    for f in report.get("failsafe_summary", []):
        rows.append((f"failsafe {f['drone_id']}", [], [(f["t_s"], f"{f['cause']} -> {f['outcome']}", "#c0392b")]))
    return rows


def timeline_svg(report: dict, width: int = 900) -> Markup:
    """Sorties as bars, each incident's milestones, faults and failsafes as dots, in scenario seconds."""
    end = report.get("run", {}).get("ended_s") or 1.0
    rows = _timeline_rows(report, end)
    end = max([end] + [p[0] for _, _, ps in rows for p in ps] + [b[1] for _, bs, _ in rows for b in bs])
    left, row_h = 170, 22

    def x_of(t: float) -> float:
        return left + (width - left - 20) * (t / end if end else 0)

    return Markup(render("timeline.svg.j2", width=width, height=40 + row_h * len(rows), row_h=row_h,
                         ticks=[(x_of(end * i / 10), end * i / 10) for i in range(11)],
                         rows=[(label, [(x_of(a), max(1.0, x_of(b) - x_of(a)), c, what, a, b) for a, b, c, what in bars],
                                [(x_of(t), c, name, t) for t, name, c in pts]) for label, bars, pts in rows],
                         marks=_TIMELINE_MARKS))


# ------------------------------------------------------------------------------------ PNG
@dataclass(frozen=True)
class PngLabel:
    """An incident name as drawn on report.png: its box and its point, in figure pixels (y up)."""

    text: str
    box: tuple[float, float, float, float]  # x0, y0, width, height
    point: tuple[float, float]


def map_png(data: MapData, report: dict, path: Path) -> list[PngLabel]:
    """report.png: the map drawn with matplotlib; returns the incident labels as drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 7))
    for rings in data.cells.values():
        for ring in rings:
            ax.fill([p[1] for p in ring], [p[0] for p in ring], facecolor="#cfe8d6", edgecolor="#777", lw=0.6)
    for i, (drone, track) in enumerate(sorted(data.poses.items())):
        air = [p for p in track if p[3] is not None and p[3] > 2]
        ax.plot([p[2] for p in air], [p[1] for p in air], color=_COLOURS[i % len(_COLOURS)], lw=1.2, label=drone)
    for unit, track in data.units.items():
        ax.plot([p[2] for p in track], [p[1] for p in track], color="#444", lw=0.8, ls="--")
    for inc in report["incidents"]:
        ax.scatter([inc["lon"]], [inc["lat"]], s=90, color=_KIND_COLOUR.get(inc["kind"], "k"), edgecolor="k", zorder=5)
    lats = [i["lat"] for i in report["incidents"]]
    ax.set_aspect(1 / math.cos(math.radians(sum(lats) / len(lats) if lats else 32.0)))
    labels = _png_labels(fig, ax, report["incidents"])
    ax.set_title(f"{report['scenario']}: {'PASSED' if report['passed'] else 'FAILED'}")
    if data.poses:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never over a label
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    drawn = []
    for inc, a in zip(report["incidents"], labels):
        e = a.get_window_extent(renderer)
        drawn.append(PngLabel(a.get_text(), (e.x0, e.y0, e.width, e.height),
                              tuple(float(v) for v in ax.transData.transform((inc["lon"], inc["lat"])))))
    fig.savefig(path, dpi=PNG_DPI, bbox_inches="tight")
    plt.close(fig)
    return drawn


def _png_labels(fig, ax, incidents: list[dict]) -> list[Any]:
    """Incident names placed by `place_labels` in screen pixels (leader lines where moved off
    their point); returns the annotations so callers can measure what was drawn."""
    if not incidents:
        return []
    fig.set_dpi(PNG_DPI)
    ax.autoscale_view()
    fig.canvas.draw()  # fixes limits and aspect so data -> pixel is final
    renderer = fig.canvas.get_renderer()
    font_pt = 9.0
    anchors_disp = [tuple(ax.transData.transform((i["lon"], i["lat"]))) for i in incidents]
    height = fig.bbox.height
    anchors = [(x, height - y) for x, y in anchors_disp]  # y down, as place_labels expects
    sizes = []
    for inc in incidents:
        t = ax.text(0, 0, inc["name"], fontsize=font_pt)
        bb = t.get_window_extent(renderer)
        sizes.append((bb.width + 4.0, bb.height + 4.0))
        t.remove()
    marker_r = math.sqrt(90) / 2 * PNG_DPI / 72.0 + 1.0  # scatter s=90 is points^2
    boxes = place_labels(anchors, sizes, marker_r=marker_r)
    out = []
    for inc, box, (ax_x, ax_y) in zip(incidents, boxes, anchors_disp):
        # the box's lower-left corner in display pixels, as an offset from the point
        dx, dy = box.x + 2.0 - ax_x, (height - (box.y + box.h)) + 2.0 - ax_y
        arrow = {"arrowstyle": "-", "color": "#333", "lw": 0.7, "shrinkA": 0, "shrinkB": 0} if box.leader else None
        out.append(ax.annotate(inc["name"], (inc["lon"], inc["lat"]), xytext=(dx * 72.0 / PNG_DPI, dy * 72.0 / PNG_DPI),
                               textcoords="offset points", fontsize=font_pt, ha="left", va="bottom",
                               arrowprops=arrow, zorder=6))
    return out
