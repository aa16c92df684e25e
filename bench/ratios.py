#!/usr/bin/env python3
"""Prints the per-run median ratios of bench/run.sh's results.tsv.

  ratios.py RESULTS.tsv

Columns of the input: run, scenario, configuration, round, decode seconds,
wall seconds, and optionally user and system CPU seconds. A ratio is the
median over rounds of (configuration / none) measured in the same round;
CPU seconds are medians. Then, per scenario and configuration, the decode
ratios of all runs pooled: their median and a 95% bootstrap interval of it
(2,000 resamples, fixed seed), the figure that noise between runs moves
least.
"""
import collections
import random
import statistics
import sys


def pooled(table, order):
    """Prints the decode ratios of every run pooled, per scenario."""
    rng = random.Random(1)
    print(f"\npooled over runs: {'scenario':10} {'config':7} {'rounds':>6} {'decode ratio':>12} {'95% interval':>13}")
    for scen in sorted({s for _, s in table}):
        for conf in order:
            rs = [r[0] for (run, s), confs in table.items() if s == scen for r in confs.get(conf, [])]
            if not rs:
                continue
            boot = sorted(statistics.median(rng.choices(rs, k=len(rs))) for _ in range(2000))
            print(f"{'':17} {scen:10} {conf:7} {len(rs):6} {statistics.median(rs):12.3f} "
                  f"{boot[49]:6.3f}-{boot[1949]:.3f}")


def main():
    rows = collections.defaultdict(dict)          # (run, scen, round) -> conf -> (decode, wall, user, sys)
    order = []                                    # configurations in order of appearance
    for line in open(sys.argv[1]):
        run, scen, conf, rnd, *values = line.rstrip("\n").split("\t")
        values = [float(v) for v in values] + [float("nan")] * (4 - len(values))
        rows[(run, scen, rnd)][conf] = tuple(values)
        if conf not in order:
            order.append(conf)
    table = collections.defaultdict(lambda: collections.defaultdict(list))
    base = collections.defaultdict(list)
    for (run, scen, rnd), confs in rows.items():
        if "none" not in confs:
            continue
        b = confs["none"]
        base[(run, scen)].append(b)
        for conf, v in confs.items():
            if conf != "none":
                table[(run, scen)][conf].append((v[0] / b[0], v[1] / b[1], v[2], v[3]))
    print(f"{'run':>3} {'scenario':10} {'none: decode s':>14} {'wall s':>7} {'CPU user/sys s':>15}   "
          f"{'config':7} {'decode ratio':>12} {'wall ratio':>10} {'CPU user/sys s':>15}")
    med = statistics.median
    for key in sorted(table):
        run, scen = key
        b = base[key]
        lead = (f"{run:>3} {scen:10} {med(x[0] for x in b):14.4f} {med(x[1] for x in b):7.3f} "
                f"{med(x[2] for x in b):7.2f}/{med(x[3] for x in b):<7.2f}")
        for conf in sorted(table[key], key=order.index):
            rs = table[key][conf]
            print(f"{lead}   {conf:7} {med(r[0] for r in rs):12.3f} {med(r[1] for r in rs):10.3f} "
                  f"{med(r[2] for r in rs):7.2f}/{med(r[3] for r in rs):<7.2f}")
            lead = " " * len(lead)
    pooled(table, [c for c in order if c != "none"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
