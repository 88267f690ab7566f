"""Draws the Grafana dashboard docs/grafana/chorus.json as one PNG, from a real Prometheus:
every target of every panel is evaluated with /api/v1/query_range over the window of a run
(scripts/dashboard-snapshot makes the run), and drawn where the dashboard puts the panel
(its gridPos), with its title, unit and a legend table (last, max) as the dashboard's own.

Grafana's variables are replaced as Grafana would for this window: `$node` by `.*` (the
variable's "All", its allValue), `$__interval` by the step, and `$__rate_interval` by
max($__interval + scrape interval, 4 x scrape interval), Grafana's own rule.

Fails (exit 1, no PNG written) when a panel's queries answer no series at all: the dashboard
then names a metric or a label the server does not export.
"""

import argparse
import json
import math
import re
import sys
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

# Grafana's dark theme and its classic palette.
BG, PANEL, BORDER, TEXT, DIM, GRID = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9f", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a", "#ff9830", "#c4162a"]

GRID_COLS = 24
INCH_PER_ROW = 0.38      # one gridPos height unit
FIG_WIDTH = 18.0         # inches
HEADER = 0.75            # inches above the panels
LEGEND_ROW = 0.17        # inches per legend line
MAX_LEGEND = 4           # legend lines drawn per panel (more: "+N more")


def si(v, suffix="", digits=3):
    """`v` with an SI prefix: 1.23 k, 45.6 M."""
    if v is None or math.isnan(v):
        return "-"
    if v == 0:
        return f"0{(' ' + suffix) if suffix else ''}"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, "")):
        if abs(v) >= factor:
            text = f"{v / factor:.{digits}g} {prefix}{suffix}"
            return text.strip()
    return f"{v:.{digits}g} {suffix}".strip()


def seconds(v):
    """A duration as Grafana writes one: µs, ms or s."""
    if v is None or math.isnan(v):
        return "-"
    if v == 0:
        return "0 s"
    for factor, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {unit}"
    return f"{v * 1e9:.3g} ns"


UNITS = {
    "short": lambda v: si(v),
    "ops": lambda v: si(v, "ops/s"),
    "Bps": lambda v: si(v, "B/s"),
    "s": seconds,
}


def variables(step, scrape):
    rate_interval = max(step + scrape, 4 * scrape)
    return {
        "node": ".*",
        "__interval": f"{step}s",
        "__rate_interval": f"{rate_interval}s",
    }


def substitute(expr, values):
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in values:
            sys.exit(f"dashboard variable ${name} has no value here (in {expr})")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def query_range(prom, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{params}", timeout=60) as r:
        body = json.load(r)
    if body.get("status") != "success":
        sys.exit(f"Prometheus refused {expr}: {body}")
    return body["data"]["result"]


def legend(fmt, labels, fallback):
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "")
    text = " ".join(text.split())
    return text or fallback


def fetch(dashboard, prom, start, end, step, scrape):
    """Every panel with its series: (panel, [(legend, [t], [v])], [(expr, n series)])."""
    values = variables(step, scrape)
    out = []
    for panel in dashboard["panels"]:
        series, counts = [], []
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], values)
            result = query_range(prom, expr, start, end, step)
            counts.append((expr, len(result)))
            for s in result:
                ts = [datetime.fromtimestamp(float(t), timezone.utc) for t, _ in s["values"]]
                vs = [float(v) for _, v in s["values"]]
                name = legend(target.get("legendFormat"), s["metric"], panel["title"])
                series.append((name, ts, vs))
        out.append((panel, series, counts))
    return out


def finite(vs):
    return [v for v in vs if not (math.isnan(v) or math.isinf(v))]


