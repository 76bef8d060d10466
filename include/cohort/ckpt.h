/* Checkpoints in parallel HDF5 (the format is docs/checkpoint-format.md).
 * One file per step holds every parameter and optimizer moment as a whole logical tensor
 * (/model/<name>, /optim/<name>/<state>), named by the parameter spec table. Each rank writes
 * and reads only the part of the flat layout it owns (a ch_shard), with collective MPI-IO, so the
 * file does not depend on the world size or strategy that wrote it. Every dataset carries a
 * CRC-32 of its whole tensor, verified on load. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/comm.h"
#include "cohort/model.h"
#include "cohort/status.h"
#include "cohort/tensor.h"

#define CH_CKPT_FORMAT "cohort-checkpoint"
/* 3: a checksum of the root attributes (attrs_crc32), verified on every load; 2: root attributes
 * describe the model (ch_ckpt_model_info). 2 files load with their attributes unverified; 1 files
 * are still read for resuming and inspection, but cannot be loaded as a model. */
#define CH_CKPT_VERSION 3

/* Checkpointing of a training run (the run.checkpoint.* keys, the directory resolved). */
typedef struct ch_ckpt_cfg {
  char dir[CH_PATH_MAX + 16]; /* run.checkpoint.dir, or <run.dir>/checkpoints when that is empty */
  int64_t every;          /* steps between checkpoints; 0 = only on preemption */
  int64_t keep_last, keep_every; /* retention (ch_ckpt_policy) */
} ch_ckpt_cfg;

#define CH_CLASS_NAMES_BYTES 16384

/* What a loader needs to rebuild a model without the training config: the architecture, the
 * data shape it was built for and where its tokenizer comes from. Stored as root attributes
 * (model_type, model_depth, ..., data_features, data_classes, tokenizer, data_path). */
typedef struct ch_ckpt_model_info {
  ch_model_cfg model;
  int64_t features;       /* MLP float inputs per sample (0 for the GPT) */
  int64_t classes;        /* MLP classes, GPT dataset vocabulary (ch_model_create's classes) */
  char tokenizer[16];     /* "none" (rows), "byte" or "gpt2" */
  char data_path[CH_PATH_MAX]; /* the training data (the GPT tokenizer's source) */
  /* The MLP's class names when it was trained on string labels (root attribute
   * data_class_names, a JSON array; absent in older checkpoints): n_class_names (0: none, or
   * `classes`) NUL-terminated names back to back. */
  int n_class_names;
  char class_names[CH_CLASS_NAMES_BYTES];
} ch_ckpt_model_info;

/* Sets info's class names from names[0..n) (n 0 or NULL: none). Errors: CH_ERR_INVALID when
 * they take more than CH_CLASS_NAMES_BYTES (info then has none). */
CH_API ch_status ch_ckpt_set_class_names(ch_ckpt_model_info *info, const char *const *names, int n);
/* Points out[0..info->n_class_names) at info's class names (borrowed from info); returns the
 * count, 0 when it has none. `out` holds at least info->classes pointers. */
CH_API int ch_ckpt_class_names(const ch_ckpt_model_info *info, const char **out);

/* Run state stored in the root attributes. */
typedef struct ch_ckpt_meta {
  int64_t step;        /* optimizer steps completed */
  int64_t samples;     /* global samples consumed: the sampler's global position */
  double epoch;        /* samples / train rows */
  int64_t seed;        /* train.seed; with `samples` the whole RNG state (counter-based RNG) */
  int64_t optim_steps; /* optimizer step count (AdamW bias correction) */
  int world_size;      /* ranks that wrote the checkpoint (information only) */
  char strategy[16];
  char version[32];    /* cohort version that wrote it */
  char created[32];    /* UTC, ISO 8601 */
  char *config;        /* resolved config as YAML, for users; save: borrowed, load: malloc'ed */
  ch_ckpt_model_info model; /* save: written; load: read when has_model */
  int has_model;       /* load: the file holds the model attributes (format version >= 2) */
  int attrs_verified;  /* load: the root attributes' checksum was verified (version >= 3); a
                        * mismatch fails the load */
  /* Summed loss of each step since the last progress line, so that a resumed run prints the
   * same metrics lines as an uninterrupted one. save: borrowed, load: malloc'ed. */
  double *interval_losses;
  int n_interval_losses;
} ch_ckpt_meta;

