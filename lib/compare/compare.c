/*
 * compare.c - line two dumps up and judge them.
 *
 * A dump may be made in one step or token by token, with any micro-batch
 * size, so files never pair up one to one. Per (checkpoint, layer) each dump
 * becomes a list of slots, one per absolute position along the aligned axis:
 *   token        rows pos_start.. of every step (activations, logits)
 *   key          key positions 0..K-1, from the latest step that holds them
 *                (the KV cache grows; the latest step has the final state)
 *   token + key  per token t, keys 0..t (attention scores; later keys are
 *                causally masked, and how many there are depends on steps)
 *   none         the latest step, element by element (raw, graph tensors)
 * Slots present in both dumps are compared element by element in double
 * precision; the metrics, and where the largest error is, follow from that.
 */
#define _POSIX_C_SOURCE 200809L

#include "error.h"
#include "util.h"
#include "llorch_compare.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIMS      LLORCH_CKPT_MAX_DIMS
#define GATHER_CHUNK  1024
#define MAX_ALTS      2

/* ---- small helpers ---------------------------------------------------------- */


static bool same(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* ---- options ---------------------------------------------------------------- */

enum { SET_ATOL = 1, SET_RTOL = 2, SET_NMSE = 4, SET_WITHIN = 8 };

/* One --tol/--atol/...: applied in order, so later settings win. */
struct tol_setting {
    char                        *checkpoint;  /* NULL: every checkpoint */
    unsigned                     set;
    struct llorch_ckpt_tolerance tol;
};

struct llorch_ckpt_compare_options {
    const char                  *preset;
    struct llorch_ckpt_tolerance base;
    struct tol_setting          *settings;
    size_t                       n_settings;
    bool                         allow_token_mismatch;
};

/* f32: two correct implementations in f32 differ by summation order, fused
 * multiply-adds and exp/rsqrt approximations: ~1e-7 relative per op,
 * growing through the layers to ~1e-5. atol 1e-4 / rtol 1e-3 leaves a
 * margin of 10-100x; NMSE 1e-6 (RMS error 0.1% of the reference's spread)
 * catches a small error spread over a whole low-variance tensor.
 * f16: one dump holds f16 (KV cache, weights or --dtype native): f16 has an
 * 11-bit mantissa (rounding error up to 4.9e-4 relative) and that error
 * propagates; 1e-2 / 1e-2 / NMSE 1e-4 (RMS error 1%).
 * exact: bit for bit (same implementation, same settings: determinism). */
static const struct preset {
    const char                  *name;
    struct llorch_ckpt_tolerance tol;
} presets[] = {
    { "f32",   { 1e-4, 1e-3, 1e-6, 1.0 } },
    { "f16",   { 1e-2, 1e-2, 1e-4, 1.0 } },
    { "exact", { 0.0,  0.0,  0.0,  1.0 } },
};

static void clear_settings(llorch_ckpt_compare_options *o)
{
    for (size_t i = 0; i < o->n_settings; i++) {
        free(o->settings[i].checkpoint);
    }
    free(o->settings);
    o->settings = NULL;
    o->n_settings = 0;
}

llorch_ckpt_compare_options *llorch_ckpt_compare_options_create(void)
{
    llorch_ckpt_compare_options *o = calloc(1, sizeof *o);
    if (o) {
        o->preset = presets[0].name;
        o->base = presets[0].tol;
    }
    return o;
}

int llorch_ckpt_compare_options_preset(llorch_ckpt_compare_options *o, const char *preset,
                                       char *err, size_t err_size)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (same(preset, presets[i].name)) {
            o->preset = presets[i].name;
            o->base = presets[i].tol;
            clear_settings(o);
            return 0;
        }
    }
    llorch_set_error(err, err_size, "unknown preset '%s' (f32, f16, exact)", preset);
    return -1;
}

static int parse_tol_value(const char *key, const char *value, struct tol_setting *s,
                           char *err, size_t err_size)
{
    static const struct { const char *key; unsigned bit; } keys[] = {
        { "atol", SET_ATOL }, { "rtol", SET_RTOL }, { "nmse", SET_NMSE }, { "within", SET_WITHIN },
    };
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end || !isfinite(v) || v < 0) {
        llorch_set_error(err, err_size, "tolerance %s=%s: not a non-negative number", key, value);
        return -1;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!same(key, keys[i].key)) {
            continue;
        }
        if (keys[i].bit == SET_WITHIN && v > 1) {
            llorch_set_error(err, err_size, "tolerance within=%s: a fraction in [0, 1]", value);
            return -1;
        }
        double *field[] = { &s->tol.atol, &s->tol.rtol, &s->tol.nmse, &s->tol.within };
        *field[i] = v;
        s->set |= keys[i].bit;
        return 0;
    }
    llorch_set_error(err, err_size, "unknown tolerance '%s' (atol, rtol, nmse, within)", key);
    return -1;
}

/* "key=value,key=value" into s. */
static int parse_tol_list(char *list, struct tol_setting *s, char *err, size_t err_size)
{
    for (char *item = list; item; ) {
        char *next = strchr(item, ',');
        if (next) {
            *next++ = '\0';
        }
        char *eq = strchr(item, '=');
        if (!eq) {
            llorch_set_error(err, err_size, "tolerance '%s': expected key=value", item);
            return -1;
        }
        *eq = '\0';
        if (parse_tol_value(item, eq + 1, s, err, err_size) != 0) {
            return -1;
        }
        item = next;
    }
    return 0;
}

int llorch_ckpt_compare_options_tolerance(llorch_ckpt_compare_options *o, const char *spec,
                                          char *err, size_t err_size)
{
    struct tol_setting s = { 0 };
    char *text = llorch_strdup(spec);
    struct tol_setting *grown = realloc(o->settings, (o->n_settings + 1) * sizeof *grown);
    if (grown) {
        o->settings = grown;
    }
    if (!text || !grown) {
        llorch_set_error(err, err_size, "out of memory");
        free(text);
        return -1;
    }
    char *list = text, *colon = strchr(text, ':'), *eq = strchr(text, '=');
    if (colon && (!eq || colon < eq)) {
        *colon = '\0';
        list = colon + 1;
        s.checkpoint = text[0] ? llorch_strdup(text) : NULL;
    }
    int rc = parse_tol_list(list, &s, err, err_size);
    if (rc == 0) {
        o->settings[o->n_settings++] = s;
    } else {
        free(s.checkpoint);
    }
    free(text);
    return rc;
}

