"""A served GPT's /metrics read by Prometheus' own Python parser (prometheus_client's
text_string_to_metric_families, from PyPI), and the series issue 14 asks an operator to find.

Usage: python prom_check.py METRICS_FILE MODEL [--generated N] [--itl N] [--prompt N]
                            [--requests ENDPOINT=N ...] [--min-401 N]

Always: every family parses; the families below exist with their types; every per-model
sample has a non-empty `version` label; inferences >= executions > 0; histograms' buckets
do not decrease and the +Inf bucket equals _count. The options check exact values: generated
tokens, inter-token latency observations, prompt tokens, 200 answers of an endpoint, and at
least N 401s (summed over endpoints).
"""
import argparse
import sys

from prometheus_client.parser import text_string_to_metric_families

# family (as prometheus_client names it: a counter loses "_total") -> type
REQUIRED = {
    "cohort_requests": "counter",
    "cohort_inferences": "counter",
    "cohort_executions": "counter",
    "cohort_pending_requests": "gauge",
    "cohort_prompt_tokens": "counter",
    "cohort_generated_tokens": "counter",
    "cohort_inter_token_latency_seconds": "histogram",
    "cohort_time_to_first_token_seconds": "histogram",
    "cohort_batch_size": "histogram",
}


def check_histogram(fam):
    series = {}
    for s in fam.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "count": None})
        if s.name.endswith("_bucket"):
            series[key]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            series[key]["count"] = s.value
    for key, h in series.items():
        b = sorted(h["buckets"])
        assert b and b[-1][0] == float("inf"), f"{fam.name}{key}: no +Inf bucket"
        assert all(x[1] <= y[1] for x, y in zip(b, b[1:])), f"{fam.name}{key}: buckets decrease"
        assert b[-1][1] == h["count"], f"{fam.name}{key}: +Inf {b[-1][1]} != count {h['count']}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics")
    ap.add_argument("model")
    ap.add_argument("--generated", type=int)
    ap.add_argument("--itl", type=int)
    ap.add_argument("--prompt", type=int)
    ap.add_argument("--requests", action="append", default=[])
    ap.add_argument("--min-401", type=int, default=0)
    a = ap.parse_args()

    fams = {f.name: f for f in text_string_to_metric_families(open(a.metrics).read())}
    for name, typ in REQUIRED.items():
        assert name in fams, f"no family {name} (have {sorted(fams)})"
        assert fams[name].type == typ, f"{name}: type {fams[name].type}, expected {typ}"
    for f in fams.values():
        if f.type == "histogram":
            check_histogram(f)
        for s in f.samples:
            if "model" in s.labels:
                assert s.labels.get("version"), f"{s.name}{s.labels}: no version label"

    def total(fam, **labels):
        fam_samples = [s for s in fams[fam].samples if s.labels.get("model") == a.model
                       and all(s.labels.get(k) == v for k, v in labels.items())
                       and not s.name.endswith(("_created", "_bucket", "_sum"))]
        return sum(s.value for s in fam_samples)

    inf, ex = total("cohort_inferences"), total("cohort_executions")
    assert inf >= ex > 0, f"inferences {inf}, executions {ex}"
    got = {
        "generated": total("cohort_generated_tokens"),
        "itl": total("cohort_inter_token_latency_seconds"),  # its _count
        "prompt": total("cohort_prompt_tokens"),
    }
    for k, v in got.items():
        want = getattr(a, k)
        assert want is None or v == want, f"{k}: {v}, expected {want}"
    for spec in a.requests:
        ep, n = spec.split("=")
        v = total("cohort_requests", endpoint=ep, code="200")
        assert v == int(n), f"requests {ep} 200: {v}, expected {n}"
    n401 = sum(s.value for s in fams["cohort_requests"].samples
               if s.labels.get("code") == "401" and s.name.endswith("_total"))
    assert n401 >= a.min_401, f"401s counted: {n401}, expected at least {a.min_401}"
    print(f"prometheus_client: {len(fams)} families parse; {a.model}: inferences {inf:.0f} / "
          f"executions {ex:.0f}, prompt {got['prompt']:.0f} and generated {got['generated']:.0f} "
          f"tokens, {got['itl']:.0f} inter-token latencies, {n401:.0f} 401s")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        sys.exit(f"FAIL: /metrics: {e}")
