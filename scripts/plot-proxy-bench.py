#!/usr/bin/env python3
"""Draws docs/proxy-vs-nginx.png from the raw output of scripts/bench-proxy.sh recorded in
docs/benchmarks.md (or from a file given as the first argument). Needs matplotlib
(`pip install matplotlib`)."""
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

root = Path(__file__).resolve().parent.parent
if len(sys.argv) > 1:
    raw = Path(sys.argv[1]).read_text()
else:
    doc = (root / "docs/benchmarks.md").read_text()
    raw = doc.split("Raw output of that run:", 1)[1].split("```text", 1)[1].split("```", 1)[0]

# Hit throughput: "### <proxy>" followed by "Requests/sec: N" and "99% Xms".
hits = {}
for name, block in re.findall(r"### (\S+)\n(.*?)(?=\n###|\n## |\Z)", raw, re.S):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", block)
    p99 = re.search(r"99%\s+([\d.]+)ms", block)
    if rps and p99:
        hits[name] = (float(rps.group(1)), float(p99.group(1)))

# Outage rows: | proxy | fault | requests | answered | stale | statuses | calls | p50 | p99 |
outage = {}
for row in re.findall(r"^\| (maple-proxy|nginx) \| (503|hang) \|(.*)$", raw, re.M):
    cells = [c.strip() for c in row[2].split("|")]
    outage[(row[0], row[1])] = (int(cells[4]), float(cells[6]))

names = ["maple-proxy", "nginx"]
colors = ["#2b7bba", "#999999"]
fig, axes = plt.subplots(1, 3, figsize=(13, 4))

ax = axes[0]
ax.bar(names, [hits[n][0] for n in names], color=colors)
ax.set_title("Cache hit, 350 KB body (wrk -c64)")
ax.set_ylabel("requests/s")
for i, n in enumerate(names):
    ax.annotate(f"p99 {hits[n][1]:.1f} ms", (i, hits[n][0]), ha="center", va="bottom")

width = 0.38
for ax, column, fmt, title in [
    (axes[1], 0, "%d", "Calls reaching a failing upstream in 60 s"),
    (axes[2], 1, "%.1f", "Client p99 (ms) during the outage"),
]:
    for j, n in enumerate(names):
        values = [outage[(n, f)][column] for f in ["503", "hang"]]
        xs = [k + (j - 0.5) * width for k in range(2)]
        ax.bar_label(ax.bar(xs, values, width, label=n, color=colors[j]), fmt=fmt)
    ax.set_yscale("log")
    ax.set_xticks([0, 1], ["upstream 503s", "upstream hangs"])
    ax.set_title(title)
    ax.legend()

fig.suptitle("maple-proxy vs nginx proxy_cache (scripts/bench-proxy.sh, 2 cores shared with the load)")
fig.tight_layout()
out = root / "docs/proxy-vs-nginx.png"
fig.savefig(out, dpi=110)
print(out)