void llorch_ckpt_compare_options_allow_token_mismatch(llorch_ckpt_compare_options *o, bool allow)
{
    o->allow_token_mismatch = allow;
}

const char *llorch_ckpt_compare_options_preset_name(const llorch_ckpt_compare_options *o)
{
    return o->preset;
}

struct llorch_ckpt_tolerance llorch_ckpt_compare_options_get(const llorch_ckpt_compare_options *o,
                                                             const char *checkpoint)
{
    struct llorch_ckpt_tolerance t = o->base;
    for (size_t i = 0; i < o->n_settings; i++) {
        const struct tol_setting *s = &o->settings[i];
        if (s->checkpoint && (!checkpoint || !same(s->checkpoint, checkpoint))) {
            continue;
        }
        if (s->set & SET_ATOL)   t.atol = s->tol.atol;
        if (s->set & SET_RTOL)   t.rtol = s->tol.rtol;
        if (s->set & SET_NMSE)   t.nmse = s->tol.nmse;
        if (s->set & SET_WITHIN) t.within = s->tol.within;
    }
    return t;
}

void llorch_ckpt_compare_options_free(llorch_ckpt_compare_options *o)
{
    if (o) {
        clear_settings(o);
        free(o);
    }
}

/* ---- the comparison object ---------------------------------------------------- */

struct llorch_ckpt_comparison {
    struct llorch_ckpt_row *rows;
    size_t                  n_rows;
    struct llorch_ckpt_key *only[2];     /* [1]: only in the reference */
    size_t                  n_only[2];
    char                  **warnings;
    size_t                  n_warnings;
    char                  **strings;     /* copies that rows and keys point to */
    size_t                  n_strings;
    bool                    out_of_memory;
};

/* A copy owned by c (NULL for NULL; "" and a flag when out of memory). */
static const char *keep(struct llorch_ckpt_comparison *c, const char *s)
{
    if (!s) {
        return NULL;
    }
    char **grown = realloc(c->strings, (c->n_strings + 1) * sizeof *grown);
    char *copy = llorch_strdup(s);
    if (!grown || !copy) {
        free(copy);
        if (grown) {
            c->strings = grown;
        }
        c->out_of_memory = true;
        return "";
    }
    c->strings = grown;
    c->strings[c->n_strings++] = copy;
    return copy;
}

static void warn(struct llorch_ckpt_comparison *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char **grown = realloc(c->warnings, (c->n_warnings + 1) * sizeof *grown);
    char *copy = llorch_strdup(msg);
    if (!grown || !copy) {
        free(copy);
        if (grown) {
            c->warnings = grown;
        }
        c->out_of_memory = true;
        return;
    }
    c->warnings = grown;
    c->warnings[c->n_warnings++] = copy;
}

/* ---- whole-dump checks ---------------------------------------------------------- */

static int check_models(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                        const llorch_ckpt_dump *cand, char *err, size_t err_size)
{
    const struct llorch_ckpt_model *a = llorch_ckpt_dump_model(ref), *b = llorch_ckpt_dump_model(cand);
    if (!same(a->architecture, b->architecture) || a->n_layer != b->n_layer || a->n_embd != b->n_embd) {
        llorch_set_error(err, err_size, "the dumps are of different models: %s, %d layers, n_embd %d in %s; "
                  "%s, %d layers, n_embd %d in %s", a->architecture, a->n_layer, a->n_embd,
                  llorch_ckpt_dump_name(ref), b->architecture, b->n_layer, b->n_embd,
                  llorch_ckpt_dump_name(cand));
        return -1;
    }
    const struct { const char *name; int a, b; } more[] = {
        { "n_head", a->n_head, b->n_head },
        { "n_head_kv", a->n_head_kv, b->n_head_kv },
        { "n_vocab", a->n_vocab, b->n_vocab },
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        if (more[i].a >= 0 && more[i].b >= 0 && more[i].a != more[i].b) {
            warn(c, "the models differ in %s: %d in the reference, %d in the candidate",
                 more[i].name, more[i].a, more[i].b);
        }
    }
    return 0;
}

/* Describes the first difference of two token lists into buf; 0 if equal. */
static int token_difference(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand, char *buf, size_t size)
{
    size_t n = llorch_ckpt_dump_n_tokens(ref), m = llorch_ckpt_dump_n_tokens(cand);
    const int32_t *a = llorch_ckpt_dump_tokens(ref), *b = llorch_ckpt_dump_tokens(cand);
    for (size_t i = 0; i < n && i < m; i++) {
        if (a[i] != b[i]) {
            snprintf(buf, size, "token ids differ at position %zu: %d in the reference, %d in the candidate",
                     i, (int)a[i], (int)b[i]);
            return 1;
        }
    }
    if (n != m) {
        snprintf(buf, size, "token ids differ: the reference has %zu tokens, the candidate %zu", n, m);
        return 1;
    }
    return 0;
}

static int check_tokens(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                        const llorch_ckpt_dump *cand, bool allow, char *err, size_t err_size)
{
    char msg[256];
    if (!llorch_ckpt_dump_has_tokens(ref) || !llorch_ckpt_dump_has_tokens(cand)) {
        warn(c, "token ids not checked: %s has none", llorch_ckpt_dump_name(
             llorch_ckpt_dump_has_tokens(ref) ? cand : ref));
        return 0;
    }
    if (!token_difference(ref, cand, msg, sizeof msg)) {
        return 0;
    }
    if (!allow) {
        llorch_set_error(err, err_size, "%s (--allow-token-mismatch compares them anyway)", msg);
        return -1;
    }
    warn(c, "%s", msg);
    return 0;
}

static void note_incomplete(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *d, const char *role)
{
    if (!llorch_ckpt_dump_complete(d)) {
        const char *status = llorch_ckpt_dump_status(d);
        warn(c, "the %s %s is incomplete (\"complete\": false, status: %s): comparing what it holds",
             role, llorch_ckpt_dump_name(d), status ? status : "none");
    }
}

/* ---- grouping files by (checkpoint, layer) --------------------------------------- */

struct keyed {
    const struct llorch_ckpt_entry *e;
    size_t                          idx;   /* in the manifest's files */
};

/* Graph tensors are told apart by their llama.cpp name; the others by
 * checkpoint and layer only (graph_name differs between implementations). */
static const char *group_name(const struct llorch_ckpt_entry *e)
{
    return same(e->checkpoint, "graph") && e->graph_name ? e->graph_name : "";
}

