/*
 * A weir plugin written in C against the generated header (plugins/abi/weir_plugin.h): plugin
 * `c_example` with one transform, `not_equal`, that passes on the records whose `field` is not
 * the text `value` and rejects the others to `<id>.errors` with a reason. It shows what a plugin
 * in another language does: a static descriptor behind the `weir_plugin_descriptor` symbol, the
 * config read from the TOML text weir hands over (one `key = "text"` line per option), rows
 * passed on without copying (`emit_rows`) and rows rejected (`reject_row`).
 *
 *   cc -std=c11 -shared -fPIC -O2 -Wall -Wextra -I plugins/abi \
 *      -o libc_example.so plugins/examples/c/not_equal.c
 *
 *   [plugins]
 *   paths = ["libc_example.so"]
 *   [transforms.known_gender]
 *   type = "c_example.not_equal"
 *   inputs = ["log"]
 *   field = "gender"
 *   value = "2"
 */

#include "weir_plugin.h"

#include <stdlib.h>
#include <string.h>

#define STR(literal) ((WeirStr){(const uint8_t *)(literal), sizeof(literal) - 1})

/* The options, read from the config text. */
typedef struct {
    char *field;
    char *value;
    size_t value_len;
} Options;

static void options_free(Options *options) {
    free(options->field);
    free(options->value);
    options->field = NULL;
    options->value = NULL;
}

/* Copies `len` bytes at `start` as a NUL-terminated string. */
static char *copy(const char *start, size_t len) {
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, start, len);
        out[len] = '\0';
    }
    return out;
}

/*
 * Reads `key = "text"` lines. On a problem, reports it through `host->error` at its byte offset
 * (weir maps that back to the pipeline file's line and column) and returns 0.
 */
static int options_read(WeirStr config, const WeirHostApi *host, void *ctx, Options *out) {
    const char *text = (const char *)config.ptr;
    size_t at = 0;
    memset(out, 0, sizeof *out);
    while (at < config.len) {
        size_t end = at;
        while (end < config.len && text[end] != '\n') end++;
        const char *line = text + at;
        size_t len = end - at;
        const char *equals = memchr(line, '=', len);
        if (equals && equals + 2 < line + len && equals[1] == ' ' && equals[2] == '"' &&
            line[len - 1] == '"' && len >= (size_t)(equals - line) + 4) {
            size_t key_len = (size_t)(equals - line);
            while (key_len > 0 && line[key_len - 1] == ' ') key_len--;
            const char *value = equals + 3;
            size_t value_len = (size_t)(line + len - 1 - value);
            if (memchr(value, '\\', value_len)) {
                host->error(ctx, (int64_t)(value - text),
                            STR("this example reads plain text only, without escapes"));
                options_free(out);
                return 0;
            }
            char **slot = NULL;
            if (key_len == 5 && memcmp(line, "field", 5) == 0) slot = &out->field;
            if (key_len == 5 && memcmp(line, "value", 5) == 0) {
                slot = &out->value;
                out->value_len = value_len;
            }
            if (slot) {
                free(*slot);
                *slot = copy(value, value_len);
            }
        } else if (len > 0) {
            host->error(ctx, (int64_t)at, STR("expected a string"));
            options_free(out);
            return 0;
        }
        at = end + 1;
    }
    if (!out->field || !out->value) {
        host->error(ctx, -1, out->field ? STR("missing `value`") : STR("missing `field`"));
        options_free(out);
        return 0;
    }
    return 1;
}

static WeirStatus validate(WeirStr config, const WeirHostApi *host, void *ctx) {
    Options options;
    if (!options_read(config, host, ctx, &options)) return WeirStatus_ERROR;
    options_free(&options);
    return WeirStatus_OK;
}

static WeirStatus create(WeirStr config, const WeirHostApi *host, void *ctx, WeirHandle *out) {
    Options *options = malloc(sizeof *options);
    if (!options) {
        host->error(ctx, -1, STR("out of memory"));
        return WeirStatus_ERROR;
    }
    if (!options_read(config, host, ctx, options)) {
        free(options);
        return WeirStatus_ERROR;
    }
    *out = options;
    return WeirStatus_OK;
}

