/* Reading back the JSON the serving codecs write, in the codec tests: each getter fails the
 * test (CHT_ASSERT) when the value is missing or of the wrong type. Include after testlib.h
 * and cJSON.h. */
#ifndef COHORT_TESTS_SERVE_JSON_CHECK_H
#define COHORT_TESTS_SERVE_JSON_CHECK_H

/* s parsed (the caller deletes it); fails on NULL or invalid JSON. */
static inline cJSON *jparse(const char *s) {
  CHT_ASSERT(s, "builder returned NULL");
  cJSON *j = cJSON_Parse(s);
  CHT_ASSERT(j, "produced invalid JSON: %.300s", s);
  return j;
}
static inline const cJSON *jget(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  CHT_ASSERT(v, "missing key '%s'", k);
  return v;
}
static inline const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = jget(o, k);
  CHT_ASSERT(cJSON_IsString(v), "'%s' is not a string", k);
  return v->valuestring;
}
static inline double jnum(const cJSON *o, const char *k) {
  const cJSON *v = jget(o, k);
  CHT_ASSERT(cJSON_IsNumber(v), "'%s' is not a number", k);
  return v->valuedouble;
}
static inline const cJSON *jat(const cJSON *a, int i) {
  const cJSON *v = cJSON_GetArrayItem(a, i);
  CHT_ASSERT(v, "no item %d", i);
  return v;
}

#endif