static int key_compare(const struct llorch_ckpt_entry *a, const struct llorch_ckpt_entry *b)
{
    int c = strcmp(a->checkpoint, b->checkpoint);
    if (c == 0) {
        c = strcmp(group_name(a), group_name(b));
    }
    if (c == 0) {
        c = (a->layer > b->layer) - (a->layer < b->layer);
    }
    return c;
}

static int keyed_compare(const void *pa, const void *pb)
{
    const struct keyed *a = pa, *b = pb;
    int c = key_compare(a->e, b->e);
    return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

struct run {
    const struct keyed *k;
    size_t              n;
};

struct group {
    struct run ref, cand;
};

struct grouping {
    struct keyed *ref, *cand;    /* sorted by key, then manifest order */
    struct group *groups;
    size_t        n_groups;
    struct run   *only[2];       /* [1]: only in the reference */
    size_t        n_only[2];
};

static struct keyed *sorted_entries(const llorch_ckpt_dump *d)
{
    size_t n = llorch_ckpt_dump_n_entries(d);
    struct keyed *k = malloc((n ? n : 1) * sizeof *k);
    if (!k) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        k[i].e = llorch_ckpt_dump_entry(d, i);
        k[i].idx = i;
    }
    qsort(k, n, sizeof *k, keyed_compare);
    return k;
}

static size_t run_length(const struct keyed *k, size_t i, size_t n)
{
    size_t j = i + 1;
    while (j < n && key_compare(k[i].e, k[j].e) == 0) {
        j++;
    }
    return j - i;
}

static int run_first_compare(const void *pa, const void *pb)
{
    const struct run *a = pa, *b = pb;
    return (a->k[0].idx > b->k[0].idx) - (a->k[0].idx < b->k[0].idx);
}

static int group_first_compare(const void *pa, const void *pb)
{
    return run_first_compare(&((const struct group *)pa)->ref, &((const struct group *)pb)->ref);
}

/* Merges the two sorted lists into groups in both, and runs in one. */
static void merge_runs(struct grouping *g, size_t nr, size_t nc)
{
    size_t i = 0, j = 0;
    while (i < nr || j < nc) {
        int c = i == nr ? 1 : j == nc ? -1 : key_compare(g->ref[i].e, g->cand[j].e);
        size_t li = i < nr ? run_length(g->ref, i, nr) : 0;
        size_t lj = j < nc ? run_length(g->cand, j, nc) : 0;
        if (c == 0) {
            g->groups[g->n_groups++] = (struct group){ { &g->ref[i], li }, { &g->cand[j], lj } };
            i += li;
            j += lj;
        } else if (c < 0) {
            g->only[1][g->n_only[1]++] = (struct run){ &g->ref[i], li };
            i += li;
        } else {
            g->only[0][g->n_only[0]++] = (struct run){ &g->cand[j], lj };
            j += lj;
        }
    }
}

static void free_grouping(struct grouping *g)
{
    free(g->ref);
    free(g->cand);
    free(g->groups);
    free(g->only[0]);
    free(g->only[1]);
}

static int build_groups(struct grouping *g, const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand)
{
    size_t nr = llorch_ckpt_dump_n_entries(ref), nc = llorch_ckpt_dump_n_entries(cand);
    memset(g, 0, sizeof *g);
    g->ref = sorted_entries(ref);
    g->cand = sorted_entries(cand);
    g->groups = malloc((nr + 1) * sizeof *g->groups);
    g->only[1] = malloc((nr + 1) * sizeof *g->only[1]);
    g->only[0] = malloc((nc + 1) * sizeof *g->only[0]);
    if (!g->ref || !g->cand || !g->groups || !g->only[0] || !g->only[1]) {
        free_grouping(g);
        return -1;
    }
    merge_runs(g, nr, nc);
    qsort(g->groups, g->n_groups, sizeof *g->groups, group_first_compare);
    qsort(g->only[0], g->n_only[0], sizeof *g->only[0], run_first_compare);
    qsort(g->only[1], g->n_only[1], sizeof *g->only[1], run_first_compare);
    return 0;
}

/* ---- alignment -------------------------------------------------------------------- */

enum align_mode { ALIGN_ELEMENTS, ALIGN_TOKEN, ALIGN_KEY, ALIGN_TOKEN_KEY };

struct slot {
    int64_t pos;    /* absolute position along the aligned axis */
    int64_t row;    /* its index in the file                    */
    size_t  file;   /* index in the side's run                  */
};

/* One dump's files of one (checkpoint, layer). */
struct side {
    const llorch_ckpt_dump *dump;
    struct run              run;
    llorch_ckpt_array     **arrays;   /* per file; NULL where not needed */
    struct slot            *slots;    /* sorted by pos, one per pos */
    size_t                  n_slots;
};

struct alignment {
    enum align_mode mode;
    int             axis;       /* the aligned axis (token or key), or -1 */
    int             key_axis;   /* for ALIGN_TOKEN_KEY */
    const struct llorch_ckpt_entry *model;   /* the reference's first file */
};

static int find_axis(const struct llorch_ckpt_entry *e, const char *name)
{
    for (int i = 0; i < e->n_dims; i++) {
        if (same(e->axes[i], name)) {
            return i;
        }
    }
    return -1;
}

static bool run_has_raw(const struct run *r)
{
    for (size_t f = 0; f < r->n; f++) {
        if (r->k[f].e->raw) {
            return true;
        }
    }
    return false;
}

/* By the reference's axes; a raw tensor (llama.cpp's own layout, in either
 * dump) has no token or key axis and is compared element by element. */
static struct alignment choose_alignment(const struct group *g)
{
    const struct llorch_ckpt_entry *e = g->ref.k[0].e;
    struct alignment a = { ALIGN_ELEMENTS, -1, -1, e };
    bool raw = run_has_raw(&g->ref) || run_has_raw(&g->cand);
    int token = raw ? -1 : find_axis(e, "token");
    int key = raw ? -1 : find_axis(e, "key");
    if (token >= 0 && key >= 0) {
        a.mode = ALIGN_TOKEN_KEY;
        a.axis = token;
        a.key_axis = key;
    } else if (token >= 0) {
        a.mode = ALIGN_TOKEN;
        a.axis = token;
    } else if (key >= 0) {
        a.mode = ALIGN_KEY;
        a.axis = key;
    }
    return a;
}

/* Whether the extent along axis i may differ between files. Element-wise
 * alignment uses one file per dump; their shapes are checked then. */
static bool axis_varies(const struct alignment *al, int i)
{
    return al->mode == ALIGN_ELEMENTS || i == al->axis || i == al->key_axis;
}