static WeirStatus process(WeirHandle handle, const WeirBatchView *batch, const WeirHostApi *host,
                          void *ctx) {
    const Options *options = handle;
    size_t field_len = strlen(options->field);
    size_t column = batch->columns;
    for (size_t c = 0; c < batch->columns; c++) {
        if (batch->names[c].len == field_len &&
            memcmp(batch->names[c].ptr, options->field, field_len) == 0) {
            column = c;
        }
    }
    if (column == batch->columns) {
        /* No such field: nothing equals the value, every row goes on. */
        uint32_t *all = malloc(batch->rows * sizeof *all + 1);
        if (!all) return WeirStatus_ERROR;
        for (size_t r = 0; r < batch->rows; r++) all[r] = (uint32_t)r;
        WeirStatus status = host->emit_rows(ctx, all, batch->rows);
        free(all);
        return status;
    }
    uint32_t *kept = malloc(batch->rows * sizeof *kept + 1);
    if (!kept) {
        host->error(ctx, -1, STR("out of memory"));
        return WeirStatus_ERROR;
    }
    size_t kept_len = 0;
    for (size_t r = 0; r < batch->rows; r++) {
        const WeirValue *v = &batch->values[r * batch->columns + column];
        int equal = v->tag == WeirValue_Str && v->str.len == options->value_len &&
                    (size_t)v->str.start + v->str.len <= batch->arena_len &&
                    memcmp(batch->arena + v->str.start, options->value, options->value_len) == 0;
        if (equal) {
            host->reject_row(ctx, (uint32_t)r, STR("the field has the value this stage refuses"));
        } else {
            kept[kept_len++] = (uint32_t)r;
        }
    }
    WeirStatus status = host->emit_rows(ctx, kept, kept_len);
    free(kept);
    return status;
}

static WeirStatus nothing_to_poll(WeirHandle handle, uintptr_t max_rows, const WeirHostApi *host,
                                  void *ctx) {
    (void)handle, (void)max_rows, (void)host, (void)ctx;
    return WeirStatus_FINISHED;
}

static WeirStatus nothing_held(WeirHandle handle, const WeirHostApi *host, void *ctx) {
    (void)handle, (void)host, (void)ctx;
    return WeirStatus_OK;
}

static void destroy(WeirHandle handle) {
    Options *options = handle;
    options_free(options);
    free(options);
}

static const WeirOptionDesc OPTIONS[] = {
    {STR("field"), STR("string"), STR("required"), STR("the field compared")},
    {STR("value"), STR("string"), STR("required"), STR("records whose field is this text are rejected")},
};

static const WeirComponentVTable COMPONENTS[] = {{
    .kind = WeirKind_TRANSFORM,
    .name = STR("not_equal"),
    .description = STR("Passes on records whose field is not a given text; rejects the others"),
    .options = OPTIONS,
    .options_len = sizeof OPTIONS / sizeof OPTIONS[0],
    .validate = validate,
    .create = create,
    .process = process,
    .poll = nothing_to_poll,
    .tick = nothing_held,
    .tick_interval_millis = 0,
    .finish = nothing_held,
    .destroy = destroy,
}};

static const WeirPluginDescriptor DESCRIPTOR = {
    .abi_major = WeirABI_MAJOR,
    .abi_minor = WeirABI_MINOR,
    .struct_size = sizeof(WeirPluginDescriptor),
    .name = STR("c_example"),
    .version = STR("0.1.0"),
    .components = COMPONENTS,
    .components_len = sizeof COMPONENTS / sizeof COMPONENTS[0],
};

/* The one symbol weir looks for (its type is WeirEntryFn). */
const WeirPluginDescriptor *weir_plugin_descriptor(void) { return &DESCRIPTOR; }
