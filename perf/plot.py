#!/usr/bin/env python3
"""Figures for perf/RESULTS.md: SVG drawn directly (Python 3 standard library only).

    perf/plot.py DATA_DIR OUT_DIR [--markdown FILE ...] [--link-prefix PREFIX]

DATA_DIR holds the small data files the sections of perf/run write (below); for each figure
whose data file is there and has numbers, OUT_DIR/NAME.svg is written, and a figure of a
known name without data is removed from OUT_DIR (no stale figure of a skipped section).
With --markdown, each line `<!-- figure NAME: ALT -->` of those files becomes
`![ALT](PREFIX/NAME.svg)` when the figure was drawn and is deleted otherwise, so a skipped
section leaves no broken link. Prints the names drawn, one a line.

Data files (TSV: a header line naming the columns, then rows; `#` lines are comments; a
value that is not a number, such as n/a, is a missing bar):

    meta.json             {"machine": "...", "date": "...", "commit": "..."}: the subtitle
    latency-af_packet.tsv panel group p50 p90 p99 (µs): a panel per `panel`, grouped bars
    latency-af_xdp.tsv    the same
    rates-af_packet.tsv   label mpps kind (kind: rondo, reference or input): horizontal bars
    rates-af_xdp.tsv      the same
    rates-dpdk.tsv        the same
    scaling.tsv           forwarder workers mpps: grouped bars per worker count
    reload.json           {"requested_mpps": R, "duration": S, "runs": [{"label": "...",
                          "points": [[t, mpps], ...], "events": [t, ...]}, ...]}: lines
"""

import json
import math
import os
import re
import sys
from xml.sax.saxutils import escape

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
W, H = 820, 440
INK = "#222222"
GRID = "#dddddd"
# Okabe-Ito, readable by colour-blind readers.
BLUE, ORANGE, VERMILLION, SKY, GREEN, GREY, DARKGREY = (
    "#0072B2", "#E69F00", "#D55E00", "#56B4E9", "#009E73", "#999999", "#555555")
KIND_COLOR = {"rondo": BLUE, "reference": GREY, "input": SKY}
PCT_COLOR = {"p50": BLUE, "p90": ORANGE, "p99": VERMILLION}


def num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def read_tsv(path):
    rows = []
    header = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.split("\t")
            if header is None:
                header = cells
                continue
            rows.append(dict(zip(header, cells)))
    return rows


def text_width(s, size):
    """Rough width of `s` in the sans font at `size` px."""
    narrow = sum(1 for c in s if c in "il.,:;|!'()[] 1")
    return (len(s) - narrow) * size * 0.6 + narrow * size * 0.33