static void file_path(char *buf, size_t size, const struct side *s, const struct llorch_ckpt_entry *e)
{
    const char *dir = llorch_ckpt_dump_name(s->dump);
    size_t len = strlen(dir);
    snprintf(buf, size, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", e->file);
}

/* Every file of the group has the reference's axes, and its extents on the
 * axes that do not vary. */
static int check_layout(const struct alignment *al, const struct side *s, char *msg, size_t msg_size)
{
    const struct llorch_ckpt_entry *m = al->model;
    char path[2048], have[128], want[128];
    for (size_t f = 0; f < s->run.n; f++) {
        const struct llorch_ckpt_entry *e = s->run.k[f].e;
        bool ok = e->n_dims == m->n_dims;
        for (int i = 0; ok && i < e->n_dims; i++) {
            /* raw axes are named ne0.. instead: only the shape can agree */
            ok = (e->raw != m->raw || same(e->axes[i], m->axes[i])) &&
                 (axis_varies(al, i) || e->shape[i] == m->shape[i]);
        }
        if (ok) {
            continue;
        }
        file_path(path, sizeof path, s, e);
        llorch_format_shape(have, sizeof have, e->n_dims, e->shape);
        llorch_format_shape(want, sizeof want, m->n_dims, m->shape);
        snprintf(msg, msg_size, "%s: shape %s%s does not line up with the reference's %s%s",
                 path, have, e->raw ? " (raw)" : "", want, m->raw ? " (raw)" : "");
        if (e->n_dims == m->n_dims && e->raw == m->raw) {
            size_t used = strlen(msg);
            for (int i = 0; i < e->n_dims && used < msg_size; i++) {
                if (!same(e->axes[i], m->axes[i])) {
                    snprintf(msg + used, msg_size - used, " (axis %d is '%s', not '%s')", i, e->axes[i], m->axes[i]);
                    break;
                }
            }
        }
        return -1;
    }
    return 0;
}

static int slot_compare(const void *pa, const void *pb)
{
    const struct slot *a = pa, *b = pb;
    if (a->pos != b->pos) {
        return a->pos < b->pos ? -1 : 1;
    }
    /* Files are in manifest order, which is step order: later wins. */
    return (a->file > b->file) - (a->file < b->file);
}

/* The latest step of the run (ALIGN_ELEMENTS uses it alone). */
static size_t latest_file(const struct run *r)
{
    size_t best = 0;
    for (size_t f = 1; f < r->n; f++) {
        if (r->k[f].e->step >= r->k[best].e->step) {
            best = f;
        }
    }
    return best;
}

/* Rows along the aligned axis; none for a file without elements, whose
 * declared rows no bytes on disk vouch for. */
static int64_t rows_of(const struct llorch_ckpt_entry *e, int axis)
{
    for (int i = 0; i < e->n_dims; i++) {
        if (e->shape[i] == 0) {
            return 0;
        }
    }
    return e->shape[axis];
}

/* Fills s->slots. The sizes were checked against the files first, so the
 * number of slots is bounded by what is on disk. */
static int build_slots(const struct alignment *al, struct side *s)
{
    size_t total = 0;
    for (size_t f = 0; f < s->run.n; f++) {
        total += al->mode == ALIGN_ELEMENTS ? 1 : (size_t)rows_of(s->run.k[f].e, al->axis);
    }
    s->slots = malloc((total ? total : 1) * sizeof *s->slots);
    if (!s->slots) {
        return -1;
    }
    if (al->mode == ALIGN_ELEMENTS) {
        s->slots[0] = (struct slot){ 0, 0, latest_file(&s->run) };
        s->n_slots = 1;
        return 0;
    }
    size_t n = 0;
    for (size_t f = 0; f < s->run.n; f++) {
        const struct llorch_ckpt_entry *e = s->run.k[f].e;
        int64_t base = al->mode == ALIGN_KEY ? 0 : e->pos_start;
        for (int64_t r = 0; r < rows_of(e, al->axis); r++) {
            s->slots[n++] = (struct slot){ base + r, r, f };
        }
    }
    qsort(s->slots, n, sizeof *s->slots, slot_compare);
    s->n_slots = 0;
    for (size_t i = 0; i < n; i++) {           /* keep the last of equal positions */
        if (i + 1 < n && s->slots[i + 1].pos == s->slots[i].pos) {
            continue;
        }
        s->slots[s->n_slots++] = s->slots[i];
    }
    return 0;
}

/* Reads every file of the side (so that each is checked), keeping those
 * that some slot needs; peak memory is what is kept plus one file. */
static int load_side(struct side *s, char *msg, size_t msg_size)
{
    bool *needed = calloc(s->run.n, sizeof *needed);
    s->arrays = calloc(s->run.n, sizeof *s->arrays);
    if (!needed || !s->arrays) {
        free(needed);
        snprintf(msg, msg_size, "%s: out of memory", llorch_ckpt_dump_name(s->dump));
        return -1;
    }
    for (size_t i = 0; i < s->n_slots; i++) {
        needed[s->slots[i].file] = true;
    }
    int rc = 0;
    for (size_t f = 0; f < s->run.n && rc == 0; f++) {
        llorch_ckpt_array *a = llorch_ckpt_dump_load(s->dump, s->run.k[f].idx, msg, msg_size);
        rc = a ? 0 : -1;
        if (needed[f]) {
            s->arrays[f] = a;
        } else {
            llorch_ckpt_array_free(a);
        }
    }
    free(needed);
    return rc;
}

static int check_sizes(struct side *s, char *msg, size_t msg_size)
{
    for (size_t f = 0; f < s->run.n; f++) {
        if (llorch_ckpt_dump_check_size(s->dump, s->run.k[f].idx, msg, msg_size) != 0) {
            return -1;
        }
    }
    return 0;
}

static void free_side(struct side *s)
{
    for (size_t f = 0; s->arrays && f < s->run.n; f++) {
        llorch_ckpt_array_free(s->arrays[f]);
    }
    free(s->arrays);
    free(s->slots);
}

/* ---- metrics ---------------------------------------------------------------------- */

/* Neumaier's compensated sum: sums of millions of squares stay exact to a
 * few ulps, so the metrics match numpy's (pairwise) sums. */
struct ksum {
    double s, c;
};

static void ksum_add(struct ksum *k, double x)
{
    double t = k->s + x;
    k->c += fabs(k->s) >= fabs(x) ? (k->s - t) + x : (x - t) + k->s;
    k->s = t;
}

static double ksum_get(const struct ksum *k)
{
    return k->s + k->c;
}

struct accum {
    struct llorch_ckpt_tolerance tol;
    int64_t     n, n_within, n_nonfinite, n_finite;
    double      max_abs, max_rel;
    int64_t     max_abs_at[MAX_DIMS];
    struct ksum abs, sq, dot, rr, cc;
    double      mean, m2;           /* Welford's running variance of ref */
};

static bool same_nonfinite(double r, double c)
{
    return (isnan(r) && isnan(c)) || (isinf(r) && r == c);
}

/* Adds one pair; returns true when it is the new largest error (the caller
 * then records where it is). */
static bool accumulate(struct accum *a, double r, double c)
{
    a->n++;
    if (!isfinite(r) || !isfinite(c)) {
        if (same_nonfinite(r, c)) {
            a->n_within++;
            return false;
        }
        a->n_nonfinite++;
        bool first = a->max_abs != INFINITY;
        a->max_abs = INFINITY;
        return first;
    }
    double d = c - r, ad = fabs(d);
    a->n_finite++;
    a->n_within += ad <= a->tol.atol + a->tol.rtol * fabs(r);
    if (r != 0 && ad / fabs(r) > a->max_rel) {
        a->max_rel = ad / fabs(r);
    }
    ksum_add(&a->abs, ad);
    ksum_add(&a->sq, d * d);
    ksum_add(&a->dot, r * c);
    ksum_add(&a->rr, r * r);
    ksum_add(&a->cc, c * c);
    double delta = r - a->mean;
    a->mean += delta / (double)a->n_finite;
    a->m2 += delta * (r - a->mean);
    if (ad > a->max_abs) {
        a->max_abs = ad;
        return true;
    }
    return false;
}

/* NMSE is MSE over the reference's variance; a constant reference (softmax
 * over one key) has none, so its mean square stands in. */
static double nmse_of(double mse, double variance, double power)
{
    double scale = variance > 0 ? variance : power;
    if (scale > 0) {
        return mse / scale;
    }
    return mse > 0 ? INFINITY : 0;
}

static void finish_metrics(const struct accum *a, struct llorch_ckpt_metrics *m)
{
    double nf = a->n_finite ? (double)a->n_finite : 1;
    double rr = ksum_get(&a->rr), cc = ksum_get(&a->cc);
    double mse = ksum_get(&a->sq) / nf;
    memset(m, 0, sizeof *m);
    m->n = a->n;
    m->n_within = a->n_within;
    m->n_nonfinite = a->n_nonfinite;
    m->max_abs = a->max_abs < 0 ? 0 : a->max_abs;
    memcpy(m->max_abs_at, a->max_abs_at, sizeof m->max_abs_at);
    m->max_rel = a->max_rel;
    m->mean_abs = ksum_get(&a->abs) / nf;
    m->rmse = sqrt(mse);
    m->nmse = nmse_of(mse, a->m2 / nf, rr / nf);
    if (rr > 0 && cc > 0) {
        m->cosine = ksum_get(&a->dot) / (sqrt(rr) * sqrt(cc));
    } else {
        m->cosine = rr == cc ? 1 : 0;   /* both zero: identical */
    }
    m->within = a->n ? (double)a->n_within / (double)a->n : 0;
}

static bool metrics_pass(const struct llorch_ckpt_metrics *m, const struct llorch_ckpt_tolerance *t)
{
    return m->n > 0 && m->n_nonfinite == 0 && m->within >= t->within && m->nmse <= t->nmse;
}

/* ---- element loops -------------------------------------------------------------- */

/* The elements of one position: a box in both files, walked in C order. */
struct block {
    int     n_axes;
    int64_t extent[MAX_DIMS];
    int64_t coord0[MAX_DIMS];     /* absolute coordinate of index 0 */
    int64_t ref_stride[MAX_DIMS], cand_stride[MAX_DIMS];
    int64_t ref_base, cand_base;
};

static void strides_of(const llorch_ckpt_array *a, int64_t *stride)
{
    int n = llorch_ckpt_array_n_dims(a);
    int64_t s = 1;
    for (int i = n - 1; i >= 0; i--) {
        stride[i] = s;
        s *= llorch_ckpt_array_dim(a, i);
    }
    if (n == 0) {
        stride[0] = 1;
    }
}

static int compare_run(const struct block *b, const int64_t *idx, int64_t ro, int64_t co,
                       const llorch_ckpt_array *ra, const llorch_ckpt_array *ca, struct accum *acc)
{
    double rv[GATHER_CHUNK], cv[GATHER_CHUNK];
    int last = b->n_axes - 1;
    for (int64_t j0 = 0; j0 < b->extent[last]; j0 += GATHER_CHUNK) {
        int64_t n = b->extent[last] - j0 < GATHER_CHUNK ? b->extent[last] - j0 : GATHER_CHUNK;
        if (llorch_ckpt_array_gather(ra, ro + j0 * b->ref_stride[last], b->ref_stride[last], n, rv) != 0 ||
            llorch_ckpt_array_gather(ca, co + j0 * b->cand_stride[last], b->cand_stride[last], n, cv) != 0) {
            return -1;
        }
        for (int64_t k = 0; k < n; k++) {
            if (accumulate(acc, rv[k], cv[k])) {
                for (int i = 0; i < last; i++) {
                    acc->max_abs_at[i] = b->coord0[i] + idx[i];
                }
                acc->max_abs_at[last] = b->coord0[last] + j0 + k;
            }
        }
    }
    return 0;
}

/* Odometer over every axis but the last; false when done. */
static bool next_index(int64_t *idx, const int64_t *extent, int last)
{
    for (int i = last - 1; i >= 0; i--) {
        if (++idx[i] < extent[i]) {
            return true;
        }
        idx[i] = 0;
    }
    return false;
}

static int compare_block(const struct block *b, const llorch_ckpt_array *ra, const llorch_ckpt_array *ca,
                         struct accum *acc)
{
    int64_t idx[MAX_DIMS] = { 0 };
    int last = b->n_axes - 1;
    for (int i = 0; i < b->n_axes; i++) {
        if (b->extent[i] <= 0) {
            return 0;
        }
    }
    do {
        int64_t ro = b->ref_base, co = b->cand_base;
        for (int i = 0; i < last; i++) {
            ro += idx[i] * b->ref_stride[i];
            co += idx[i] * b->cand_stride[i];
        }
        if (compare_run(b, idx, ro, co, ra, ca, acc) != 0) {
            return -1;
        }
    } while (next_index(idx, b->extent, last));
    return 0;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static struct block make_block(const struct alignment *al, const struct slot *rs, const struct slot *cs,
                               const llorch_ckpt_array *ra, const llorch_ckpt_array *ca)
{
    struct block b = { 0 };
    int n = llorch_ckpt_array_n_dims(ra);
    b.n_axes = n ? n : 1;
    b.extent[0] = 1;
    strides_of(ra, b.ref_stride);
    strides_of(ca, b.cand_stride);
    for (int i = 0; i < n; i++) {
        b.extent[i] = llorch_ckpt_array_dim(ra, i);
    }
    if (al->mode == ALIGN_ELEMENTS) {
        return b;
    }
    b.extent[al->axis] = 1;
    b.coord0[al->axis] = rs->pos;
    b.ref_base = rs->row * b.ref_stride[al->axis];
    b.cand_base = cs->row * b.cand_stride[al->axis];
    if (al->mode == ALIGN_TOKEN_KEY) {
        /* token t attends to keys 0..t; the rest is masked (and its count
         * depends on how the run was split into steps). */
        int k = al->key_axis;
        b.extent[k] = min64(rs->pos + 1, min64(llorch_ckpt_array_dim(ra, k), llorch_ckpt_array_dim(ca, k)));
    }
    return b;
}

/* Element-wise alignment needs equal shapes. */
static int check_element_shapes(const struct side *ref, const struct side *cand, char *msg, size_t msg_size)
{
    const struct llorch_ckpt_entry *a = ref->run.k[ref->slots[0].file].e;
    const struct llorch_ckpt_entry *b = cand->run.k[cand->slots[0].file].e;
    char have[128], want[128], path[2048];
    llorch_format_shape(have, sizeof have, b->n_dims, b->shape);
    llorch_format_shape(want, sizeof want, a->n_dims, a->shape);
    if (same(have, want)) {
        return 0;
    }
    file_path(path, sizeof path, cand, b);
    snprintf(msg, msg_size, "%s: shape %s%s differs from the reference's %s%s", path, have,
             b->raw ? " (raw)" : "", want, a->raw ? " (raw)" : "");
    return -1;
}

struct coverage {
    int64_t ref_only, cand_only;
};

/* Merge-joins the slots of both sides by position. */
static int compare_sides(const struct alignment *al, const struct side *ref, const struct side *cand,
                         struct accum *acc, struct coverage *cov)
{
    size_t i = 0, j = 0;
    while (i < ref->n_slots && j < cand->n_slots) {
        const struct slot *rs = &ref->slots[i], *cs = &cand->slots[j];
        if (rs->pos != cs->pos) {
            cov->ref_only += rs->pos < cs->pos;
            cov->cand_only += rs->pos > cs->pos;
            i += rs->pos < cs->pos;
            j += rs->pos > cs->pos;
            continue;
        }
        const llorch_ckpt_array *ra = ref->arrays[rs->file], *ca = cand->arrays[cs->file];
        struct block b = make_block(al, rs, cs, ra, ca);
        if (compare_block(&b, ra, ca, acc) != 0) {
            return -1;
        }
        i++;
        j++;
    }
    cov->ref_only += (int64_t)(ref->n_slots - i);
    cov->cand_only += (int64_t)(cand->n_slots - j);
    return 0;
}

/* ---- one row -------------------------------------------------------------------- */

static void init_row(struct llorch_ckpt_comparison *c, struct llorch_ckpt_row *row, const struct group *g,
                     const llorch_ckpt_compare_options *opt)
{
    const struct llorch_ckpt_entry *e = g->ref.k[0].e;
    memset(row, 0, sizeof *row);
    row->checkpoint = keep(c, e->checkpoint);
    row->graph_name = same(e->checkpoint, "graph") ? keep(c, e->graph_name) : NULL;
    row->layer = e->layer;
    row->n_axes = e->n_dims;
    for (int i = 0; i < e->n_dims; i++) {
        row->axes[i] = keep(c, e->axes[i]);
    }
    row->ref_dtype = e->dtype;
    row->cand_dtype = g->cand.k[0].e->dtype;
    row->tolerance = llorch_ckpt_compare_options_get(opt, e->checkpoint);
}

static int align_and_compare(const struct group *g, struct side *ref, struct side *cand,
                             struct accum *acc, struct coverage *cov, char *msg, size_t msg_size)
{
    struct alignment al = choose_alignment(g);
    if (check_layout(&al, ref, msg, msg_size) || check_layout(&al, cand, msg, msg_size) ||
        check_sizes(ref, msg, msg_size) || check_sizes(cand, msg, msg_size)) {
        return -1;
    }
    if (build_slots(&al, ref) || build_slots(&al, cand)) {
        snprintf(msg, msg_size, "out of memory");
        return -1;
    }
    if (al.mode == ALIGN_ELEMENTS && check_element_shapes(ref, cand, msg, msg_size)) {
        return -1;
    }
    if (load_side(ref, msg, msg_size) || load_side(cand, msg, msg_size)) {
        return -1;
    }
    if (compare_sides(&al, ref, cand, acc, cov) != 0) {
        snprintf(msg, msg_size, "internal error: an aligned index fell outside a file");
        return -1;
    }
    if (acc->n == 0) {
        snprintf(msg, msg_size, "no position in common (the reference has %zu, the candidate %zu)",
                 ref->n_slots, cand->n_slots);
        return -1;
    }
    return 0;
}

static void compare_group(struct llorch_ckpt_comparison *c, const struct group *g,
                          const llorch_ckpt_compare_options *opt, const llorch_ckpt_dump *rd,
                          const llorch_ckpt_dump *cd, struct llorch_ckpt_row *row)
{
    struct side ref = { rd, g->ref, NULL, NULL, 0 };
    struct side cand = { cd, g->cand, NULL, NULL, 0 };
    struct accum acc = { .max_abs = -1 };
    struct coverage cov = { 0, 0 };
    char msg[4096];
    init_row(c, row, g, opt);
    acc.tol = row->tolerance;
    if (align_and_compare(g, &ref, &cand, &acc, &cov, msg, sizeof msg) != 0) {
        row->status = LLORCH_CKPT_STATUS_ERROR;
        row->message = keep(c, msg);
    } else {
        finish_metrics(&acc, &row->metrics);
        row->status = metrics_pass(&row->metrics, &row->tolerance) ? LLORCH_CKPT_STATUS_PASS : LLORCH_CKPT_STATUS_FAIL;
    }
    row->n_ref_only = cov.ref_only;
    row->n_cand_only = cov.cand_only;
    free_side(&ref);
    free_side(&cand);
}

/* ---- dataflow: where does a failure come from? ----------------------------------- */

struct input_set {
    int n;
    struct { const char *checkpoint; int layer; } in[LLORCH_CKPT_MAX_INPUTS];
};

/* The inputs of a checkpoint, as alternatives in order of preference. */
struct rule {
    bool             known;
    int              n_alts;
    struct input_set alts[MAX_ALTS];
};

static void add_alt(struct rule *r, const char *a, int la, const char *b, int lb)
{
    struct input_set *s = &r->alts[r->n_alts++];
    s->n = b ? 2 : 1;
    s->in[0].checkpoint = a;
    s->in[0].layer = la;
    if (b) {
        s->in[1].checkpoint = b;
        s->in[1].layer = lb;
    }
}

/* The residual stream after layer L: l_out, or its two summands. */
static void add_residual(struct rule *r, int layer)
{
    if (layer < 0) {
        add_alt(r, "embd", -1, NULL, 0);
        return;
    }
    add_alt(r, "l_out", layer, NULL, 0);
    add_alt(r, "ffn_out", layer, "attn_out_proj", layer);
}

static struct rule attention_rule(const char *name, int l)
{
    struct rule r = { true, 0, { { 0 } } };
    if (same(name, "Qcur_pre_rope") || same(name, "Kcur_pre_rope") || same(name, "Vcur")) {
        add_alt(&r, "attn_norm", l, NULL, 0);
    } else if (same(name, "Qcur") || same(name, "Kcur")) {
        add_alt(&r, same(name, "Qcur") ? "Qcur_pre_rope" : "Kcur_pre_rope", l, NULL, 0);
        add_alt(&r, "attn_norm", l, NULL, 0);
    } else if (same(name, "cache_k") || same(name, "cache_v")) {
        add_alt(&r, same(name, "cache_k") ? "Kcur" : "Vcur", l, NULL, 0);
    } else if (same(name, "kq_soft_max")) {
        add_alt(&r, "Qcur", l, "cache_k", l);
        add_alt(&r, "Qcur", l, "Kcur", l);
    } else if (same(name, "attn_out_proj")) {
        add_alt(&r, "kq_soft_max", l, "cache_v", l);
        add_alt(&r, "kq_soft_max", l, "Vcur", l);
    } else {
        r.known = false;
    }
    return r;
}

static struct rule dataflow_rule(const char *name, int l, int last_layer)
{
    struct rule r = { true, 0, { { 0 } } };
    if (same(name, "embd")) {
        return r;                         /* the first tensor: no inputs */
    } else if (same(name, "attn_norm")) {
        add_residual(&r, l - 1);
    } else if (same(name, "ffn_inp")) {
        add_alt(&r, "attn_out_proj", l, NULL, 0);
    } else if (same(name, "ffn_out")) {
        add_alt(&r, "ffn_inp", l, NULL, 0);
        add_alt(&r, "attn_out_proj", l, NULL, 0);
    } else if (same(name, "l_out")) {
        add_alt(&r, "ffn_out", l, NULL, 0);
    } else if (same(name, "result_norm")) {
        add_residual(&r, last_layer);
    } else if (same(name, "logits")) {
        add_alt(&r, "result_norm", -1, NULL, 0);
    } else {
        r = attention_rule(name, l);
    }
    return r;
}

static const struct llorch_ckpt_row *find_row(const struct llorch_ckpt_comparison *c, const char *name, int layer)
{
    for (size_t i = 0; i < c->n_rows; i++) {
        const struct llorch_ckpt_row *r = &c->rows[i];
        if (!r->graph_name && r->layer == layer && same(r->checkpoint, name)) {
            return r;
        }
    }
    return NULL;
}

static int count_present(const struct llorch_ckpt_comparison *c, const struct input_set *s)
{
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        n += find_row(c, s->in[i].checkpoint, s->in[i].layer) != NULL;
    }
    return n;
}

/* The first alternative whose inputs are all present, else the one with
 * the most present. */
static const struct input_set *choose_inputs(const struct llorch_ckpt_comparison *c, const struct rule *r)
{
    const struct input_set *best = NULL;
    int best_present = -1;
    for (int a = 0; a < r->n_alts; a++) {
        int present = count_present(c, &r->alts[a]);
        if (present == r->alts[a].n) {
            return &r->alts[a];
        }
        if (present > best_present) {
            best = &r->alts[a];
            best_present = present;
        }
    }
    return best;
}

static void judge_origin(const struct llorch_ckpt_comparison *c, struct llorch_ckpt_row *row, int last_layer)
{
    row->origin = LLORCH_CKPT_ORIGIN_NONE;
    if (row->status == LLORCH_CKPT_STATUS_PASS) {
        return;
    }
    struct rule r = row->graph_name ? (struct rule){ false, 0, { { 0 } } }
                                    : dataflow_rule(row->checkpoint, row->layer, last_layer);
    const struct input_set *s = r.known ? choose_inputs(c, &r) : NULL;
    bool failed = false, absent = false;
    for (int i = 0; s && i < s->n; i++) {
        const struct llorch_ckpt_row *in = find_row(c, s->in[i].checkpoint, s->in[i].layer);
        struct llorch_ckpt_input *out = &row->inputs[row->n_inputs++];
        out->checkpoint = s->in[i].checkpoint;
        out->layer = s->in[i].layer;
        out->state = !in ? LLORCH_CKPT_INPUT_ABSENT
                   : in->status == LLORCH_CKPT_STATUS_PASS ? LLORCH_CKPT_INPUT_PASSED : LLORCH_CKPT_INPUT_FAILED;
        failed |= out->state == LLORCH_CKPT_INPUT_FAILED;
        absent |= out->state == LLORCH_CKPT_INPUT_ABSENT;
    }
    row->origin = !r.known ? LLORCH_CKPT_ORIGIN_UNKNOWN
                : failed   ? LLORCH_CKPT_ORIGIN_INHERITED
                : absent   ? LLORCH_CKPT_ORIGIN_UNKNOWN
                :            LLORCH_CKPT_ORIGIN_INTRODUCED;
}

/* ---- the comparison ---------------------------------------------------------------- */

static void record_only(struct llorch_ckpt_comparison *c, const struct grouping *g)
{
    for (int side = 0; side < 2; side++) {
        c->only[side] = calloc(g->n_only[side] + 1, sizeof *c->only[side]);
        if (!c->only[side]) {
            c->out_of_memory = true;
            return;
        }
        for (size_t i = 0; i < g->n_only[side]; i++) {
            const struct llorch_ckpt_entry *e = g->only[side][i].k[0].e;
            struct llorch_ckpt_key *k = &c->only[side][c->n_only[side]++];
            k->checkpoint = keep(c, e->checkpoint);
            k->graph_name = same(e->checkpoint, "graph") ? keep(c, e->graph_name) : NULL;
            k->layer = e->layer;
        }
    }
}

static void note_dtypes(struct llorch_ckpt_comparison *c)
{
    size_t n = 0;
    const struct llorch_ckpt_row *first = NULL;
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].ref_dtype != c->rows[i].cand_dtype) {
            first = first ? first : &c->rows[i];
            n++;
        }
    }
    if (first) {
        warn(c, "%zu checkpoint(s) differ in dtype, first %s (%s in the reference, %s in the candidate); "
             "values are compared as doubles (see --preset f16)", n, first->checkpoint,
             llorch_ckpt_dtype_name(first->ref_dtype), llorch_ckpt_dtype_name(first->cand_dtype));
    }
}

