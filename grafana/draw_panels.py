#!/usr/bin/env python3
"""Draws one PNG per dashboard from Prometheus' HTTP API, using the dashboards' own panel queries.

    .stack/venv/bin/python grafana/draw_panels.py --prometheus http://127.0.0.1:9090 \
        --minutes 10 --out docs/pictures

Not a Grafana screenshot (no Grafana runs here): each panel of grafana/dashboards/*.json becomes
a matplotlib subplot fed by /api/v1/query_range (or /api/v1/query for instant panels) with the
panel's exact PromQL, Grafana's variables substituted as printed in the caption. scripts/pictures
runs it against a live stack. Needs matplotlib (loadgen/requirements.txt).
"""

import argparse
import json
import math
import textwrap
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Queries and captions contain `$`: plain text, never mathtext.
plt.rcParams["text.parse_math"] = False

ROOT = Path(__file__).resolve().parent.parent
SUBST = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "10m", "$interval": "5m",
         "$handler": ".*", "$operation": ".*"}


def substitute(expr):
    for k, v in SUBST.items():
        expr = expr.replace("${" + k[1:] + "}", v).replace(k, v)
    return expr


def api(base, path, params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(metric.items()) if k != "__name__") or "value"
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v).replace("{{ " + k + " }}", v)
    return out


def scale(unit, values):
    """Values and axis label in the panel's unit."""
    if unit == "percentunit":
        return [v * 100 for v in values], "%"
    if unit == "s":
        return [v * 1000 for v in values], "ms"
    if unit == "bytes":
        big = max((v for v in values if not math.isnan(v)), default=0) >= 1048576
        return [v / (1048576 if big else 1024) for v in values], "MiB" if big else "KiB"
    return values, {"reqps": "req/s", "ops": "ops/s", "percent": "%"}.get(unit, unit)


def finite(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v if math.isfinite(v) else float("nan")


def fmt_value(v, unit):
    (sv,), label = scale(unit, [v])
    if math.isnan(sv):
        return "NaN"
    label = "" if label in ("short", "none") else f" {label}"
    return (f"{sv:.3g}" if abs(sv) < 1000 else f"{sv:,.0f}") + label


def draw_panel(ax, panel, base, start, end, step):
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    kind = panel["type"]
    ax.set_title(panel["title"], fontsize=9, loc="left", fontweight="bold")
    ax.tick_params(labelsize=7)
    instant = kind in ("table", "piechart") or any(t.get("instant") for t in panel["targets"])
    # Table columns may have their own unit (overrides on "Value #<refId>").
    units = {}
    for o in panel["fieldConfig"].get("overrides", []):
        name = o.get("matcher", {}).get("options", "")
        for prop in o.get("properties", []):
            if prop.get("id") == "unit" and name.startswith("Value #"):
                units[name[len("Value #"):]] = prop["value"]
    series = []
    for t in panel["targets"]:
        expr = substitute(t["expr"])
        if instant:
            tunit = units.get(t["refId"], unit)
            for r in api(base, "/api/v1/query", {"query": expr, "time": end}):
                series.append((legend(t.get("legendFormat", ""), r["metric"]), tunit,
                               [finite(r["value"][1])]))
        else:
            for r in api(base, "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}):
                xs = [(float(ts) - end) / 60 for ts, _ in r["values"]]
                series.append((legend(t.get("legendFormat", ""), r["metric"]), xs, [finite(v) for _, v in r["values"]]))
    if not series:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        return 0
    if kind == "piechart":
        vals = [s[2][0] for s in series]
        ax.pie(vals, labels=[f"{s[0]} ({fmt_value(s[2][0], unit)})" for s in series],
               textprops={"fontsize": 7}, wedgeprops={"width": 0.45})
        return len(series)
    if instant:
        ax.axis("off")
        rows = [[s[0][:60], fmt_value(s[2][0], s[1])] for s in series[:12]]
        table = ax.table(cellText=rows, colLabels=["series", "value"], loc="center", cellLoc="left",
                         colWidths=[0.75, 0.25])
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        return len(series)
    if kind == "heatmap":
        # Rows = buckets (cumulative counts de-cumulated), columns = time.
        def le_key(s):
            return float("inf") if s[0] == "+Inf" else float(s[0])
        series.sort(key=le_key)
        grid, labels, prev = [], [], None
        for name, xs, ys in series:
            row = ys if prev is None else [a - b for a, b in zip(ys, prev)]
            prev = ys
            grid.append([max(v, 0) if not math.isnan(v) else 0 for v in row])
            labels.append(name)
        ax.imshow(grid, aspect="auto", origin="lower", cmap="Oranges",
                  extent=[series[0][1][0], series[0][1][-1], 0, len(grid)])
        ax.set_yticks([i + 0.5 for i in range(len(labels))][::2], labels[::2], fontsize=6)
        ax.set_ylabel("le (s)", fontsize=7)
        ax.set_xlabel("minutes before the picture", fontsize=7)
        return len(series)
    label = ""
    for name, xs, ys in series[:12]:
        ys, label = scale(unit, ys)
        ax.plot(xs, ys, linewidth=1.2, label=name[:40])
    ax.set_ylabel(label if label not in ("short", "none") else "", fontsize=7)
    ax.set_xlabel("minutes before the picture", fontsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", framealpha=0.6)
    if kind in ("stat", "gauge"):
        last = [s[2][-1] for s in series if s[2]]
        if last:
            ax.text(0.98, 0.9, fmt_value(last[-1], unit), transform=ax.transAxes, ha="right",
                    fontsize=14, fontweight="bold", color="#1f6f3f")
    return len(series)


def draw(path, base, minutes, out):
    dash = json.loads(path.read_text())
    panels = [p for p in dash["panels"] if p["type"] not in ("row", "text")]
    for p in dash["panels"]:
        if p["type"] == "row":
            panels += [c for c in p.get("panels", [])]
    end = time.time()
    start, step = end - minutes * 60, max(5, minutes * 60 // 240)
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(17, 3.3 * rows + 1.2))
    axes = [a for row in (axes if rows > 1 else [axes]) for a in row]
    empty = []
    for ax, panel in zip(axes, panels):
        if draw_panel(ax, panel, base, start, end, step) == 0:
            empty.append(panel["title"])
    for ax in axes[len(panels):]:
        ax.axis("off")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    fig.suptitle(f"{dash['title']}  (dashboard uid {dash['uid']})", fontsize=13, fontweight="bold")
    caption = (f"Drawn from Prometheus' HTTP API with the queries of the panels of dashboard "
               f"'{dash['title']}' ({path.relative_to(ROOT)}), last {minutes} min at {stamp}"
               f" - not a Grafana screenshot. Substituted: $__rate_interval=1m, $interval=5m, "
               f"$handler=.*, $operation=.*. Regenerate with scripts/pictures.")
    fig.text(0.5, 0.004, "\n".join(textwrap.wrap(caption, 150)), ha="center", va="bottom",
             fontsize=9, style="italic", parse_math=False)
    fig.tight_layout(rect=(0, 0.035, 1, 0.97))
    target = out / f"{dash['uid']}.png"
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target, len(panels), empty


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "docs" / "pictures"))
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        target, n, empty = draw(path, args.prometheus, args.minutes, out)
        note = f"; no data: {', '.join(empty)}" if empty else ""
        print(f"draw_panels: {target} ({n} panels{note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
