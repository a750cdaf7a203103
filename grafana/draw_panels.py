#!/usr/bin/env python3
"""Draws the panels of the Grafana dashboards as PNGs from Prometheus' HTTP API, using each
panel's own queries, units and overrides (tables merged as Grafana's `merge` does). Run by
scripts/pictures; the pictures are captioned as drawn, never as Grafana screenshots."""
import argparse
import json
import math
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Queries and captions contain `$`: plain text, never mathtext.
plt.rcParams["text.parse_math"] = False
SUBST = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "10m", "$interval": "5m",
         "$handler": ".*", "$operation": ".*"}
COLORS = {"green": "#1f7f3f", "orange": "#d9822b", "red": "#c62828", "yellow": "#b59b00",
          "blue": "#1f5fbf", "text": "black"}


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


def finite(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v if math.isfinite(v) else float("nan")


def scale(unit, values):
    """Values and axis label of a graph in the panel's unit."""
    if unit == "percentunit":
        return [v * 100 for v in values], "%"
    if unit == "s":
        return [v * 1000 for v in values], "ms"
    if unit == "bytes":
        big = max((v for v in values if not math.isnan(v)), default=0) >= 1048576
        return [v / (1048576 if big else 1024) for v in values], "MiB" if big else "KiB"
    return values, {"reqps": "req/s", "ops": "ops/s", "percent": "%", "short": "", "none": ""}.get(unit, unit)


def fmt_value(v, unit, decimals=None):
    """One value as Grafana prints it in `unit` (auto-scaled seconds, bytes, short)."""
    if v is None or math.isnan(v):
        return "-"
    suffix = {"reqps": " req/s", "ops": " ops/s", "percent": "%"}.get(unit, "")
    if unit == "percentunit":
        v, suffix = v * 100, "%"
    elif unit == "s":
        for limit, div, name in ((1e-3, 1e-6, " µs"), (1, 1e-3, " ms"), (60, 1, " s"), (math.inf, 60, " min")):
            if abs(v) < limit or limit == math.inf:
                v, suffix = v / div, name
                break
    elif unit == "bytes":
        for div, name in ((1 << 30, " GiB"), (1 << 20, " MiB"), (1 << 10, " KiB"), (1, " B")):
            if abs(v) >= div or div == 1:
                v, suffix = v / div, name
                break
    elif unit == "short":
        for div, name in ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K")):
            if abs(v) >= div:
                v, suffix = v / div, name
                break
    if decimals is not None:
        return f"{v:,.{decimals}f}{suffix}"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}{suffix}"
    return (f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}") + suffix


def threshold_color(value, steps):
    color = None
    for s in steps or []:
        if s.get("value") is None or (value is not None and not math.isnan(value) and value >= s["value"]):
            color = s["color"]
    return COLORS.get(color, color or "black")


def field_config(panel):
    """Per-field config: the panel defaults, then each byName override on top (Grafana order)."""
    defaults = panel["fieldConfig"]["defaults"]
    overrides = {}
    for o in panel["fieldConfig"].get("overrides", []):
        m = o.get("matcher", {})
        if m.get("id") != "byName":
            continue
        props = overrides.setdefault(m.get("options", ""), {})
        for p in o.get("properties", []):
            props[p["id"]] = p["value"]

    def get(name, key, fallback=None):
        return overrides.get(name, {}).get(key, defaults.get(key, fallback))
    return get


def query_instant(base, panel, end):
    frames = []
    for t in panel["targets"]:
        frames.append((t, api(base, "/api/v1/query", {"query": substitute(t["expr"]), "time": end})))
    return frames


