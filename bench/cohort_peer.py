"""What the Python peers of the benchmarks read from cohort: its YAML configs (flat
"section.key" -> "value") and its checkpoint directories (the `latest` pointer)."""
import os


def flat_yaml_text(text):
    """Nested mappings of scalars -> {"section.key": "value"} (enough for cohort configs)."""
    out, stack = {}, []
    for line in text.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, val = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        val = val.strip()
        if val == "":
            stack.append((indent, key))
        else:
            out[".".join([s[1] for s in stack] + [key])] = val.strip("'\"")
    return out


def flat_yaml(path):
    with open(path) as f:
        return flat_yaml_text(f.read())


def resolve_checkpoint(path):
    """A checkpoint file, or the file a checkpoint directory's `latest` names."""
    if os.path.isdir(path):
        with open(os.path.join(path, "latest")) as f:
            name = f.readline().strip()
        return name if name.startswith("/") else os.path.join(path, name)
    return path
