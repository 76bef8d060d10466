/* Class names of a classifier in its checkpoint (ckpt.h, ch_ckpt_model_info): kept in the info
 * as NUL-terminated names back to back, so that the info stays a plain value; stored as the
 * root attribute data_class_names, a JSON array of strings (a scalar string, so the attribute
 * checksum covers it unchanged, and h5py users read it with json.loads). */
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ckpt/ckpt_internal.h"

ch_status ch_ckpt_set_class_names(ch_ckpt_model_info *info, const char *const *names, int n) {
  info->n_class_names = 0;
  size_t len = 0;
  for (int i = 0; names && i < n; i++) {
    size_t l = strlen(names[i]) + 1;
    if (len + l > sizeof info->class_names)
      return CH_FAIL(CH_ERR_INVALID, "%d class names take more than %d bytes", n, CH_CLASS_NAMES_BYTES);
    memcpy(info->class_names + len, names[i], l);
    len += l;
  }
  info->n_class_names = names ? n : 0;
  return CH_OK;
}

int ch_ckpt_class_names(const ch_ckpt_model_info *info, const char **out) {
  const char *p = info->class_names;
  for (int i = 0; i < info->n_class_names; i++) {
    out[i] = p;
    p += strlen(p) + 1;
  }
  return info->n_class_names;
}

ch_status ckpt_class_names_json(const ch_ckpt_model_info *info, char **out) {
  *out = NULL;
  cJSON *a = cJSON_CreateArray();
  const char *p = info->class_names;
  for (int i = 0; a && i < info->n_class_names; i++, p += strlen(p) + 1) {
    cJSON *s = cJSON_CreateString(p);
    if (!s || !cJSON_AddItemToArray(a, s)) {
      cJSON_Delete(s);
      cJSON_Delete(a);
      a = NULL;
    }
  }
  if (a) *out = cJSON_PrintUnformatted(a);
  cJSON_Delete(a);
  return *out ? CH_OK : CH_FAIL(CH_ERR_NOMEM, "class names");
}

ch_status ckpt_class_names_parse(const char *path, const char *json, ch_ckpt_model_info *info) {
  cJSON *a = cJSON_Parse(json);
  int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
  const char **names = n >= 0 ? calloc((size_t)n + 1, sizeof *names) : NULL;
  int i = 0;
  const cJSON *v;
  if (names) cJSON_ArrayForEach(v, a) names[i++] = cJSON_IsString(v) ? v->valuestring : NULL;
  int ok = names && n == info->classes;
  for (int k = 0; ok && k < n; k++) ok = names[k] != NULL;
  ch_status st = ok ? ch_ckpt_set_class_names(info, names, n)
                    : ckpt_attr_fail(path, "data_class_names", "not a JSON array of one string per class");
  free(names);
  cJSON_Delete(a);
  return st;
}
