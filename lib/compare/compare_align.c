/*
 * compare_align.c - one row: the files of a (checkpoint, layer) in both
 * dumps lined up and compared.
 *
 * A dump may be made in one step or token by token, with any micro-batch
 * size, so files never pair up one to one. Each dump's files become a list
 * of slots, one per absolute position along the aligned axis (and per
 * sequence, in a dump of several: a slot is a (sequence, position)):
 *   token        rows pos_start.. of every step (activations, logits)
 *   key          key positions 0..K-1, from the latest step that holds them
 *                (the KV cache grows; the latest step has the final state)
 *   token + key  per token t, keys 0..t (attention scores; later keys are
 *                causally masked, and how many there are depends on steps)
 *   none         the latest step, element by element (raw, graph tensors)
 * "Latest" is the last file of the run: highest step, then last in the
 * manifest (compare_group.c). Slots present in both dumps are compared
 * element by element (compare_metrics.c).
 */
#include "compare_internal.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum align_mode {
    ALIGN_ELEMENTS,
    ALIGN_TOKEN,
    ALIGN_KEY,
    ALIGN_TOKEN_KEY
};

struct slot {
    int     seq;  /* the sequence (0 when one of each dump is compared) */
    int64_t pos;  /* absolute position along the aligned axis */
    int64_t row;  /* its index in the file                    */
    size_t  file; /* index in the side's run                  */
};

/* One dump's files of one (checkpoint, layer). */
struct side {
    const llorch_ckpt_dump *dump;
    struct llorch_cmp_run   run;
    llorch_ckpt_array     **arrays; /* per file; NULL where not needed */
    struct slot            *slots;  /* sorted by pos, one per pos */
    size_t                  n_slots;
};

struct alignment {
    enum align_mode                 mode;
    int                             axis;     /* the aligned axis (token or key), or -1 */
    int                             key_axis; /* for ALIGN_TOKEN_KEY */
    const struct llorch_ckpt_entry *model;    /* the reference's first file */
};

