#!/usr/bin/env python3
"""Prints the per-run median ratios of bench/run.sh's results.tsv.

  ratios.py RESULTS.tsv

Columns of the input: run, scenario, configuration, round, decode seconds,
wall seconds, and optionally user and system CPU seconds. A ratio is the
median over rounds of (configuration / none) measured in the same round;
CPU seconds are medians.
"""
import collections
import statistics
import sys


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