def draw_table(ax, panel, base, end):
    """Grafana's table: each target is a frame (labels + `Value #<refId>`); the `merge`
    transformation joins the frames' rows on their common labels, `organize` hides columns;
    each column is formatted with its own unit and named by its override's displayName."""
    ax.axis("off")
    get = field_config(panel)
    frames = query_instant(base, panel, end)
    many = len(panel["targets"]) > 1
    value_cols = [f"Value #{t['refId']}" if many else "Value" for t, _ in frames]
    label_cols = []
    for _, res in frames:
        for r in res:
            for k in r["metric"]:
                if k not in label_cols:
                    label_cols.append(k)
    transforms = {t["id"]: t.get("options", {}) for t in panel.get("transformations", [])}
    rows = []
    if "merge" in transforms:
        present = [set().union(*(r["metric"].keys() for r in res)) for _, res in frames if res]
        common = sorted(set.intersection(*present)) if present else []
        index = {}
        for col, (_, res) in zip(value_cols, frames):
            for r in res:
                key = tuple(r["metric"].get(k, "") for k in common)
                row = index.get(key)
                if row is None:
                    row = index[key] = {}
                    rows.append(row)
                row.update(r["metric"])
                row[col] = finite(r["value"][1])
    else:
        for col, (_, res) in zip(value_cols, frames):
            rows += [dict(r["metric"], **{col: finite(r["value"][1])}) for r in res]
    hidden = {k for k, v in transforms.get("organize", {}).get("excludeByName", {}).items() if v}
    hidden |= {"Time"}
    cols = [c for c in label_cols + value_cols if c not in hidden]
    headers = [get(c, "displayName", c) for c in cols]
    for s in panel.get("options", {}).get("sortBy", []):
        if s.get("displayName") in headers:
            col = cols[headers.index(s["displayName"])]
            rows.sort(key=lambda r: (r.get(col) is None or math.isnan(r[col]), -(r.get(col) or 0)
                                     if s.get("desc") else (r.get(col) or 0)))
    if not rows:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        return 0
    shown = rows[:12]
    text = [[fmt_value(r.get(c), get(c, "unit", ""), get(c, "decimals")) if c in value_cols
             else r.get(c, "")[:40] for c in cols] for r in shown]
    # Column widths from their longest text, spread over the panel's width.
    chars = [max(len(str(x)) for x in [h] + [row[j] for row in text]) + 2 for j, h in enumerate(headers)]
    table = ax.table(cellText=text, colLabels=headers, loc="upper center", cellLoc="left",
                     colWidths=[c / sum(chars) for c in chars])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.25)
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps")
    for j, c in enumerate(cols):
        table[0, j].set_text_props(fontweight="bold")
        cell = get(c, "custom.cellOptions", {}) or {}
        if cell.get("type") == "color-background":
            for i, r in enumerate(shown, start=1):
                table[i, j].set_facecolor(threshold_color(r.get(c), get(c, "thresholds", {}).get("steps", steps)))
                table[i, j].set_alpha(0.35)
    if len(rows) > len(shown):
        ax.text(0.0, 0.0, f"{len(rows) - len(shown)} more rows", fontsize=7, color="grey", transform=ax.transAxes)
    return len(rows)


def mapped(value, mappings):
    for m in mappings or []:
        if m.get("type") == "value" and value is not None and not math.isnan(value):
            key = str(int(value)) if value == int(value) else str(value)
            if key in m.get("options", {}):
                return m["options"][key]
    return None


