"""Draw benchmarks/chart.svg from benchmarks/results.json: evloop against each peer.

Why it exists: a table of ratios is exact, a picture is what a reader takes in. This reads
the machine-readable results ``run.py --json`` writes (the committed ``results.json`` holds
the current figures, RESULTS.md the same with their commands) and draws, per workload, the
ratio evloop/peer (and evloop.aio/peer) as a horizontal bar on a log scale, with a line at
1.0: right of it evloop is faster. It only draws; it measures nothing.

    python benchmarks/chart.py [--results FILE] [--out FILE]

matplotlib is not a dependency of evloop: it is in the ``bench`` extra
(``pip install -e '.[bench]'``) and in the peers venv (``benchmarks/setup_peers.sh``). When
the running interpreter has no matplotlib, this script runs itself again with the peers
venv's interpreter.
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE / ".peers" / "bin" / "python"
#: the ratio series, in drawing order, with their colours
SERIES = (("evloop/gevent", "#1f77b4"), ("evloop/uvloop", "#ff7f0e"),
          ("evloop/asyncio", "#2ca02c"), ("evloop.aio/uvloop", "#d62728"),
          ("evloop.aio/asyncio", "#9467bd"))


def load(path):
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    rows = [(name, result["ratios"]) for name, result in document["workloads"].items()
            if result["ratios"]]
    return document, rows


def draw(document, rows, out):
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "evloop"  # the same SVG for the same figures
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: a small, searchable file
    import matplotlib.pyplot as plt

    colours = dict(SERIES)
    labelled = set()
    band = 0.84  # of each workload's row; its bars share it
    size = max(len(ratios) for _, ratios in rows)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.13 * sum(len(r) + 1.5 for _, r in rows)))
    for row, (_, ratios) in enumerate(rows):
        present = [name for name, _ in SERIES if name in ratios]
        height = band / max(len(present), size * 0.6)
        for i, name in enumerate(present):
            y = row + (i - (len(present) - 1) / 2) * height
            ratio = ratios[name]
            # a bar from 1.0 to the ratio: right of the line evloop is faster, left slower
            ax.barh(y, ratio - 1, height=height * 0.92, left=1, color=colours[name],
                    label=None if name in labelled else name)
            labelled.add(name)
            ax.text(ratio * (1.02 if ratio >= 1 else 0.98), y, f"{ratio:.2f}",
                    va="center", ha="left" if ratio >= 1 else "right", fontsize=6.5)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # top to bottom, no margin
    ticks = [0.5, 0.75, 1, 1.5, 2, 3, 4, 6]
    ax.xaxis.tick_top()
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}×" for t in ticks])
    ax.minorticks_off()
    low = min(min(r.values()) for _, r in rows)
    high = max(max(r.values()) for _, r in rows)
    ax.set_xlim(min(0.5, low * 0.9), max(6.5, high * 1.1))
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    # the workloads may come from several runs (run.py --json --update): say which
    runs = sorted({result.get("run", document["date"])
                   for result in document["workloads"].values()})
    metrics = {r.get("metric") for r in document.get("runs", {document["date"]: document})
               .values()}
    repeats = sorted({r.get("repeat") for r in document.get("runs", {document["date"]:
                                                                      document}).values()})
    metric = {frozenset(["cpu"]): "ops per CPU second",
              frozenset(["wall"]): "ops per wall second"}.get(frozenset(metrics),
                                                             "see RESULTS.md for each metric")
    when = runs[0] if len(runs) == 1 else f"runs of {runs[0]} to {runs[-1]}"
    ax.set_title(f"evloop / peer (> 1: evloop faster), medians of "
                 f"{'/'.join(map(str, repeats))} interleaved runs, {metric}\n{when}; "
                 + ", ".join(f"{name} {v['version']}" for name, v in
                             document["versions"].items() if name in ("gevent", "uvloop")),
                 fontsize=9, pad=24)
    handles, labels = ax.get_legend_handles_labels()
    order = [labels.index(name) for name, _ in SERIES if name in labels]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8,
              loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=len(order),
              frameon=False)
    fig.tight_layout()
    fmt = Path(out).suffix.lstrip(".") or "svg"
    fig.savefig(out, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(HERE / "results.json"),
                        help="run.py --json output (default: %(default)s)")
    parser.add_argument("--out", default=str(HERE / "chart.svg"),
                        help="the SVG to write (default: %(default)s)")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        # (a venv's python is a symlink to the base interpreter: compare prefixes)
        in_peers = Path(sys.prefix).resolve() == PEERS_PYTHON.parent.parent.resolve()
        if PEERS_PYTHON.exists() and not in_peers:
            os.execv(str(PEERS_PYTHON), [str(PEERS_PYTHON), __file__, *sys.argv[1:]])
        sys.exit("chart.py needs matplotlib: pip install -e '.[bench]', or run "
                 "benchmarks/setup_peers.sh (its venv has it)")
    document, rows = load(args.results)
    if not rows:
        sys.exit(f"{args.results}: no workload has a ratio to draw")
    draw(document, rows, args.out)
    print(f"wrote {args.out} ({len(rows)} workloads)")


if __name__ == "__main__":
    main()
