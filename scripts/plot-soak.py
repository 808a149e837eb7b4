#!/usr/bin/env python3
"""Plots the samples of a soak run (the CSV of crates/server/examples/soak_load.rs) to a
PNG: one panel per metric over time, so a leak or a slow climb shows as a slope.

    scripts/plot-soak.py SOAK.csv docs/soak.png

Needs matplotlib (scripts/soak installs it in a venv from scripts/soak-requirements.txt).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402

STREAMS = ["webhooks", "consume", "catalog"]


def number(value):
    """An empty cell (no request completed in that window) is a gap, not a zero."""
    return float(value) if value != "" else float("nan")


def main(csv_path, png_path):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        sys.exit(f"{csv_path}: fewer than two samples, nothing to plot")
    elapsed = [number(r["elapsed_s"]) for r in rows]
    minutes = [t / 60 for t in elapsed]
    # A sample's counts cover the seconds since the one before (or since the start).
    spans = [b - a for a, b in zip([0.0] + elapsed, elapsed)]

    def series(column, scale=1.0):
        return [number(r[column]) * scale for r in rows]

    def rate(column):
        return [number(r[column]) / span for r, span in zip(rows, spans)]

    panels = [
        ("RSS (MiB)", [("serve", series("rss_kib", 1 / 1024))]),
        ("open file descriptors", [("serve", series("fds"))]),
        ("PostgreSQL connections", [("serve", series("pg_connections"))]),
        ("webhook queue depth (pending + processing)", [("events", series("queue_depth"))]),
        ("p99 latency (ms, from the scheduled time)", [(s, series(f"{s}_p99_ms")) for s in STREAMS]),
        ("answered 200 per second", [(s, rate(f"{s}_ok")) for s in STREAMS]),
    ]
    fig, axes = plt.subplots(3, 2, figsize=(13, 10), sharex=True)
    for ax, (title, lines) in zip(axes.flat, panels):
        for label, values in lines:
            ax.plot(minutes, values, label=label, linewidth=1.2)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("minutes")
    fig.suptitle(f"stripe-manager soak: {len(rows)} samples, {minutes[-1]:.0f} min")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    print(f"plot: {png_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot-soak.py SOAK.csv OUT.png")
    main(sys.argv[1], sys.argv[2])