static int find_axis(const struct llorch_ckpt_entry *e, const char *name) {
    for (int i = 0; i < e->n_dims; i++) {
        if (strcmp(e->axes[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

static bool run_has_raw(const struct llorch_cmp_run *r) {
    for (size_t f = 0; f < r->n; f++) {
        if (r->k[f].e->raw) {
            return true;
        }
    }
    return false;
}

/* By the reference's axes; a raw tensor (llama.cpp's own layout, in either
 * dump) has no token or key axis and is compared element by element. */
static struct alignment choose_alignment(const struct llorch_cmp_group *g) {
    const struct llorch_ckpt_entry *e = g->ref.k[0].e;
    struct alignment                a = {ALIGN_ELEMENTS, -1, -1, e};
    bool                            raw = run_has_raw(&g->ref) || run_has_raw(&g->cand);
    int                             token = raw ? -1 : find_axis(e, "token");
    int                             key = raw ? -1 : find_axis(e, "key");
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
static bool axis_varies(const struct alignment *al, int i) {
    return al->mode == ALIGN_ELEMENTS || i == al->axis || i == al->key_axis;
}

static void file_path(char *buf, size_t size, const struct side *s, const struct llorch_ckpt_entry *e) {
    const char *dir = llorch_ckpt_dump_name(s->dump);
    size_t      len = strlen(dir);
    snprintf(buf, size, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", e->file);
}

/* " (axis 1 is 'head', not 'channel')" after msg, for the first axis whose
 * name differs. */
static void append_axis_mismatch(char *msg, size_t msg_size, const struct llorch_ckpt_entry *e,
                                 const struct llorch_ckpt_entry *m) {
    size_t used = strlen(msg);
    for (int i = 0; i < e->n_dims && used < msg_size; i++) {
        if (strcmp(e->axes[i], m->axes[i]) != 0) {
            snprintf(msg + used, msg_size - used, " (axis %d is '%s', not '%s')", i, e->axes[i], m->axes[i]);
            return;
        }
    }
}

static bool lines_up(const struct alignment *al, const struct llorch_ckpt_entry *e) {
    const struct llorch_ckpt_entry *m = al->model;
    bool                            ok = e->n_dims == m->n_dims;
    for (int i = 0; ok && i < e->n_dims; i++) {
        /* raw axes are named ne0.. instead: only the shape can agree */
        ok = (e->raw != m->raw || strcmp(e->axes[i], m->axes[i]) == 0) &&
             (axis_varies(al, i) || e->shape[i] == m->shape[i]);
    }
    return ok;
}

/* Every file of the group has the reference's axes, and its extents on the
 * axes that do not vary. */
static int check_layout(const struct alignment *al, const struct side *s, char *msg, size_t msg_size) {
    const struct llorch_ckpt_entry *m = al->model;
    char                            path[2048], have[128], want[128];
    for (size_t f = 0; f < s->run.n; f++) {
        const struct llorch_ckpt_entry *e = s->run.k[f].e;
        if (lines_up(al, e)) {
            continue;
        }
        file_path(path, sizeof path, s, e);
        llorch_format_shape(have, sizeof have, e->n_dims, e->shape);
        llorch_format_shape(want, sizeof want, m->n_dims, m->shape);
        snprintf(msg, msg_size, "%s: shape %s%s does not line up with the reference's %s%s", path, have,
                 e->raw ? " (raw)" : "", want, m->raw ? " (raw)" : "");
        if (e->n_dims == m->n_dims && e->raw == m->raw) {
            append_axis_mismatch(msg, msg_size, e, m);
        }
        return -1;
    }
    return 0;
}

/* Slots order and match by (sequence, position). */
static int slot_order(const struct slot *a, const struct slot *b) {
    if (a->seq != b->seq) {
        return a->seq < b->seq ? -1 : 1;
    }
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static int slot_compare(const void *pa, const void *pb) {
    const struct slot *a = pa, *b = pb;
    int                order = slot_order(a, b);
    /* Files are in step order, then manifest order: later wins. */
    return order != 0 ? order : (a->file > b->file) - (a->file < b->file);
}

/* The latest step of the run (ALIGN_ELEMENTS uses it alone). */
static size_t latest_file(const struct llorch_cmp_run *r) {
    return r->n - 1;
}

/* Rows along the aligned axis; none for a file without elements, whose
 * declared rows no bytes on disk vouch for. */
static int64_t rows_of(const struct llorch_ckpt_entry *e, int axis) {
    for (int i = 0; i < e->n_dims; i++) {
        if (e->shape[i] == 0) {
            return 0;
        }
    }
    return e->shape[axis];
}

/* Sorts the slots by position and keeps the latest of equal positions. */
static void keep_latest_slots(struct side *s, size_t n) {
    llorch_sort(s->slots, n, sizeof *s->slots, slot_compare);
    s->n_slots = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && slot_order(&s->slots[i + 1], &s->slots[i]) == 0) {
            continue;
        }
        s->slots[s->n_slots++] = s->slots[i];
    }
}

/* Fills s->slots. The sizes were checked against the files first, so the
 * number of slots is bounded by what is on disk. */
static int build_slots(const struct alignment *al, struct side *s) {
    size_t total = 0;
    for (size_t f = 0; f < s->run.n; f++) {
        total += al->mode == ALIGN_ELEMENTS ? 1 : (size_t) rows_of(s->run.k[f].e, al->axis);
    }
    s->slots = malloc((total ? total : 1) * sizeof *s->slots);
    if (!s->slots) {
        return -1;
    }
    if (al->mode == ALIGN_ELEMENTS) {
        s->slots[0] = (struct slot){0, 0, 0, latest_file(&s->run)};
        s->n_slots = 1;
        return 0;
    }
    size_t n = 0;
    for (size_t f = 0; f < s->run.n; f++) {
        const struct llorch_ckpt_entry *e = s->run.k[f].e;
        int64_t                         base = al->mode == ALIGN_KEY ? 0 : e->pos_start;
        const int64_t                  *listed = al->mode == ALIGN_KEY ? NULL : e->positions;
        for (int64_t r = 0; r < rows_of(e, al->axis); r++) {
            s->slots[n++] = (struct slot){s->run.k[f].seq, listed ? listed[r] : base + r, r, f};
        }
    }
    keep_latest_slots(s, n);
    return 0;
}

/* Reads every file of the side (so that each is checked), keeping those
 * that some slot needs; peak memory is what is kept plus one file. */
static int load_side(struct side *s, char *msg, size_t msg_size) {
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

static int check_sizes(struct side *s, char *msg, size_t msg_size) {
    for (size_t f = 0; f < s->run.n; f++) {
        if (llorch_ckpt_dump_check_size(s->dump, s->run.k[f].idx, msg, msg_size) != 0) {
            return -1;
        }
    }
    return 0;
}

static void free_side(struct side *s) {
    for (size_t f = 0; s->arrays && f < s->run.n; f++) {
        llorch_ckpt_array_free(s->arrays[f]);
    }
    free(s->arrays);
    free(s->slots);
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* The elements of one position in both files (the whole files when
 * aligned element by element). */
static struct llorch_cmp_block make_block(const struct alignment *al, const struct slot *rs, const struct slot *cs,
                                          const llorch_ckpt_array *ra, const llorch_ckpt_array *ca) {
    struct llorch_cmp_block b = {0};
    int                     n = llorch_ckpt_array_n_dims(ra);
    b.n_axes = n ? n : 1;
    b.extent[0] = 1;
    llorch_cmp_strides(ra, b.ref_stride);
    llorch_cmp_strides(ca, b.cand_stride);
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
static int check_element_shapes(const struct side *ref, const struct side *cand, char *msg, size_t msg_size) {
    const struct llorch_ckpt_entry *a = ref->run.k[ref->slots[0].file].e;
    const struct llorch_ckpt_entry *b = cand->run.k[cand->slots[0].file].e;
    char                            have[128], want[128], path[2048];
    llorch_format_shape(have, sizeof have, b->n_dims, b->shape);
    llorch_format_shape(want, sizeof want, a->n_dims, a->shape);
    if (strcmp(have, want) == 0) {
        return 0;
    }
    file_path(path, sizeof path, cand, b);
    snprintf(msg, msg_size, "%s: shape %s%s differs from the reference's %s%s", path, have, b->raw ? " (raw)" : "",
             want, a->raw ? " (raw)" : "");
    return -1;
}

/* Merge-joins the slots of both sides by position. */
static int compare_sides(const struct alignment *al, const struct side *ref, const struct side *cand,
                         struct llorch_cmp_accum *acc, struct llorch_cmp_coverage *cov) {
    size_t i = 0, j = 0;
    while (i < ref->n_slots && j < cand->n_slots) {
        const struct slot *rs = &ref->slots[i], *cs = &cand->slots[j];
        int                order = slot_order(rs, cs);
        if (order != 0) {
            cov->ref_only += order < 0;
            cov->cand_only += order > 0;
            i += order < 0;
            j += order > 0;
            continue;
        }
        const llorch_ckpt_array *ra = ref->arrays[rs->file], *ca = cand->arrays[cs->file];
        struct llorch_cmp_block  b = make_block(al, rs, cs, ra, ca);
        b.ref_step = ref->run.k[rs->file].e->step;
        b.cand_step = cand->run.k[cs->file].e->step;
        if (llorch_cmp_compare_block(&b, ra, ca, acc) != 0 ||
            (acc->logits && llorch_cmp_logits_add(acc->logits, &b, rs->seq, ra, ca) != 0)) {
            return -1;
        }
        i++;
        j++;
    }
    cov->ref_only += (int64_t) (ref->n_slots - i);
    cov->cand_only += (int64_t) (cand->n_slots - j);
    return 0;
}

/* Checks before reading: layouts and sizes first, so that a file that lies
 * costs nothing. */
static int align_and_compare(const struct llorch_cmp_group *g, struct side *ref, struct side *cand,
                             struct llorch_cmp_accum *acc, struct llorch_cmp_coverage *cov, char *msg,
                             size_t msg_size) {
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
        snprintf(msg, msg_size, "no position in common (the reference has %zu, the candidate %zu)", ref->n_slots,
                 cand->n_slots);
        return -1;
    }
    return 0;
}

static void init_row(struct llorch_ckpt_comparison *c, struct llorch_ckpt_row *row, const struct llorch_cmp_group *g,
                     const llorch_ckpt_compare_options *opt) {
    const struct llorch_ckpt_entry *e = g->ref.k[0].e;
    int                             kind = g->ref.k[0].kind;
    memset(row, 0, sizeof *row);
    row->checkpoint = llorch_cmp_keep(c, e->checkpoint);
    row->graph_name = kind == LLORCH_CKPT_GRAPH ? llorch_cmp_keep(c, e->graph_name) : NULL;
    row->layer = e->layer;
    row->n_axes = e->n_dims;
    for (int i = 0; i < e->n_dims; i++) {
        row->axes[i] = llorch_cmp_keep(c, e->axes[i]);
    }
    row->ref_dtype = e->dtype;
    row->cand_dtype = g->cand.k[0].e->dtype;
    row->tolerance = llorch_cmp_tolerance(opt, kind);
}

int llorch_cmp_align_group(const struct llorch_cmp_group *g, const llorch_ckpt_dump *rd, const llorch_ckpt_dump *cd,
                           struct llorch_cmp_accum *acc, struct llorch_cmp_coverage *cov, char *msg, size_t msg_size) {
    struct side ref = {rd, g->ref, NULL, NULL, 0};
    struct side cand = {cd, g->cand, NULL, NULL, 0};
    int         rc = align_and_compare(g, &ref, &cand, acc, cov, msg, msg_size);
    free_side(&ref);
    free_side(&cand);
    return rc;
}

void llorch_cmp_compare_group(struct llorch_ckpt_comparison *c, const struct llorch_cmp_group *g,
                              const llorch_ckpt_compare_options *opt, const llorch_ckpt_dump *rd,
                              const llorch_ckpt_dump *cd, struct llorch_ckpt_row *row) {
    struct llorch_cmp_accum    acc = {.max_abs = -1};
    struct llorch_cmp_coverage cov = {0, 0};
    char                       msg[4096];
    init_row(c, row, g, opt);
    acc.tol = row->tolerance;
    acc.logits = llorch_cmp_logits_begin(c, g, opt); /* NULL but for the logits */
    int rc = llorch_cmp_align_group(g, rd, cd, &acc, &cov, msg, sizeof msg);
    llorch_cmp_logits_end(c, acc.logits, rc == 0);
    if (rc != 0) {
        row->status = LLORCH_CKPT_STATUS_ERROR;
        row->message = llorch_cmp_keep(c, msg);
    } else {
        llorch_cmp_finish_metrics(&acc, &row->metrics);
        row->status =
            llorch_cmp_metrics_pass(&row->metrics, &row->tolerance) ? LLORCH_CKPT_STATUS_PASS : LLORCH_CKPT_STATUS_FAIL;
    }
    row->n_ref_only = cov.ref_only;
    row->n_cand_only = cov.cand_only;
}