def draw(panels, dashboard, out, start, end, caption, phases):
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p, _, _ in panels)
    height = HEADER + rows * INCH_PER_ROW
    fig = plt.figure(figsize=(FIG_WIDTH, height), facecolor=BG)
    fx = lambda inches: inches / FIG_WIDTH  # noqa: E731
    fy = lambda inches: inches / height  # noqa: E731

    t0 = datetime.fromtimestamp(start, timezone.utc)
    t1 = datetime.fromtimestamp(end, timezone.utc)
    fig.text(fx(0.15), 1 - fy(0.3), dashboard.get("title", "dashboard"), color=TEXT,
             fontsize=16, weight="bold", va="center")
    fig.text(fx(1.4), 1 - fy(0.3),
             f"{t0:%Y-%m-%d %H:%M:%S} to {t1:%H:%M:%S} UTC   ·   node: All", color=DIM,
             fontsize=10, va="center")
    fig.text(fx(0.15), 1 - fy(0.6), caption, color=DIM, fontsize=8.5, va="center")

    gap = 0.06
    for panel, series, _ in panels:
        g = panel["gridPos"]
        left, width = fx(0.1) + g["x"] / GRID_COLS * (1 - fx(0.2)), g["w"] / GRID_COLS * (1 - fx(0.2))
        top = 1 - fy(HEADER) - g["y"] * fy(INCH_PER_ROW)
        h = g["h"] * fy(INCH_PER_ROW)
        fig.patches.append(Rectangle((left + fx(gap), top - h + fy(gap)), width - fx(2 * gap),
                                     h - fy(2 * gap), transform=fig.transFigure,
                                     facecolor=PANEL, edgecolor=BORDER, linewidth=0.8,
                                     zorder=-1))
        fig.text(left + fx(0.22), top - fy(0.25), panel["title"], color=TEXT, fontsize=10.5,
                 weight="bold", va="center")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        fmt = UNITS.get(unit, UNITS["short"])

        # The legend's order: the dashboard's sortBy (Grafana's table legend), else as queried.
        opts = panel.get("options", {}).get("legend", {})
        key = {"Max": lambda sv: max(finite(sv[2]), default=0.0),
               "Last *": lambda sv: (finite(sv[2]) or [0.0])[-1]}.get(opts.get("sortBy"))
        if key:
            series = sorted(series, key=key, reverse=opts.get("sortDesc", False))
        shown = series[:MAX_LEGEND]
        lines = len(shown) + 1 + (len(series) > MAX_LEGEND)
        legend_h = fy(LEGEND_ROW) * lines
        ax_bottom = top - h + fy(gap + 0.12) + legend_h + fy(0.28)
        ax = fig.add_axes([left + fx(0.85), ax_bottom, width - fx(1.1),
                           top - fy(0.55) - ax_bottom])
        ax.set_facecolor(PANEL)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.grid(True, color=GRID, linewidth=0.6)
        ax.tick_params(colors=DIM, labelsize=7.5, length=0)
        ax.set_xlim(t0, t1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=timezone.utc))
        ax.xaxis.set_major_locator(MaxNLocator(7))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos, f=fmt: f(v)))
        peak = 0.0
        for i, (name, ts, vs) in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            ax.plot(ts, vs, color=color, linewidth=1.3)
            ax.fill_between(ts, vs, color=color, alpha=0.08, linewidth=0)
            peak = max([peak] + finite(vs))
        ax.set_ylim(0, peak * 1.1 if peak > 0 else 1)
        for i, (name, at) in enumerate(phases):
            if t0 <= at <= t1:
                ax.axvline(at, color=DIM, linewidth=0.6, linestyle=(0, (3, 3)))
                if g["y"] == 0:
                    ax.text(at, 1.0 - 0.1 * (i % 2), f" {name}", color=DIM, fontsize=7,
                            transform=ax.get_xaxis_transform(), va="top", ha="left")

        # The legend as Grafana's table: name, last (not null), max.
        x_name, x_last, x_max = left + fx(0.3), left + width - fx(2.0), left + width - fx(0.3)
        y = top - h + fy(gap + 0.1) + legend_h - fy(LEGEND_ROW * 0.5)
        for x, text, ha in ((x_name, "Name", "left"), (x_last, "Last *", "right"),
                            (x_max, "Max", "right")):
            fig.text(x, y, text, color="#6e9fff", fontsize=7.5, ha=ha, va="center")
        for i, (name, _ts, vs) in enumerate(shown):
            y -= fy(LEGEND_ROW)
            vals = finite(vs)
            last = vals[-1] if vals else float("nan")
            fig.text(x_name, y, "▬", color=PALETTE[i % len(PALETTE)], fontsize=8, va="center")
            fig.text(x_name + fx(0.2), y, name, color=TEXT, fontsize=7.5, va="center")
            fig.text(x_last, y, fmt(last), color=TEXT, fontsize=7.5, ha="right", va="center")
            fig.text(x_max, y, fmt(max(vals) if vals else float("nan")), color=TEXT,
                     fontsize=7.5, ha="right", va="center")
        if len(series) > MAX_LEGEND:
            y -= fy(LEGEND_ROW)
            fig.text(x_name + fx(0.2), y, f"+{len(series) - MAX_LEGEND} more", color=DIM,
                     fontsize=7.5, va="center")
    fig.savefig(out, dpi=100, facecolor=BG)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:19090")
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--start", type=float, required=True, help="Unix seconds")
    ap.add_argument("--end", type=float, required=True, help="Unix seconds")
    ap.add_argument("--step", type=int, default=1, help="seconds; Grafana's $__interval")
    ap.add_argument("--scrape-interval", type=int, default=1, help="seconds")
    ap.add_argument("--phases", help="file of lines 'UNIX_SECONDS NAME': marks on the time axis")
    ap.add_argument("--caption", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    with open(args.dashboard) as f:
        dashboard = json.load(f)
    panels = fetch(dashboard, args.prometheus, args.start, args.end, args.step,
                   args.scrape_interval)

    empty = []
    for panel, series, counts in panels:
        print(f"{panel['title']}: {len(series)} series")
        for expr, n in counts:
            print(f"    {n:3} <- {expr}")
        if not series:
            empty.append(panel["title"])
    if empty:
        sys.exit("no series for panel(s): " + ", ".join(empty) + ": the dashboard queries a "
                 "metric or label that the server does not export (or the load never made it)")

    phases = []
    if args.phases:
        with open(args.phases) as f:
            for line in f:
                at, name = line.split(maxsplit=1)
                phases.append((name.strip(), datetime.fromtimestamp(float(at), timezone.utc)))
    draw(panels, dashboard, args.out, args.start, args.end, args.caption, phases)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