static int compare_groups(struct llorch_ckpt_comparison *c, const struct grouping *g,
                          const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                          const llorch_ckpt_compare_options *opt)
{
    c->rows = calloc(g->n_groups + 1, sizeof *c->rows);
    if (!c->rows) {
        return -1;
    }
    for (size_t i = 0; i < g->n_groups; i++) {
        compare_group(c, &g->groups[i], opt, ref, cand, &c->rows[c->n_rows++]);
    }
    int last_layer = llorch_ckpt_dump_model(ref)->n_layer - 1;
    for (size_t i = 0; i < c->n_rows; i++) {
        judge_origin(c, &c->rows[i], last_layer);
    }
    return 0;
}

static int run_comparison(struct llorch_ckpt_comparison *c, const llorch_ckpt_dump *ref,
                          const llorch_ckpt_dump *cand, const llorch_ckpt_compare_options *opt,
                          char *err, size_t err_size)
{
    struct grouping g;
    if (check_models(c, ref, cand, err, err_size) != 0 ||
        check_tokens(c, ref, cand, opt->allow_token_mismatch, err, err_size) != 0) {
        return -1;
    }
    note_incomplete(c, ref, "reference");
    note_incomplete(c, cand, "candidate");
    if (build_groups(&g, ref, cand) != 0) {
        llorch_set_error(err, err_size, "out of memory");
        return -1;
    }
    int rc = 0;
    if (g.n_groups == 0) {
        llorch_set_error(err, err_size, "the dumps have no checkpoint in common (%s has %zu files, %s has %zu)",
                  llorch_ckpt_dump_name(ref), llorch_ckpt_dump_n_entries(ref),
                  llorch_ckpt_dump_name(cand), llorch_ckpt_dump_n_entries(cand));
        rc = -1;
    } else if (compare_groups(c, &g, ref, cand, opt) != 0) {
        c->out_of_memory = true;
    }
    record_only(c, &g);
    free_grouping(&g);
    note_dtypes(c);
    if (rc == 0 && c->out_of_memory) {
        llorch_set_error(err, err_size, "out of memory");
        rc = -1;
    }
    return rc;
}

