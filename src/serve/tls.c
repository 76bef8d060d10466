/* HTTPS (src/serve/tls.h): the certificate and key are read and checked here with GnuTLS, the
 * library libmicrohttpd serves TLS with, so that every problem is reported before listening
 * with the file it is about; libmicrohttpd alone would only fail to start ("cannot listen"). */
#include "serve/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/log.h"

struct serve_tls {
  char *cert, *key; /* PEM text, NUL-terminated */
  size_t key_len;
};

/* PEM files hold a few certificates and one key: anything larger is not one. */
#define PEM_MAX ((long)1 << 20)

/* Reads a whole PEM file into *out (NUL-terminated). `what` names it in errors, e.g.
 * "TLS certificate (--tls-cert)". */
static ch_status read_pem(const char *what, const char *path, char **out, size_t *len) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return CH_FAIL(CH_ERR_CONFIG, "%s %s: %s", what, path, strerror(errno));
  char *buf = malloc((size_t)PEM_MAX + 1);
  size_t n = buf ? fread(buf, 1, (size_t)PEM_MAX + 1, f) : 0;
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (!buf) return CH_FAIL(CH_ERR_NOMEM, "%s %s: out of memory", what, path);
  if (err || n == 0 || n > (size_t)PEM_MAX) {
    free(buf);
    return CH_FAIL(CH_ERR_CONFIG, "%s %s: %s", what, path,
                   err      ? strerror(err)
                   : n == 0 ? "empty file"
                            : "larger than 1 MiB: not a PEM file");
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return CH_OK;
}

/* A certificate that is not valid now still serves (clocks differ, renewals are late), but
 * clients will refuse it: say so at start. */
static void warn_validity(gnutls_x509_crt_t crt, const char *path) {
  time_t now = time(NULL), from = gnutls_x509_crt_get_activation_time(crt),
         until = gnutls_x509_crt_get_expiration_time(crt);
  char when[32];
  struct tm tm;
  if (until != (time_t)-1 && until < now) {
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&until, &tm));
    CH_WARN("TLS certificate %s expired on %s: clients will refuse it", path, when);
  } else if (from != (time_t)-1 && from > now) {
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&from, &tm));
    CH_WARN("TLS certificate %s is valid only from %s: clients will refuse it until then", path,
            when);
  }
}

/* The certificate file holds at least one PEM certificate (the server's first, then its
 * chain). */
static ch_status check_cert(const char *path, const gnutls_datum_t *pem) {
  gnutls_x509_crt_t *crts = NULL;
  unsigned n = 0;
  int rc = gnutls_x509_crt_list_import2(&crts, &n, pem, GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0 || n == 0) {
    if (rc >= 0) gnutls_free(crts);
    return CH_FAIL(CH_ERR_CONFIG, "TLS certificate (--tls-cert) %s: not a PEM certificate (%s)",
                   path, rc < 0 ? gnutls_strerror(rc) : "no CERTIFICATE block");
  }
  warn_validity(crts[0], path);
  for (unsigned i = 0; i < n; i++) gnutls_x509_crt_deinit(crts[i]);
  gnutls_free(crts);
  return CH_OK;
}

static ch_status check_key(const char *path, const char *text, const gnutls_datum_t *pem) {
  /* Encrypted keys would need a passphrase at every start: take a decrypted one. */
  if (strstr(text, "ENCRYPTED"))
    return CH_FAIL(CH_ERR_CONFIG, "TLS key (--tls-key) %s is encrypted: give an unencrypted key "
                   "(openssl pkey -in %s -out KEY.pem) and keep it readable by the server only",
                   path, path);
  gnutls_x509_privkey_t key;
  int rc = gnutls_x509_privkey_init(&key);
  if (rc >= 0) {
    rc = gnutls_x509_privkey_import2(key, pem, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(key);
  }
  if (rc < 0)
    return CH_FAIL(CH_ERR_CONFIG, "TLS key (--tls-key) %s: not a PEM private key (%s)", path,
                   gnutls_strerror(rc));
  return CH_OK;
}

/* The key is the certificate's: the same check libmicrohttpd's start makes, done here to name
 * the files. */
static ch_status check_pair(const ch_serve_opts *o, const gnutls_datum_t *cert,
                            const gnutls_datum_t *key) {
  gnutls_certificate_credentials_t cred;
  int rc = gnutls_certificate_allocate_credentials(&cred);
  if (rc >= 0) {
    rc = gnutls_certificate_set_x509_key_mem2(cred, cert, key, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
  }
  if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
    return CH_FAIL(CH_ERR_CONFIG, "TLS key (--tls-key) %s is not the key of the certificate "
                   "(--tls-cert) %s", o->tls_key, o->tls_cert);
  if (rc < 0)
    return CH_FAIL(CH_ERR_CONFIG, "TLS certificate %s with key %s: %s", o->tls_cert, o->tls_key,
                   gnutls_strerror(rc));
  return CH_OK;
}

void serve_tls_free(serve_tls *t) {
  if (!t) return;
  if (t->key) {
    volatile char *p = t->key; /* volatile: the zeroing is not optimised away before free */
    for (size_t i = 0; i < t->key_len; i++) p[i] = 0;
  }
  free(t->key);
  free(t->cert);
  free(t);
}

ch_status serve_tls_load(const ch_serve_opts *o, serve_tls **out) {
  *out = NULL;
  if (!o->tls_cert[0] && !o->tls_key[0]) return CH_OK;
  if (!o->tls_cert[0] || !o->tls_key[0])
    return CH_FAIL(CH_ERR_CONFIG, "%s given without %s: TLS needs both the certificate and "
                   "its key (or neither, for plain HTTP)",
                   o->tls_cert[0] ? "--tls-cert (serve.tls_cert)" : "--tls-key (serve.tls_key)",
                   o->tls_cert[0] ? "--tls-key (serve.tls_key)" : "--tls-cert (serve.tls_cert)");
  if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
    return CH_FAIL(CH_ERR_UNSUPPORTED, "--tls-cert: this libmicrohttpd was built without TLS "
                   "(GnuTLS) support; install one with it or put a TLS proxy in front");
  serve_tls *t = calloc(1, sizeof *t);
  if (!t) return CH_FAIL(CH_ERR_NOMEM, "TLS");
  size_t cert_len = 0;
  ch_status st = read_pem("TLS certificate (--tls-cert)", o->tls_cert, &t->cert, &cert_len);
  if (st == CH_OK) st = read_pem("TLS key (--tls-key)", o->tls_key, &t->key, &t->key_len);
  gnutls_datum_t cd = {(unsigned char *)t->cert, (unsigned)cert_len},
                 kd = {(unsigned char *)t->key, (unsigned)t->key_len};
  if (st == CH_OK) st = check_cert(o->tls_cert, &cd);
  if (st == CH_OK) st = check_key(o->tls_key, t->key, &kd);
  if (st == CH_OK) st = check_pair(o, &cd, &kd);
  if (st != CH_OK) {
    serve_tls_free(t);
    return st;
  }
  *out = t;
  return CH_OK;
}

unsigned serve_tls_mhd(const serve_tls *t, struct MHD_OptionItem *items) {
  int n = 0;
  if (t) {
    items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, t->cert};
    items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, t->key};
  }
  items[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  return t ? MHD_USE_TLS : 0;
}

const char *serve_tls_scheme(const serve_tls *t) { return t ? "https" : "http"; }
