/* Serving from the training ranks: rank 0 runs the HTTP front end (KServe V2, OpenAI
 * completions, Prometheus metrics) and the batcher; every rank runs the tensor-parallel forward
 * of its slice of the model in a leader/follower loop (docs/serving.md). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/comm.h"
#include "cohort/ckpt.h"
#include "cohort/device.h"
#include "cohort/status.h"

/* The serve.* keys of the training config and the `cohort serve` flags are the same key rows
 * (src/train/config.c) over these fields; max_body_bytes, max_connections, port_file and
 * data_path are flags only. */
typedef struct ch_serve_opts {
  char host[64];              /* bind address; 127.0.0.1 unless told otherwise */
  int port;                   /* 0: an ephemeral port (printed, and written to port_file) */
  char model_name[128];       /* "" = the model type */
  char api_key[128];          /* "" = no authentication; else "Authorization: Bearer KEY" */
  int metrics_need_key;       /* /metrics asks for the API key too (else open, as the health
                                 and readiness probes always are) */
  int max_batch_size;         /* V2 rows per batch, GPT sequences at once */
  int64_t max_queue_delay_us; /* how long the batcher waits to fill a V2 batch */
  int max_queue_size;         /* waiting requests beyond this get 503 */
  double request_timeout;     /* seconds a request may wait and run (504 after) */
  size_t max_body_bytes;      /* larger bodies get 413 */
  int max_connections;
  int max_connections_per_client; /* per client IP address; 0 = half of max_connections */
  double read_deadline;       /* seconds a request's headers and body may take to arrive, from
                                 its connection's start (or its previous request's end); a
                                 slower one is cut; 0 = only the inactivity --timeout */
  double watchdog_timeout;    /* seconds a rank may wait in one collective before the job is
                                 aborted naming the hung rank (run.watchdog_timeout's meaning
                                 for serving); 0 = off */
  char port_file[512];        /* "" or a file that receives the bound port (tests) */
  char data_path[CH_PATH_MAX]; /* GPT tokenizer source; "" = the model's (ch_ckpt_model_info) */
  char model_repository[CH_PATH_MAX]; /* the directory tree repository loads may read from;
                                         "" = the served checkpoint's directory */
  char tls_cert[CH_PATH_MAX];  /* PEM certificate (chain) to serve HTTPS with; "" = plain HTTP */
  char tls_key[CH_PATH_MAX];   /* its unencrypted PEM private key; with tls_cert or neither */
  char access_log[CH_PATH_MAX]; /* "" = none, "-" = stderr, else a file of one JSON line per
                                   request (src/serve/access_log.h) */
  ch_device_cfg device;       /* where each rank computes its slice (the `device` and `precision`
                                 keys; cohort serve --device/--precision) */
} ch_serve_opts;

/* Defaults: 127.0.0.1:8000, batch 8, delay 2000 us, queue 256, timeout 60 s, body 16 MiB,
 * 256 connections (128 per client), requests arriving within 30 s, watchdog 300 s. */
CH_API void ch_serve_opts_default(ch_serve_opts *o);

/* Serves the checkpoint at `path` (a file, or a directory: its `latest`) on every rank of g:
 * each rank loads its tensor-parallel slice (hyperslabs), rank 0 listens. Returns on shutdown
 * (SIGTERM or SIGUSR1 to any rank: stop accepting, finish what was accepted, every rank returns
 * CH_OK). Runs the collective watchdog (o->watchdog_timeout): a hung rank ends the job.
 * Collective. Errors: loading (as ch_ckpt_load_tp), CH_ERR_IO (cannot listen). */
CH_API ch_status ch_serve_checkpoint(const ch_group *g, const char *path, const ch_serve_opts *o);

/* Serves the parameters a training run holds in memory (every rank the full flat buffer laid
 * out by info's model and data shape), re-laid out into tensor-parallel slices; no file round
 * trip. `step` is the version; `ckpt_dir` is where "latest" reloads look (may be NULL).
 * Collective. */
CH_API ch_status ch_serve_params(const ch_group *g, const ch_ckpt_model_info *info, const float *params,
                          int64_t step, const char *ckpt_dir, const ch_serve_opts *o);