llorch_ckpt_comparison *llorch_ckpt_compare(const llorch_ckpt_dump *ref, const llorch_ckpt_dump *cand,
                                            const llorch_ckpt_compare_options *opt,
                                            char *err, size_t err_size)
{
    llorch_ckpt_comparison *c = calloc(1, sizeof *c);
    if (!c) {
        llorch_set_error(err, err_size, "out of memory");
        return NULL;
    }
    if (run_comparison(c, ref, cand, opt, err, err_size) != 0) {
        llorch_ckpt_comparison_free(c);
        return NULL;
    }
    return c;
}

size_t llorch_ckpt_comparison_n_rows(const llorch_ckpt_comparison *c) { return c->n_rows; }

const struct llorch_ckpt_row *llorch_ckpt_comparison_row(const llorch_ckpt_comparison *c, size_t i)
{
    return i < c->n_rows ? &c->rows[i] : NULL;
}

long llorch_ckpt_comparison_first_failure(const llorch_ckpt_comparison *c)
{
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].status != LLORCH_CKPT_STATUS_PASS) {
            return (long)i;
        }
    }
    return -1;
}

size_t llorch_ckpt_comparison_n_only(const llorch_ckpt_comparison *c, bool in_reference)
{
    return c->n_only[in_reference];
}

