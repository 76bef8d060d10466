#!/usr/bin/python3
"""cohort's Prometheus render, read by the reference parser (Debian's python3-prometheus-client).

Usage: test_metrics_prom.py PATH/TO/test_metrics
Runs `test_metrics --dump RENDER EXPECT`, parses RENDER with
prometheus_client.parser.text_string_to_metric_families and compares every family (name, type,
help, order) and every sample (name, labels, value, order) with EXPECT, which the C side wrote
from its own bookkeeping (hex floats, so equality is exact). Also checks the histogram
invariants: cumulative buckets, le="+Inf" last, _count equal to the +Inf bucket.
Exits 77 (skip) when prometheus_client cannot be imported.

prometheus_client's 0.0.4 parser names a counter family without its _total suffix (its samples
keep it); the expectations are adjusted for that. It strips whitespace at the ends of a HELP
line, so the C side uses help texts without such whitespace.
"""
import math
import os
import subprocess
import sys
import tempfile

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client not importable; skipping (apt install python3-prometheus-client)")
    sys.exit(77)


def unhex(t):
    return "" if t == "-" else bytes.fromhex(t).decode("utf-8")


def read_expectations(path):
    fams = []
    with open(path, encoding="ascii") as f:
        for line in f:
            tok = line.split()
            if tok[0] == "F":
                fams.append({"name": unhex(tok[1]), "type": tok[2], "help": unhex(tok[3]),
                             "samples": []})
            else:
                n = int(tok[3])
                labels = {unhex(tok[4 + 2 * i]): tok[5 + 2 * i] for i in range(n)}
                labels = {k: (float.fromhex(v) if k == "le" else unhex(v))
                          for k, v in labels.items()}
                fams[-1]["samples"].append((unhex(tok[1]), labels, float.fromhex(tok[2])))
    return fams


def same_number(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def check_family(got, want, errors):
    name = want["name"]
    if want["type"] == "counter" and name.endswith("_total"):
        name = name[:-6]
    if (got.name, got.type, got.documentation) != (name, want["type"], want["help"]):
        errors.append(f"family {(got.name, got.type, got.documentation)!r} != "
                      f"{(name, want['type'], want['help'])!r}")
        return
    if len(got.samples) != len(want["samples"]):
        errors.append(f"{name}: {len(got.samples)} samples, want {len(want['samples'])}")
        return
    for s, (wname, wlabels, wvalue) in zip(got.samples, want["samples"]):
        labels = dict(s.labels)
        if "le" in wlabels:
            le = labels.get("le", "")
            if (wlabels["le"] == math.inf) != (le == "+Inf") or float(le) != wlabels["le"]:
                errors.append(f"{s.name}{labels}: le {le!r}, want {wlabels['le']!r}")
            labels["le"] = float(le)
        if s.name != wname or labels != wlabels or not same_number(s.value, wvalue):
            errors.append(f"sample {s.name}{labels} {s.value!r} != {wname}{wlabels} {wvalue!r}")
    if got.type == "histogram":
        check_histogram(got, errors)


def check_histogram(fam, errors):
    series = {}
    for s in fam.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, []).append(s)
    for key, samples in series.items():
        buckets = [s for s in samples if s.name.endswith("_bucket")]
        count = [s.value for s in samples if s.name.endswith("_count")]
        values = [b.value for b in buckets]
        if buckets[-1].labels["le"] != "+Inf" or values != sorted(values) or count != [values[-1]]:
            errors.append(f"{fam.name}{dict(key)}: histogram invariants broken")


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        render, expect = os.path.join(d, "render.txt"), os.path.join(d, "expect.txt")
        subprocess.run([exe, "--dump", render, expect], check=True)
        with open(render, encoding="utf-8") as f:
            text = f.read()
        want = read_expectations(expect)
    got = list(text_string_to_metric_families(text))
    errors = []
    if [f.name for f in got] != [w["name"][:-6] if w["type"] == "counter" and
                                 w["name"].endswith("_total") else w["name"] for w in want]:
        errors.append(f"families {[f.name for f in got]} != {[w['name'] for w in want]}")
    else:
        for g, w in zip(got, want):
            check_family(g, w, errors)
    nsamples = sum(len(f.samples) for f in got)
    if errors:
        print("\n".join(errors[:20]))
        print(f"FAIL: {len(errors)} mismatches")
        return 1
    print(f"prometheus_client parsed {len(got)} families, {nsamples} samples: all as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