def fmt(v):
    """A tick or value label: 3 significant digits at most, no trailing zeros."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5:
        s = f"{v / 1e3:.0f}k"
    elif a >= 1e4:
        s = f"{v / 1e3:.1f}".rstrip("0").rstrip(".") + "k"
    elif a >= 100:
        s = f"{v:.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    elif a >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3g}"
    if "." in s and not s.endswith("k"):
        s = s.rstrip("0").rstrip(".")
    return s


def nice_ticks(vmax, n=5, slack=0.0):
    """0 .. a round number >= vmax (or within `slack` of a step below it) in about n steps of
    1, 2, 2.5 or 5 times a power of 10."""
    if vmax <= 0:
        return [0, 1]
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    top = math.ceil(vmax / step - max(slack, 1e-9)) * step
    ticks = []
    k = 0
    while k * step <= top + step * 1e-9:
        ticks.append(round(k * step, 10))
        k += 1
    return ticks


class Svg:
    def __init__(self, width=W, height=H):
        self.w, self.h = width, height
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", color=INK, rotate=None, baseline=None):
        t = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        b = f' dominant-baseline="{baseline}"' if baseline else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{color}"{t}{b}>{escape(str(s))}</text>')

    def line(self, x1, y1, x2, y2, color=INK, width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
                 f'stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, color, title=None):
        t = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                 f'fill="{color}">{t}</rect>')

    def polyline(self, pts, color, width=2, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        p = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        self.add(f'<polyline points="{p}" fill="none" stroke="{color}" stroke-width="{width}" '
                 f'stroke-linejoin="round"{d}/>')

    def circle(self, x, y, r, color):
        self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"/>')

    def render(self, title):
        head = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="{FONT}">\n'
                f'<title>{escape(title)}</title>\n'
                f'<rect x="0" y="0" width="{self.w}" height="{self.h}" fill="#ffffff"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"


def header(svg, title, meta):
    svg.text(16, 24, title, size=16, weight="bold")
    sub = ", ".join(x for x in (meta.get("machine"), meta.get("date"), meta.get("commit")) if x)
    if sub:
        svg.text(16, 42, sub, size=11, color=DARKGREY)


def legend(svg, items, x, y, size=12):
    """Items (label, colour, kind: box, line or dash) in a row from x; returns the end x."""
    for label, color, kind in items:
        if kind == "box":
            svg.rect(x, y - 9, 12, 12, color)
        else:
            svg.line(x, y - 3, x + 18, y - 3, color=color, width=2, dash="5,3" if kind == "dash" else None)
        x0 = x + (16 if kind == "box" else 22)
        svg.text(x0, y + 1, label, size=size)
        x = x0 + text_width(label, size) * 1.1 + 18
    return x


class Axis:
    """A value axis, linear from 0 or logarithmic, mapped to [y0 (bottom), y1 (top)]."""

    def __init__(self, vmin, vmax, y0, y1, log=False):
        self.log, self.y0, self.y1 = log, y0, y1
        if log:
            self.lo = 10 ** math.floor(math.log10(max(vmin, 1e-9)))
            self.hi = 10 ** math.ceil(math.log10(max(vmax, self.lo * 10)))
            if self.hi / self.lo < 100:
                self.hi = self.lo * 100
            self.ticks = []
            t = self.lo
            while t <= self.hi * 1.0001:
                self.ticks.append(t)
                t *= 10
        else:
            self.ticks = nice_ticks(vmax)
            self.lo, self.hi = 0, self.ticks[-1]

    def y(self, v):
        if self.log:
            v = max(v, self.lo)
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / ((self.hi - self.lo) or 1)
        return self.y0 - f * (self.y0 - self.y1)

    def draw(self, svg, x0, x1, label=None, grid=True):
        for t in self.ticks:
            y = self.y(t)
            if grid:
                svg.line(x0, y, x1, y, color=GRID)
            svg.line(x0 - 4, y, x0, y)
            svg.text(x0 - 7, y + 4, fmt(t), size=11, anchor="end")
        if self.log:
            for t in self.ticks[:-1]:
                for m in range(2, 10):
                    y = self.y(t * m)
                    svg.line(x0 - 2, y, x0, y)
        svg.line(x0, self.y0, x0, self.y1)
        if label:
            svg.text(x0 - 44, (self.y0 + self.y1) / 2, label, size=12, anchor="middle", rotate=-90)


def grouped_bars(svg, panels, series, colors, x0, x1, axis, value_labels=True):
    """panels: [(panel title or None, [(group, {series: value})])] side by side in [x0, x1]."""
    gap = 24
    n_groups = sum(len(g) for _, g in panels)
    inner = x1 - x0 - gap * (len(panels) - 1)
    gw = inner / max(n_groups, 1)
    bw = min(gw * 0.8 / max(len(series), 1), 44)
    x = x0
    for title, groups in panels:
        px0 = x
        for group, values in groups:
            cx = x + gw / 2
            start = cx - bw * len(series) / 2
            for i, s in enumerate(series):
                v = values.get(s)
                bx = start + i * bw
                if v is None:
                    svg.text(bx + bw / 2, axis.y0 - 5, "n/a", size=9, anchor="middle", color=DARKGREY)
                    continue
                y = axis.y(v)
                svg.rect(bx + 1, y, bw - 2, axis.y0 - y, colors[s], title=f"{group} {s}: {fmt(v)}")
                if value_labels:
                    svg.text(bx + bw / 2, y - 4, fmt(v), size=10 if bw > 22 else 8, anchor="middle")
            svg.text(cx, axis.y0 + 16, group, size=12, anchor="middle")
            x += gw
        if title:
            svg.text((px0 + x) / 2, axis.y0 + 34, title, size=12, anchor="middle", weight="bold")
        if x < x1 - 1:
            svg.line(x + gap / 2, axis.y1, x + gap / 2, axis.y0, color=GRID, dash="3,3")
        x += gap
    svg.line(x0, axis.y0, x1, axis.y0)


# --- the figures ----------------------------------------------------------------------

def fig_latency(rows, meta, driver):
    panels = []
    for r in rows:
        vals = {p: num(r.get(p)) for p in ("p50", "p90", "p99")}
        vals = {k: v for k, v in vals.items() if v is not None and v > 0}
        if not vals:
            continue
        name = r.get("panel") or None
        if not panels or panels[-1][0] != name:
            panels.append((name, []))
        panels[-1][1].append((r.get("group", "?"), vals))
    vs = [v for _, g in panels for _, d in g for v in d.values()]
    if not vs:
        return None
    title = f"{driver}: latency percentiles per load"
    svg = Svg()
    header(svg, title, meta)
    legend(svg, [(p, PCT_COLOR[p], "box") for p in ("p50", "p90", "p99")], W - 250, 30)
    axis = Axis(min(vs), max(vs), H - 70, 66, log=True)
    axis.draw(svg, 84, W - 20, label="latency (µs, log scale)")
    grouped_bars(svg, panels, ["p50", "p90", "p99"], PCT_COLOR, 90, W - 24, axis)
    return svg.render(title)


def fig_rates(rows, meta, title):
    items = [(r.get("label", "?"), num(r.get("mpps")), r.get("kind", "reference")) for r in rows]
    if not any(v is not None and v > 0 for _, v, _ in items):
        return None
    size = 12
    left = 30 + max(text_width(lbl, size) * (1.12 if k == "rondo" else 1.0) for lbl, _, k in items)
    left = min(left, W * 0.55)
    bar_h = 30
    top = 84
    height = top + len(items) * (bar_h + 14) + 60
    svg = Svg(W, int(height))
    header(svg, title, meta)
    vmax = max(v for _, v, _ in items if v is not None)
    ticks = nice_ticks(vmax)
    x0, x1 = left, W - 60
    sx = lambda v: x0 + v / ticks[-1] * (x1 - x0)
    y_axis = top + len(items) * (bar_h + 14)
    for t in ticks:
        svg.line(sx(t), top - 6, sx(t), y_axis, color=GRID)
        svg.line(sx(t), y_axis, sx(t), y_axis + 4)
        svg.text(sx(t), y_axis + 17, fmt(t), size=11, anchor="middle")
    svg.text((x0 + x1) / 2, y_axis + 36, "million packets per second (Mpps)", size=12, anchor="middle")
    for i, (lbl, v, kind) in enumerate(items):
        y = top + i * (bar_h + 14)
        svg.text(x0 - 8, y + bar_h / 2 + 4, lbl, size=size, anchor="end",
                 weight="bold" if kind == "rondo" else "normal")
        if v is None:
            svg.text(x0 + 6, y + bar_h / 2 + 4, "n/a", size=11, color=DARKGREY)
            continue
        svg.rect(x0, y, sx(v) - x0, bar_h, KIND_COLOR.get(kind, GREY), title=f"{lbl}: {fmt(v)} Mpps")
        svg.text(sx(v) + 5, y + bar_h / 2 + 4, f"{fmt(v)}", size=11)
    svg.line(x0, top - 6, x0, y_axis)
    svg.line(x0, y_axis, x1, y_axis)
    kinds = []
    for _, _, k in items:
        if k not in kinds:
            kinds.append(k)
    names = {"rondo": "Rondo", "reference": "reference", "input": "offered load"}
    legend(svg, [(names.get(k, k), KIND_COLOR.get(k, GREY), "box") for k in kinds], 16, 64)
    return svg.render(title)


def fig_scaling(rows, meta):
    forwarders, workers, vals = [], [], {}
    for r in rows:
        f, w, v = r.get("forwarder", "?"), r.get("workers", "?"), num(r.get("mpps"))
        if f not in forwarders:
            forwarders.append(f)
        if w not in workers:
            workers.append(w)
        if v is not None:
            vals[(w, f)] = v
    if not vals:
        return None
    colors = {}
    others = [GREY, DARKGREY, SKY, GREEN, ORANGE]
    for f in forwarders:
        colors[f] = BLUE if f.lower().startswith("rondo") else others[len([c for c in colors.values() if c != BLUE]) % len(others)]
    title = "DPDK: Mpps per worker count (net_pcap)"
    svg = Svg()
    header(svg, title, meta)
    def ratio(f):
        a, b = vals.get((workers[0], f)), vals.get((workers[-1], f))
        if len(workers) < 2 or not a or b is None:
            return f
        return f"{f} ({workers[-1]}/{workers[0]}: {b / a:.2f}×)"
    legend(svg, [(ratio(f), colors[f], "box") for f in forwarders], 16, 64)
    axis = Axis(0, max(vals.values()), H - 56, 84)
    axis.draw(svg, 84, W - 20, label="Mpps")
    groups = [(f"{w} worker{'s' if w != '1' else ''} (testpmd: {w} forwarding lcore{'s' if w != '1' else ''})",
               {f: vals.get((w, f)) for f in forwarders}) for w in workers]
    groups = [(g, {k: v for k, v in d.items() if v is not None}) for g, d in groups]
    grouped_bars(svg, [(None, groups)], forwarders, colors, 90, W - 24, axis)
    return svg.render(title)


def fig_reload(data, meta):
    runs = []
    dur = num(data.get("duration"))
    for r in data.get("runs", []):
        pts = [(num(t), num(v)) for t, v in r.get("points", [])]
        pts = [(t, v) for t, v in pts if t is not None and v is not None and (dur is None or t <= dur + 0.05)]
        ev = [num(t) for t in r.get("events", [])]
        runs.append((r.get("label", "?"), pts, [t for t in ev if t is not None]))
    if not any(p for _, p, _ in runs):
        return None
    req = num(data.get("requested_mpps"))
    title = "Forwarding rate during table reloads (af_packet, 90 % load)"
    svg = Svg()
    header(svg, title, meta)
    tmax = max([t for _, p, _ in runs for t, _ in p] + [dur or 0])
    vmax = max([v for _, p, _ in runs for _, v in p] + [req or 0])
    axis = Axis(0, vmax * 1.08, H - 70, 84)
    x0, x1 = 84, W - 24
    axis.draw(svg, x0, x1, label="received back by pktgen (Mpps)")
    xt = nice_ticks(tmax, n=8, slack=0.1)
    sx = lambda t: x0 + t / xt[-1] * (x1 - x0)
    for t in xt:
        svg.line(sx(t), axis.y0, sx(t), axis.y0 + 4)
        svg.text(sx(t), axis.y0 + 17, fmt(t), size=11, anchor="middle")
    svg.text((x0 + x1) / 2, axis.y0 + 36, "seconds since pktgen started (one point per second of its dashboard)",
             size=12, anchor="middle")
    colors = [GREY, BLUE, ORANGE, GREEN, VERMILLION]
    items = []
    if req:
        svg.line(x0, axis.y(req), x1, axis.y(req), color=DARKGREY, dash="6,4")
        items.append((f"requested {fmt(req)} Mpps", DARKGREY, "dash"))
    for i, (label, pts, events) in enumerate(runs):
        c = colors[i % len(colors)]
        for t in events:
            svg.line(sx(t), axis.y0, sx(t), axis.y0 - 10, color=c, width=1.5)
        if pts:
            svg.polyline([(sx(t), axis.y(v)) for t, v in pts], c)
            for t, v in pts:
                svg.circle(sx(t), axis.y(v), 2.5, c)
        items.append((label + (f" ({len(events)} console commands: ticks)" if events else ""), c, "line"))
    svg.line(x0, axis.y0, x1, axis.y0)
    legend(svg, items, 16, 64, size=11)
    return svg.render(title)


FIGURES = [
    ("latency-af_packet", "latency-af_packet.tsv", lambda p, m: fig_latency(read_tsv(p), m, "af_packet")),
    ("latency-af_xdp", "latency-af_xdp.tsv", lambda p, m: fig_latency(read_tsv(p), m, "af_xdp")),
    ("rates-af_packet", "rates-af_packet.tsv",
     lambda p, m: fig_rates(read_tsv(p), m, "af_packet: Mpps next to a bare AF_PACKET loop (veth, 1 core)")),
    ("rates-af_xdp", "rates-af_xdp.tsv",
     lambda p, m: fig_rates(read_tsv(p), m, "af_xdp: Mpps next to a bare AF_XDP reflector (veth, 1 core)")),
    ("rates-dpdk", "rates-dpdk.tsv",
     lambda p, m: fig_rates(read_tsv(p), m, "DPDK: Mpps next to testpmd (net_pcap, same vdev and core)")),
    ("scaling", "scaling.tsv", lambda p, m: fig_scaling(read_tsv(p), m)),
    ("reload", "reload.json", lambda p, m: fig_reload(json.load(open(p, encoding="utf-8")), m)),
]


def main(argv):
    args, markdown, prefix = [], [], "figures"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--markdown":
            markdown.append(argv[i + 1]); i += 2; continue
        if a == "--link-prefix":
            prefix = argv[i + 1]; i += 2; continue
        if a in ("-h", "--help"):
            print(__doc__); return 0
        args.append(a); i += 1
    if len(args) != 2:
        sys.stderr.write("usage: perf/plot.py DATA_DIR OUT_DIR [--markdown FILE ...] [--link-prefix PREFIX]\n")
        return 2
    data, out = args
    meta = {}
    if os.path.exists(os.path.join(data, "meta.json")):
        meta = json.load(open(os.path.join(data, "meta.json"), encoding="utf-8"))
    os.makedirs(out, exist_ok=True)
    drawn = []
    for name, src, draw in FIGURES:
        path, svg_path = os.path.join(data, src), os.path.join(out, name + ".svg")
        svg = None
        if os.path.exists(path):
            try:
                svg = draw(path, meta)
            except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
                sys.stderr.write(f"perf/plot.py: {src}: {e}: no figure\n")
        if svg is None:
            if os.path.exists(svg_path):
                os.remove(svg_path)
            continue
        with open(svg_path, "w", encoding="utf-8") as f:
            f.write(svg)
        drawn.append(name)
        print(name)
    pat = re.compile(r"^<!-- figure ([A-Za-z0-9_.-]+): (.*) -->$")
    for md in markdown:
        lines = open(md, encoding="utf-8").read().split("\n")
        kept = []
        skip_blank = False
        for line in lines:
            m = pat.match(line)
            if skip_blank and not line.strip():
                skip_blank = False
                continue
            skip_blank = False
            if not m:
                kept.append(line)
            elif m.group(1) in drawn:
                kept.append(f"![{m.group(2)}]({prefix}/{m.group(1)}.svg)")
            else:
                skip_blank = True
        open(md, "w", encoding="utf-8").write("\n".join(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