const struct llorch_ckpt_key *llorch_ckpt_comparison_only(const llorch_ckpt_comparison *c,
                                                          bool in_reference, size_t i)
{
    return i < c->n_only[in_reference] ? &c->only[in_reference][i] : NULL;
}

size_t llorch_ckpt_comparison_n_warnings(const llorch_ckpt_comparison *c) { return c->n_warnings; }

const char *llorch_ckpt_comparison_warning(const llorch_ckpt_comparison *c, size_t i)
{
    return i < c->n_warnings ? c->warnings[i] : NULL;
}

int llorch_ckpt_comparison_exit_code(const llorch_ckpt_comparison *c)
{
    int code = 0;
    for (size_t i = 0; i < c->n_rows; i++) {
        if (c->rows[i].status == LLORCH_CKPT_STATUS_ERROR) {
            return 2;
        }
        if (c->rows[i].status == LLORCH_CKPT_STATUS_FAIL) {
            code = 1;
        }
    }
    return code;
}

void llorch_ckpt_comparison_free(llorch_ckpt_comparison *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_strings; i++) {
        free(c->strings[i]);
    }
    for (size_t i = 0; i < c->n_warnings; i++) {
        free(c->warnings[i]);
    }
    free(c->strings);
    free(c->warnings);
    free(c->rows);
    free(c->only[0]);
    free(c->only[1]);
    free(c);
}

const char *llorch_ckpt_status_name(enum llorch_ckpt_status s)
{
    switch (s) {
    case LLORCH_CKPT_STATUS_PASS:  return "PASS";
    case LLORCH_CKPT_STATUS_FAIL:  return "FAIL";
    case LLORCH_CKPT_STATUS_ERROR: return "ERROR";
    }
    return "?";
}

const char *llorch_ckpt_origin_name(enum llorch_ckpt_origin o)
{
    switch (o) {
    case LLORCH_CKPT_ORIGIN_NONE: return "none";
    case LLORCH_CKPT_ORIGIN_INTRODUCED:  return "introduced";
    case LLORCH_CKPT_ORIGIN_INHERITED:   return "inherited";
    case LLORCH_CKPT_ORIGIN_UNKNOWN:     return "unknown";
    }
    return "?";
}
