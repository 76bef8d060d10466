/* HTTPS for the server (rank 0): the certificate and key of --tls-cert / --tls-key
 * (serve.tls_cert / serve.tls_key), read and checked before listening, and the libmicrohttpd
 * flags and options that serve them through its GnuTLS support. A problem with either file
 * stops the server at start with a message naming the file: it never falls back to plain HTTP. */
#pragma once
#include "cohort/serve.h"
#include "cohort/status.h"

struct MHD_OptionItem;
typedef struct serve_tls serve_tls;

/* Reads and checks o->tls_cert and o->tls_key into *out; *out = NULL when neither is set
 * (plain HTTP). Errors (CH_ERR_CONFIG, *out NULL): only one of the two given; a libmicrohttpd
 * built without TLS (CH_ERR_UNSUPPORTED); a file that is missing, unreadable, too large or not
 * PEM (its name and the reason); an encrypted key; a key that is not the certificate's. Warns
 * (still serving) when the certificate has expired or is not valid yet. */
ch_status serve_tls_load(const ch_serve_opts *o, serve_tls **out);

/* libmicrohttpd's daemon flags for t (MHD_USE_TLS, or 0 when t is NULL) and its options into
 * items[0..3): the certificate, the key, MHD_OPTION_END (only the END when t is NULL), for
 * MHD_OPTION_ARRAY. t must outlive the daemon. */
unsigned serve_tls_mhd(const serve_tls *t, struct MHD_OptionItem *items);

/* "https" or "http", for the log line that says where the server listens. */
const char *serve_tls_scheme(const serve_tls *t);

/* Frees t (the key's bytes are zeroed first). NULL is a no-op. */
void serve_tls_free(serve_tls *t);