def draw_stat(ax, panel, base, start, end, step):
    """Grafana's stat/gauge: one tile per series, the last non-null value in the panel's unit
    (decimals, value mappings, threshold colour), with the series as a sparkline."""
    defaults = panel["fieldConfig"]["defaults"]
    unit, decimals = defaults.get("unit", ""), defaults.get("decimals")
    steps = defaults.get("thresholds", {}).get("steps")
    opts = panel.get("options", {})
    series = []
    for t in panel["targets"]:
        expr = substitute(t["expr"])
        if t.get("instant"):
            for r in api(base, "/api/v1/query", {"query": expr, "time": end}):
                series.append((legend(t.get("legendFormat", ""), r["metric"]), [], [finite(r["value"][1])]))
        else:
            for r in api(base, "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}):
                series.append((legend(t.get("legendFormat", ""), r["metric"]),
                               [float(ts) for ts, _ in r["values"]], [finite(v) for _, v in r["values"]]))
    ax.axis("off")
    if not series:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        return 0
    series = series[:8]
    n = len(series)
    ncols = n if n <= 4 else math.ceil(n / 2)
    nrows = math.ceil(n / ncols)
    for i, (name, xs, ys) in enumerate(series):
        col, row = i % ncols, i // ncols
        w, h = 1 / ncols, 0.92 / nrows
        x0, y0 = col * w, 0.92 - (row + 1) * h
        last = next((v for v in reversed(ys) if not math.isnan(v)), float("nan"))
        m = mapped(last, defaults.get("mappings"))
        text = m.get("text") if m else fmt_value(last, unit, decimals)
        color = "black" if opts.get("colorMode") == "none" else COLORS.get(
            (m or {}).get("color"), threshold_color(last, steps))
        if opts.get("graphMode") == "area" and len(xs) > 1:
            spark = ax.inset_axes([x0 + 0.02 * w, y0, 0.96 * w, 0.4 * h])
            spark.fill_between(xs, [0 if math.isnan(v) else v for v in ys], color=color, alpha=0.2)
            spark.plot(xs, ys, color=color, linewidth=1)
            top = max((v for v in ys if not math.isnan(v)), default=0)
            spark.set_ylim(min(0, *[v for v in ys if not math.isnan(v)] or [0]), top * 1.1 or 1)
            spark.axis("off")
        if panel["type"] == "gauge" and defaults.get("max") is not None and not math.isnan(last):
            lo, hi = defaults.get("min", 0), defaults["max"]
            frac = min(max((last - lo) / (hi - lo), 0), 1)
            ax.add_patch(plt.Rectangle((x0 + 0.1 * w, y0 + 0.45 * h), 0.8 * w, 0.05 * h,
                                       transform=ax.transAxes, color="#dddddd"))
            ax.add_patch(plt.Rectangle((x0 + 0.1 * w, y0 + 0.45 * h), 0.8 * w * frac, 0.05 * h,
                                       transform=ax.transAxes, color=color))
            text += f"  (max {fmt_value(hi, unit, decimals)})"
        ax.text(x0 + w / 2, y0 + 0.88 * h, name[:40], ha="center", va="center", fontsize=8,
                transform=ax.transAxes, color="#444444")
        ax.text(x0 + w / 2, y0 + 0.64 * h, text, ha="center", va="center", transform=ax.transAxes,
                fontsize=16 if n <= 2 else 12, fontweight="bold", color=color)
    return n


def draw_panel(ax, panel, base, start, end, step):
    kind = panel["type"]
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    ax.set_title(panel["title"], fontsize=9, loc="left", fontweight="bold")
    ax.tick_params(labelsize=7)
    if kind == "table":
        return draw_table(ax, panel, base, end)
    if kind in ("stat", "gauge"):
        return draw_stat(ax, panel, base, start, end, step)
    if kind == "piechart":
        series = [(legend(t.get("legendFormat", ""), r["metric"]), finite(r["value"][1]))
                  for t, res in query_instant(base, panel, end) for r in res]
        if not series:
            ax.axis("off")
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
            return 0
        ax.pie([v for _, v in series], labels=[f"{n} ({fmt_value(v, unit)})" for n, v in series],
               textprops={"fontsize": 7}, wedgeprops={"width": 0.45})
        return len(series)
    series = []
    for t in panel["targets"]:
        params = {"query": substitute(t["expr"]), "start": start, "end": end, "step": step}
        for r in api(base, "/api/v1/query_range", params):
            xs = [(float(ts) - end) / 60 for ts, _ in r["values"]]
            series.append((legend(t.get("legendFormat", ""), r["metric"]), xs, [finite(v) for _, v in r["values"]]))
    if not series:
        ax.axis("off")
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        return 0
    if kind == "heatmap":
        # Rows = buckets (cumulative counts de-cumulated), columns = time.
        series.sort(key=lambda s: float("inf") if s[0] == "+Inf" else float(s[0]))
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
    label, get = "", field_config(panel)
    for name, xs, ys in series[:12]:
        ys, label = scale(unit, ys)
        fixed = (get(name, "color", {}) or {}).get("fixedColor")
        dashed = (get(name, "custom.lineStyle", {}) or {}).get("fill") == "dash"
        ax.plot(xs, ys, linewidth=1.2, label=name[:40], color=COLORS.get(fixed, fixed),
                linestyle="--" if dashed else "-")
    ax.set_ylabel(label, fontsize=7)
    ax.set_xlabel("minutes before the picture", fontsize=7)
    ax.set_xlim(-(end - start) / 60, 0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", framealpha=0.6)
    return len(series)


def draw(path, root, base, minutes, out):
    dash = json.loads(path.read_text())
    panels = [p for p in dash["panels"] if p["type"] not in ("row", "text")]
    for p in dash["panels"]:
        if p["type"] == "row":
            panels += p.get("panels", [])
    end = time.time()
    start, step = end - minutes * 60, max(5, minutes * 60 // 240)
    cols, width = 3, 17
    rows = math.ceil(len(panels) / cols)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    caption = (f"Drawn from Prometheus' HTTP API with the queries of the panels of dashboard "
               f"'{dash['title']}' ({path.relative_to(root)}), last {minutes} min at {stamp}"
               f" - not a Grafana screenshot. Substituted: $__rate_interval=1m, $interval=5m, "
               f"$handler=.*, $operation=.*. Regenerate with scripts/pictures.")
    # ~0.075 in per character at 9 pt: wrap well inside the figure's width, reserve its height.
    lines = textwrap.wrap(caption, int(width * 0.85 / 0.075))
    caption_in = 0.2 * len(lines) + 0.25
    height = 3.3 * rows + 0.8 + caption_in
    fig, axes = plt.subplots(rows, cols, figsize=(width, height))
    axes = [a for row in (axes if rows > 1 else [axes]) for a in row]
    empty = []
    for ax, panel in zip(axes, panels):
        if draw_panel(ax, panel, base, start, end, step) == 0:
            empty.append(panel["title"])
    for ax in axes[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{dash['title']}  (dashboard uid {dash['uid']})", fontsize=13, fontweight="bold")
    fig.text(0.5, 0.1 / height, "\n".join(lines), ha="center", va="bottom", fontsize=9,
             style="italic", parse_math=False, linespacing=1.4)
    fig.tight_layout(rect=(0, caption_in / height, 1, 1 - 0.5 / height))
    target = out / f"{dash['uid']}.png"
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target, len(panels), empty


def main():
    ap = argparse.ArgumentParser(description="Draws docs/pictures/<uid>.png from Prometheus' API")
    ap.add_argument("--root", required=True)
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    root = Path(args.root).resolve()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((root / "grafana" / "dashboards").glob("*.json")):
        target, n, empty = draw(path, root, args.prometheus, args.minutes, out)
        note = f"; no data: {', '.join(empty)}" if empty else ""
        print(f"pictures: {target} ({n} panels{note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
