/* The chat template (openai.h): a conversation becomes the text a base model continues. The
 * served GPT was trained on plain text with no chat tokens, so the template is the plainest
 * dialogue layout, one turn a line:
 *     System: You are terse.\n
 *     User: Hello\n
 *     Assistant: Hi.\n
 *     User: Who are you?\n
 *     Assistant:
 * and the answer ends where the model starts the user's next turn (CH_OAI_CHAT_STOP, "\nUser:")
 * or at max_tokens. Roles "developer" (OpenAI's newer name for "system") and "system" both
 * read "System:"; tool and function messages are refused (cohort has no tool calling). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/jsonw.h"
#include "serve/openai.h"
#include "serve/v2.h"

#define OAI_FAIL(...) codec_fail(err, errlen, 400, __VA_ARGS__)

/* The label a role's turns get, or NULL for a role cohort does not take. */
static const char *role_label(const char *role) {
  if (!strcmp(role, "system") || !strcmp(role, "developer")) return "System:";
  if (!strcmp(role, "user")) return "User:";
  if (!strcmp(role, "assistant")) return "Assistant:";
  return NULL;
}

/* Appends a message's content: a string, or a list of {"type":"text","text":...} parts joined
 * with nothing between them (as OpenAI concatenates text parts). */
static int put_content(jsonw *w, const cJSON *c, int i, char *err, size_t errlen) {
  if (cJSON_IsString(c)) {
    jsonw_raw(w, c->valuestring, strlen(c->valuestring));
    return 0;
  }
  if (!cJSON_IsArray(c))
    return OAI_FAIL("'messages'[%d].content must be a string or a list of text parts", i);
  const cJSON *part;
  int j = 0;
  cJSON_ArrayForEach(part, c) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
      return OAI_FAIL("'messages'[%d].content[%d] must be {\"type\": \"text\", \"text\": ...} "
                      "(this model reads text only)", i, j);
    jsonw_raw(w, text->valuestring, strlen(text->valuestring));
    j++;
  }
  return 0;
}

int oai_chat_template(const void *messages, char **out, char *err, size_t errlen) {
  const cJSON *msgs = messages, *m;
  *out = NULL;
  if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
    return OAI_FAIL("'messages' must be a non-empty list");
  jsonw w = {0};
  int i = 0, st = 0;
  cJSON_ArrayForEach(m, msgs) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    const char *label = cJSON_IsString(role) ? role_label(role->valuestring) : NULL;
    if (!cJSON_IsObject(m)) st = OAI_FAIL("'messages'[%d] must be an object", i);
    else if (!cJSON_IsString(role)) st = OAI_FAIL("'messages'[%d].role must be a string", i);
    else if (!label)
      st = OAI_FAIL("'messages'[%d].role '%s' is not supported (system, developer, user, "
                    "assistant)", i, role->valuestring);
    else if (!content || cJSON_IsNull(content))
      st = OAI_FAIL("'messages'[%d] has no content", i);
    if (st) break;
    jsonw_raw(&w, label, strlen(label));
    jsonw_raw(&w, " ", 1);
    if ((st = put_content(&w, content, i, err, errlen))) break;
    jsonw_raw(&w, "\n", 1);
    i++;
  }
  if (!st) jsonw_raw(&w, "Assistant:", 10);
  char *text = jsonw_finish(&w);
  if (st) {
    free(text);
    return st;
  }
  if (!text) return codec_fail(err, errlen, 500, "out of memory");
  *out = text;
  return 0;
}
