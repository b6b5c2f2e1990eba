#!/usr/bin/env python3
"""Line charts as standalone SVG, for bench/curves.sh (no plotting library).

    plot.py OUT.svg TITLE XLABEL YLABEL [--logx] [--logy] SERIES.tsv

SERIES.tsv: one line per point, `series<TAB>x<TAB>y`, in order.
"""
import math
import sys

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 200, 40, 60
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def scale(values, log):
    low, high = min(values), max(values)
    if log:
        low, high = math.log10(max(low, 1e-9)), math.log10(max(high, 1e-9))
    if high == low:
        high = low + 1
    return low, high


def position(value, low, high, log, start, length, flip=False):
    if log:
        value = math.log10(max(value, 1e-9))
    fraction = (value - low) / (high - low)
    return start + (1 - fraction if flip else fraction) * length


def ticks(low, high, log):
    if log:
        return [10 ** e for e in range(math.floor(low), math.ceil(high) + 1)]
    step = 10 ** math.floor(math.log10((high - low) / 4 or 1))
    while (high - low) / step > 8:
        step *= 2
    first = math.floor(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 2)]


def label(value):
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    logx, logy = "--logx" in sys.argv, "--logy" in sys.argv
    out, title, xlabel, ylabel, data = args
    series = {}
    for line in open(data):
        name, x, y = line.rstrip("\n").split("\t")
        series.setdefault(name, []).append((float(x), float(y)))
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points] + ([] if logy else [0])
    xlow, xhigh = scale(xs, logx)
    ylow, yhigh = scale(ys, logy)
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>',
        f'<text x="{LEFT + width / 2}" y="{HEIGHT - 15}" text-anchor="middle">{xlabel}</text>',
        f'<text x="18" y="{TOP + height / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + height / 2})">{ylabel}</text>',
    ]
    for tick in ticks(xlow, xhigh, logx):
        if not (xlow <= (math.log10(tick) if logx else tick) <= xhigh + 1e-9):
            continue
        x = position(tick, xlow, xhigh, logx, LEFT, width)
        svg.append(f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{TOP + height}" stroke="#eee"/>')
        svg.append(f'<text x="{x}" y="{TOP + height + 18}" text-anchor="middle">{label(tick)}</text>')
    for tick in ticks(ylow, yhigh, logy):
        if not (ylow <= (math.log10(tick) if logy else tick) <= yhigh + 1e-9):
            continue
        y = position(tick, ylow, yhigh, logy, TOP, height, flip=True)
        svg.append(f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + width}" y2="{y}" stroke="#eee"/>')
        svg.append(f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{label(tick)}</text>')
    svg.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{width}" height="{height}" fill="none" stroke="#888"/>'
    )
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        coords = [
            (
                position(x, xlow, xhigh, logx, LEFT, width),
                position(y, ylow, yhigh, logy, TOP, height, flip=True),
            )
            for x, y in points
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in coords:
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        legend_y = TOP + 10 + index * 20
        svg.append(
            f'<line x1="{LEFT + width + 15}" y1="{legend_y}" x2="{LEFT + width + 35}" '
            f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>'
        )
        svg.append(f'<text x="{LEFT + width + 40}" y="{legend_y + 4}">{name}</text>')
    svg.append("</svg>")
    with open(out, "w") as handle:
        handle.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
