/* Per-process compute setup shared by the commands that run under MPI (train, infer, serve). */
#include "cli/commands.h"

#include "cohort/kernels.h"
#include "cohort/log.h"

void ch_cli_world(const ch_runtime *rt, ch_group *world) {
  /* BLAS belongs to the kernels layer, not to runtime: one BLAS thread per core this rank was
   * bound to, so ranks sharing a node do not oversubscribe it. */
  if (ch_blas_init(rt->ncores) != CH_OK) ch_runtime_fatal(CH_ERR_UNSUPPORTED, "cannot load OpenBLAS");
  ch_log(rt->verbose ? CH_LOG_INFO : CH_LOG_DEBUG, "%d BLAS thread%s, OpenBLAS kernels %s%s",
         rt->ncores, rt->ncores == 1 ? "" : "s", ch_blas_corename(),
         ch_blas_coretype_choice() ? " (chosen by cohort)" : "");
  if (ch_group_world(world) != CH_OK) ch_runtime_fatal(CH_ERR_MPI, "cannot create the world group");
}