/* Frees what a load allocated in `m`. */
CH_API void ch_ckpt_meta_free(ch_ckpt_meta *m);

/* One flat buffer laid out by a ch_layout: the parameters (kind NULL, datasets /model/<name>)
 * or one optimizer state (kind "exp_avg", ... : /optim/<name>/<kind>), holding the rank's shard
 * at the elements' flat positions (a whole-layout buffer) or packed (addr). */
typedef struct ch_ckpt_buffer {
  const char *kind;
  float *data;
  ch_addr addr;
} ch_ckpt_buffer;

/* Writes a checkpoint FILE at `path` (not committed: see ch_ckpt_save). Collective over g: an
 * MPI group (parallel HDF5), or ch_group_self for one process without MPI (HDF5's default
 * driver; the same file).
 * This rank supplies its shard `own` of each buffer; the ranks' shards together must cover
 * every parameter, and a parameter may meet only one segment of a shard (so that each rank's
 * piece of a tensor is contiguous). The outcome is agreed: every rank returns the same status.
 * Errors: CH_ERR_IO naming the file (cannot create, disk full), CH_ERR_INVALID. */
CH_API ch_status ch_ckpt_write(const ch_group *g, const char *path, const ch_layout *l,
                        const ch_ckpt_buffer *bufs, int nbufs, const ch_shard *own,
                        const ch_ckpt_meta *meta);

/* Reads the checkpoint at `path` into shard `own` of each buffer (padding elements
 * get 0) and its metadata into *meta. Collective over g; every rank returns the same status.
 * Shapes are checked against the layout and each tensor's checksum is verified when the
 * ranks' shards together cover it. Errors: CH_ERR_FORMAT naming the file and the dataset
 * (missing, wrong shape, checksum mismatch, not a cohort checkpoint), CH_ERR_IO (cannot open,
 * truncated). */
CH_API ch_status ch_ckpt_read(const ch_group *g, const char *path, const ch_layout *l,
                       ch_ckpt_buffer *bufs, int nbufs, const ch_shard *own, ch_ckpt_meta *meta);

/* Retention policy over the checkpoints this process committed (never a file it did not write,
 * such as an earlier run's): the newest keep_last are kept, plus every step divisible by
 * keep_every (0: none). */
typedef struct ch_ckpt_policy {
  int64_t keep_last, keep_every;
} ch_ckpt_policy;

/* Saves and commits a checkpoint of `meta->step` in `dir` (created if needed): writes
 * step-XXXXXXXX.h5.partial, closes it, renames it to step-XXXXXXXX.h5, fsyncs the directory,
 * replaces the `latest` pointer file atomically, then prunes this process's earlier saves by
 * `policy` (files it did not commit are kept, said once). The space the file needs is checked
 * and reserved before HDF5 writes anything (a disk full during the save is an agreed CH_ERR_IO
 * naming the file, never a hang). A failure leaves the previous checkpoints and `latest`
 * untouched and removes the partial file. Collective; the committed path goes to `out` (may
 * be NULL). Errors: as ch_ckpt_write. */
CH_API ch_status ch_ckpt_save(const ch_group *g, const char *dir, const ch_ckpt_policy *policy,
                       const ch_layout *l, const ch_ckpt_buffer *bufs, int nbufs,
                       const ch_shard *own, const ch_ckpt_meta *meta, char *out, size_t out_size);

/* Committed checkpoints in `dir`, newest step first (partial files are ignored). `*paths` is
 * malloc'ed, each entry too; free with ch_ckpt_list_free. A missing directory is an empty
 * list. Local (no communication). Errors: CH_ERR_IO, CH_ERR_NOMEM. */
CH_API ch_status ch_ckpt_list(const char *dir, char ***paths, int *n);
CH_API void ch_ckpt_list_free(char **paths, int n);

/* The checkpoint a PATH names: the file itself, or for a directory the file its `latest` pointer
 * names (relative to the directory). Local. Errors: CH_ERR_IO, CH_ERR_FORMAT (no or an empty
 * `latest`). */
