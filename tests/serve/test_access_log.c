/* The access log (src/serve/access_log.c): the line's fields and escaping, the key id (a hash
 * prefix: the key itself never appears), and lines from 8 threads at once never interleaving. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/access_log.h"
#include "testlib.h"

#define THREADS 8
#define LINES 2000

static void test_line(void) {
  struct sockaddr_in sin = {.sin_family = AF_INET};
  inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
  serve_access a;
  const char *h = "Bearer sekrit";
  serve_access_init(&a, "POST", "/v2/models/\"m\"\n\xff/infer", (struct sockaddr *)&sin, h,
                    strlen(h));
  CHT_ASSERT(!strcmp(a.key_id, "7e35aaae"), "key id = sha256(\"sekrit\")[:8], got %s", a.key_id);
  a.wall.tv_sec = 1764783584; /* 2025-12-03 17:39:44 UTC */
  a.wall.tv_nsec = 123999999;
  a.t0 = 100.0;
  char *line = serve_access_line(&a, 200, 312, 1, 100.0015);
  const char *want = "{\"time\": \"2025-12-03T17:39:44.123Z\", \"peer\": \"10.1.2.3\", "
                     "\"method\": \"POST\", "
                     "\"path\": \"/v2/models/\\\"m\\\"\\n\xef\xbf\xbd/infer\", "
                     "\"status\": 200, \"bytes\": 312, \"duration_ms\": 1.500, \"key_id\": "
                     "\"7e35aaae\", \"completed\": true}\n";
  CHT_ASSERT(line && !strcmp(line, want), "line:\n%s\nwant:\n%s", line, want);
  CHT_ASSERT(!strstr(line, "sekrit"), "the key is in the line");
  free(line);

  /* No Authorization header: key_id null; no response queued: status null. A header that is
   * not "Bearer ..." is hashed whole. */
  struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
  inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
  serve_access_init(&a, "GET", "/v2", (struct sockaddr *)&sin6, NULL, 0);
  line = serve_access_line(&a, 0, 0, 0, a.t0);
  CHT_ASSERT(line && strstr(line, "\"peer\": \"::1\"") && strstr(line, "\"status\": null") &&
                 strstr(line, "\"key_id\": null") && strstr(line, "\"completed\": false"),
             "%s", line);
  free(line);
  serve_access_init(&a, "GET", "/v2", NULL, "Basic abc", 9);
  CHT_ASSERT(!strcmp(a.key_id, "4c9122f2") && !a.peer[0], "%s '%s'", a.key_id, a.peer);
}

static void test_open_errors(void) {
  serve_access_log *l = (serve_access_log *)1;
  CHT_OK(serve_access_log_open("", &l));
  CHT_ASSERT(l == NULL, "\"\" = no log");
  serve_access_write(NULL, NULL, 200, 0, 1); /* no log: a no-op */
  CHT_ASSERT(serve_access_log_open("/nonexistent-dir/access.log", &l) == CH_ERR_CONFIG && !l &&
                 strstr(ch_error_message(), "/nonexistent-dir/access.log"),
             "error names the file: %s", ch_error_message());
  ch_error_clear();
}

typedef struct worker {
  serve_access_log *log;
  int id;
} worker;

static void *write_lines(void *p) {
  worker *w = p;
  serve_access a;
  char path[600];
  memset(path, 'a' + w->id, sizeof path - 1); /* long lines: more chance to interleave */
  path[sizeof path - 1] = '\0';
  serve_access_init(&a, "GET", path, NULL, NULL, 0);
  for (int i = 0; i < LINES; i++) serve_access_write(w->log, &a, 200 + w->id, (uint64_t)i, 1);
  return NULL;
}

static void test_threads(void) {
  char dir[] = "/tmp/cohort-access-XXXXXX", file[64];
  CHT_ASSERT(mkdtemp(dir), "mkdtemp");
  snprintf(file, sizeof file, "%s/access.log", dir);
  serve_access_log *log = NULL;
  CHT_OK(serve_access_log_open(file, &log));
  pthread_t t[THREADS];
  worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){log, i};
    pthread_create(&t[i], NULL, write_lines, &w[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  serve_access_log_close(log);

  FILE *f = fopen(file, "r");
  CHT_ASSERT(f, "reopen %s", file);
  static char line[4096];
  int count[THREADS] = {0}, n = 0;
  while (fgets(line, sizeof line, f)) {
    n++;
    int id = -1;
    char *p = strstr(line, "\"path\": \"");
    if (p) id = p[9] - 'a';
    CHT_ASSERT(id >= 0 && id < THREADS, "line %d: %.120s", n, line);
    char want[700];
    memset(want, 'a' + id, 599);
    want[599] = '\0';
    char status[32];
    snprintf(status, sizeof status, "\"status\": %d,", 200 + id);
    const char *end = "\"completed\": true}\n";
    CHT_ASSERT(!strncmp(line, "{\"time\": \"", 10) && strstr(line, want) && strstr(line, status) &&
                   !strcmp(line + strlen(line) - strlen(end), end),
               "line %d is mixed: %.200s", n, line);
    count[id]++;
  }
  fclose(f);
  for (int i = 0; i < THREADS; i++)
    CHT_ASSERT(count[i] == LINES, "thread %d: %d lines", i, count[i]);
  unlink(file);
  rmdir(dir);
}

int main(void) {
  test_line();
  test_open_errors();
  test_threads();
  printf("access log: fields, escaping, key id, %d threads x %d lines unmixed\n", THREADS, LINES);
  return 0;
}
