#!/usr/bin/env bash
# Checks an installed cohort (prefix as $1): the binary runs, headers and library are there,
# and a consumer program builds against it through pkg-config and through find_package(cohort).
set -euo pipefail
prefix=$1
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
test -x "$prefix/bin/cohort"
"$prefix/bin/cohort" version
test -f "$prefix/include/cohort/cohort.h"
test -f "$libdir/pkgconfig/cohort.pc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/consumer.c" <<'C'
#include <cohort/cohort.h>
#include <stdio.h>
int main(int argc, char **argv) {
  ch_runtime *rt;
  if (ch_runtime_init(&argc, &argv, NULL, &rt) != CH_OK) return 1;
  float x[3] = {1, 2, 3};
  ch_group g;
  if (ch_group_world(&g) != CH_OK || ch_blas_init(rt->ncores) != CH_OK) return 1;
  if (ch_comm_allreduce(&g, x, 3, CH_F32, CH_SUM, NULL) != CH_OK) return 1;
  printf("consumer: rank %d of %d, sum %g, BLAS %s\n", rt->world_rank, rt->world_size, x[2], ch_blas_corename());
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return x[2] == 3.0f * rt->world_size ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# shellcheck disable=SC2046
cc "$work/consumer.c" -o "$work/consumer" $(pkg-config --cflags --libs cohort) -Wl,-rpath,"$libdir"
mpirun --allow-run-as-root --oversubscribe -n 2 "$work/consumer"
# CMake consumer through the exported package.
mkdir -p "$work/cm"
cat > "$work/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(cohort REQUIRED)
add_executable(consumer ../consumer.c)
target_link_libraries(consumer PRIVATE cohort::cohort)
CM
cmake -S "$work/cm" -B "$work/cm/build" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$work/cm/build" > /dev/null
LD_LIBRARY_PATH="$libdir" "$work/cm/build/consumer"
echo "install check passed"
