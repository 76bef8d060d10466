# The ecosystem's clients from PyPI, for the client tests (test_serve_perf_analyzer.sh,
# test_serve_genai_perf.sh) and bench/serve.sh (sourced, never run):
#   client_venv DIR PACKAGE...   a venv holding the packages (pinned by the caller), cached
#   perf_analyzer_env            what Triton's perf_analyzer binary needs to start
# Both return non-zero with a message on stderr when they cannot: the tests skip (77) then.

# client_venv DIR PACKAGE...: sets $venv to DIR/venv-KEY, KEY a hash of the package list and
# the Python version, so that a changed list makes a new venv and an unchanged one is reused
# (a CI run pays pip's minutes once per build directory). Made under a lock (ctest -j may start
# two tests that want it) and marked complete only once pip succeeded; an incomplete one is
# made again. pip's output: $venv.pip.log. With CLIENT_VENV_SYSTEM_SITE=1 the venv also sees
# Debian's packages (--system-site-packages: python3-torch for transformers), part of the KEY.
client_venv() {
  local dir=$1 key system=()
  shift
  [ "${CLIENT_VENV_SYSTEM_SITE:-0}" = 1 ] && system=(--system-site-packages)
  key=$({ printf '%s\n' "$@" "${system[@]}"; /usr/bin/python3 --version; } | sha256sum | cut -c1-12)
  venv=$dir/venv-$key
  mkdir -p "$dir" || return 1
  (
    flock 9
    [ -f "$venv/.complete" ] && exit 0
    rm -rf "$venv"
    /usr/bin/python3 -m venv "${system[@]}" "$venv" > "$venv.pip.log" 2>&1 || exit 1
    timeout 900 "$venv/bin/pip" install -q --disable-pip-version-check "$@" \
      >> "$venv.pip.log" 2>&1 || exit 1
    touch "$venv/.complete"
  ) 9> "$dir/.lock" ||
    { echo "pip install $* failed (no PyPI?):" >&2; tail -3 "$venv.pip.log" >&2; return 1; }
}

# What perf_analyzer_env needs in the venv (the client tests and bench/serve.sh share it).
perf_analyzer_packages=("tritonclient[http]==2.47.0" "nvidia-cuda-runtime-cu12==12.9.79")

# perf_analyzer_env: after client_venv with perf_analyzer_packages: tritonclient[http] 2.47.0 (its wheel ships the
# perf_analyzer binary; the PyPI package "perf-analyzer" is an empty placeholder) and
# nvidia-cuda-runtime-cu12. Sets $perf_analyzer and exports LD_LIBRARY_PATH with the venv's
# libcudart.so.12 (the binary links it even for HTTP over the network). Installs Debian's
# libb64-0d, which it links too, when missing and we are root (CI); then checks that every
# library it needs resolves.
perf_analyzer_env() {
  perf_analyzer=$venv/bin/perf_analyzer
  [ -x "$perf_analyzer" ] || { echo "no perf_analyzer in $venv" >&2; return 1; }
  local cudart
  cudart=$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cuda_runtime/lib 2>/dev/null | head -1)
  [ -n "$cudart" ] || { echo "no libcudart in $venv (nvidia-cuda-runtime-cu12)" >&2; return 1; }
  export LD_LIBRARY_PATH=$cudart${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if ! /sbin/ldconfig -p | grep -q 'libb64\.so\.0d' && [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends libb64-0d ||
      { apt-get update -q && apt-get install -y -q --no-install-recommends libb64-0d; }; } \
      > "$venv.apt.log" 2>&1 || true
  fi
  local missing
  missing=$(ldd "$perf_analyzer" | awk '/not found/ {print $1}' | tr '\n' ' ')
  [ -z "$missing" ] ||
    { echo "perf_analyzer cannot start: missing $missing(Debian's libb64-0d)" >&2; return 1; }
}