CH_API ch_status ch_ckpt_resolve(const char *path, char *out, size_t size);

/* ---- Serial access for tools (`cohort ckpt inspect|export`); no MPI needed ------------------- */

/* One dataset of a checkpoint file. */
typedef struct ch_ckpt_tensor {
  char name[CH_NAME_MAX + 64];  /* dataset path: "/model/<name>" or "/optim/<name>/<kind>" */
  int ndim;                     /* may exceed CH_MAX_DIMS in a foreign file (then unreadable) */
  int64_t shape[CH_MAX_DIMS];
  int64_t numel;
  char dtype[16];               /* "float32" for cohort's tensors; else what the file holds */
} ch_ckpt_tensor;

/* A checkpoint opened read-only by one process with HDF5's default (sec2) driver. */
typedef struct ch_ckpt_file {
  char path[CH_PATH_MAX * 2];
  int format_version;
  ch_ckpt_meta meta;
  ch_ckpt_tensor *tensors;      /* /model then /optim datasets, each in natural name order */
  int ntensors;
  int64_t h5;                   /* private: the HDF5 file id */
} ch_ckpt_file;

/* What a tensor's crc32 attribute says and what its data hashes to (zlib CRC-32 of the
 * little-endian float32 bytes in row-major order). */
typedef struct ch_ckpt_check {
  int has_crc;                  /* 0: the dataset has no crc32 attribute */
  uint32_t stored, computed;
} ch_ckpt_check;

/* Opens the checkpoint at `path`, checks its format attributes and reads its metadata, and lists
 * its tensors. Local. Errors: CH_ERR_IO (cannot open: missing, truncated, not HDF5),
 * CH_ERR_FORMAT (not a cohort checkpoint, a newer format version, bad attributes),
 * CH_ERR_NOMEM. On success close with ch_ckpt_close. */
CH_API ch_status ch_ckpt_open(const char *path, ch_ckpt_file *f);
CH_API void ch_ckpt_close(ch_ckpt_file *f);
/* The tensor of model parameter `name` (a spec-table name: dataset /model/<name>) in f's list,
 * or NULL when the file has none. */
CH_API const ch_ckpt_tensor *ch_ckpt_model_tensor(const ch_ckpt_file *f, const char *name);

/* Reads tensor `t` of `f` whole and checksums it. `data` (t->numel floats, row-major,
 * little-endian: native on x86-64 and aarch64) may be NULL to only verify. A checksum mismatch
 * is not an error here: compare check->stored with check->computed. Errors: CH_ERR_FORMAT /
 * CH_ERR_IO naming the file and the dataset (not float32, unreadable), CH_ERR_NOMEM. */
CH_API ch_status ch_ckpt_read_tensor(ch_ckpt_file *f, const ch_ckpt_tensor *t, float *data,
                              ch_ckpt_check *check);

/* Reads part of tensor `t`: along dimension `dim` the nblocks ranges [start[b], start[b] + count)
 * (everything else whole), concatenated in row-major order of the file (dim -1: the whole
 * tensor). No checksum (it covers the whole tensor). Errors: CH_ERR_FORMAT, CH_ERR_IO. */
CH_API ch_status ch_ckpt_read_slab(ch_ckpt_file *f, const ch_ckpt_tensor *t, int dim, int nblocks,
                            const int64_t *start, int64_t count, float *data);

/* Writes the model tensors of `f` (/model/<name>, not the optimizer state) to `out` as float32
 * safetensors named <name> (PyTorch state_dict names), with step, format and versions in
 * __metadata__. Each tensor's checksum is verified first: a corrupt checkpoint leaves `out`
 * untouched. Atomic (`out`.tmp, fsync, rename, fsync of the directory). Tensor count and file
 * size go to *ntensors and *bytes (may be NULL). Errors: CH_ERR_FORMAT naming the dataset
 * (checksum mismatch or missing, not float32, no model tensors), CH_ERR_IO, CH_ERR_NOMEM. */
CH_API ch_status ch_ckpt_export_safetensors(ch_ckpt_file *f, const char *out, int *ntensors,
                                     int64_t *bytes);

