"""What the bench/*.sh drivers' report scripts share when they read their run logs (they run
with PYTHONPATH=bench): the last `summary: key=value ...` line of a log, the `# load` line
the drivers write, and the median."""
from cohort_peer import median as _median


def median(v):
    """The median of v; NaN when v is empty."""
    v = list(v)
    return _median(v) if v else float("nan")


def summary_text(path):
    """The last `summary:` line of a log as {key: value string}; None when the file is missing
    or has none."""
    try:
        with open(path) as f:
            lines = [l for l in f if l.startswith("summary:")]
    except OSError:
        return None
    if not lines:
        return None
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:])


def summary(path):
    """summary_text with every value a float."""
    kv = summary_text(path)
    return None if kv is None else {k: float(v) for k, v in kv.items()}


def log_load(path):
    """The 1-minute load average of the driver's `# load A B C` line in a log, or "?"."""
    try:
        with open(path) as f:
            for l in f:
                if l.startswith("# load "):
                    return l.split()[2]
    except OSError:
        pass
    return "?"