/* ---- Hugging Face GPT-2 (src/ckpt/hf.c; docs/checkpoint-format.md) ------------------------ */

/* Writes the GPT2Config (config.json) of the GPT in `f` to `path`, atomically: with the
 * safetensors export, a folder GPT2LMHeadModel.from_pretrained loads (model_type gpt2, the
 * shape, activation_function gelu_new, layer_norm_epsilon CH_GPT_LN_EPS, tied embeddings,
 * dropouts 0, bos/eos 50256 for the GPT-2 tokenizer). Errors: CH_ERR_INVALID (not a GPT: the
 * MLP has no Hugging Face config), CH_ERR_FORMAT (no wte.weight), CH_ERR_IO. */
CH_API ch_status ch_ckpt_hf_config_write(const ch_ckpt_file *f, const char *path);

/* Reads a Hugging Face GPT-2 model by one process: `src` is a folder with config.json and
 * model.safetensors, or a .safetensors file (its shape from the config.json beside it, or,
 * without one, from the tensors and `n_head`, which no shape shows; 0: none given). Names may
 * carry GPT2LMHeadModel's "transformer." prefix; F32, F16 and BF16 are read as float32. Every
 * spec-table tensor must be there with its exact shape; lm_head.weight, when present, must equal
 * wte.weight; other tensors (attn.bias buffers) are counted in *ignored. *info gets the shape
 * (vocab_size and classes the file's vocabulary, tokenizer "none", no data path), *model a
 * layout-only model (ch_model_destroy) and *params its parameters on the host
 * (ch_free_aligned). Errors: CH_ERR_INVALID naming what is wrong (a missing tensor or key, a
 * shape with the expected one, an activation, epsilon, MLP width or attention variant cohort
 * does not compute, an untied head, n_head missing), CH_ERR_IO, CH_ERR_NOMEM. */
CH_API ch_status ch_ckpt_hf_read(const char *src, int n_head, ch_ckpt_model_info *info,
                                 ch_model **model, float **params, int *ignored);

/* Commits a checkpoint of the parameters `params` (laid out by `l`, host memory) alone, no
 * optimizer state, in `dir` by this process without MPI: ch_ckpt_save over ch_group_self (the
 * same file, commit and `latest`). Errors: as ch_ckpt_save. */
CH_API ch_status ch_ckpt_commit_params(const char *dir, const ch_layout *l, float *params,
                                       const ch_ckpt_meta *meta, char *out, size_t out_size);

/* Rebuilds the model a checkpoint holds, by one process, from its model attributes (never the
 * stored YAML): *info gets them, *model a model on backend `be` for up to `max_batch` samples
 * (ch_model_destroy), *params its parameters in be's memory (free with ch_op_free(be, ...);
 * on the CPU that is ch_free_aligned), every checksum verified. Errors: as
 * ch_ckpt_open, CH_ERR_FORMAT naming the dataset (missing, wrong shape, checksum mismatch),
 * CH_ERR_FORMAT also for a file without model attributes (format version 1), CH_ERR_CONFIG
 * (a stored model this build cannot make), CH_ERR_NOMEM. */
CH_API ch_status ch_ckpt_load_model(const char *path, const ch_backend *be, int max_batch,
                                    ch_ckpt_model_info *info, ch_model **model, float **params);

/* Loads a checkpoint for tensor-parallel serving over g: *info gets its model attributes, *model a
 * layout-only model on backend `be` (its spec table: ch_model_destroy), *local and *slices this
 * rank's layout and slices (ch_tp_layout), *params its part of every parameter in HOST memory
 * (ch_free_aligned). Each rank
 * reads only its hyperslabs (ch_ckpt_read_slab), whatever world size wrote the file; checksums
 * are verified tensor by tensor, each by one rank. Collective; every rank returns an error when
 * any failed. Errors: as ch_ckpt_load_model, CH_ERR_INVALID (a split this rank count cannot
 * make). */
typedef struct ch_tp_slice ch_tp_slice;
CH_API ch_status ch_ckpt_load_tp(const ch_group *g, const char *path, const ch_backend *be,
                                 ch_ckpt_model_info *info, ch_model **model, ch_layout *local,
                                 ch_tp_slice **slices, float **params);
