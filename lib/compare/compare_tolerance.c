/*
 * compare_tolerance.c - the comparison's options: the tolerance presets,
 * the --tol settings ("[CHECKPOINT:]key=value,..."), applied in order over
 * the preset, and the tolerance that results for each checkpoint kind.
 * A setting names its checkpoint by kind, so that a misspelled name is an
 * error when it is given, not a setting that never applies.
 */
#include "compare_internal.h"
#include "error.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    SET_ATOL = 1,
    SET_RTOL = 2,
    SET_NMSE = 4,
    SET_WITHIN = 8
};

/* One --tol/--atol/...: applied in order, so later settings win. */
struct tol_setting {
    int                          kind; /* LLORCH_CMP_NO_KIND: every checkpoint */
    unsigned                     set;
    struct llorch_ckpt_tolerance tol;
};

struct llorch_ckpt_compare_options {
    const char                  *preset;
    struct llorch_ckpt_tolerance base;
    struct tol_setting          *settings;
    size_t                       n_settings;
    bool                         allow_token_mismatch;
    bool                         allow_model_mismatch;
    int                          seq[2]; /* [0] reference, [1] candidate; -1: every one */
    double                       noise_factor;
    double                       kl_max;         /* the decision's mean KL allowed (compare_logits.c) */
    bool                         by_decision;    /* --decision: the logits decide */
    bool                         auto_judgement; /* the default: no preset or limit given */
    llorch_ckpt_selection       *only;           /* --only, or NULL: every checkpoint */
    bool                         allow_missing;
};

/* A row passes the noise floor when its errors are within 4x the spread
 * of the two references: correct candidates measured at up to 2.0x
 * (f32/f16 models), faults at 1000x and more (docs/COMPARE.md). */
#define DEFAULT_NOISE_FACTOR 4.0

/* f32: two correct implementations in f32 differ by summation order, fused
 * multiply-adds and exp/rsqrt approximations: ~1e-7 relative per op,
 * growing through the layers to ~1e-5. atol 1e-4 / rtol 1e-3 leaves a
 * margin of 10-100x; NMSE 1e-6 (RMS error 0.1% of the reference's spread)
 * catches a small error spread over a whole low-variance tensor.
 * f16: one dump holds f16 (KV cache, weights or --dtype native): f16 has an
 * 11-bit mantissa (rounding error up to 4.9e-4 relative) and that error
 * propagates; 1e-2 / 1e-2 / NMSE 1e-4 (RMS error 1%).
 * backend: two dumps of llama.cpp from different backends or settings
 * (CPU vs CUDA, flash attention on vs off, f16 vs f32 KV cache): measured
 * on CPU, NMSE up to 1.2e-4 (qwen2 Q8_0, f16 vs f32 cache) with every
 * element within 1e-2 / 1e-2; on an H200, relative errors up to 1.2e-2
 * (qwen2, ffn_out). 3e-2 / 3e-2 / NMSE 1e-3 leaves 2.5x and 8x over
 * those (docs/COMPARE.md has the table).
 * exact: bit for bit (same implementation, same settings: determinism). */
static const struct preset {
    const char                  *name;
    struct llorch_ckpt_tolerance tol;
} presets[] = {
    /* auto: judged by compare_judge.c; its tolerance only counts the
     * elements within f32's atol/rtol (informative) and holds the NMSE
     * ceiling that fails a row wherever it stands. */
    {"auto", {1e-4, 1e-3, LLORCH_CMP_CEILING_NMSE, 0.0}},
    {"f32", {1e-4, 1e-3, 1e-6, 1.0}},
    {"f16", {1e-2, 1e-2, 1e-4, 1.0}},
    {"backend", {3e-2, 3e-2, 1e-3, 1.0}},
    {"exact", {0.0, 0.0, 0.0, 1.0}},
};

llorch_ckpt_compare_options *llorch_ckpt_compare_options_create(void) {
    llorch_ckpt_compare_options *o = calloc(1, sizeof *o);
    if (o) {
        o->preset = presets[0].name;
        o->base = presets[0].tol;
        o->seq[0] = o->seq[1] = -1;
        o->noise_factor = DEFAULT_NOISE_FACTOR;
        o->kl_max = LLORCH_CKPT_KL_MAX_DEFAULT;
        o->auto_judgement = true;
    }
    return o;
}

int llorch_ckpt_compare_options_preset(llorch_ckpt_compare_options *o, const char *preset, char *err, size_t err_size) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(preset, presets[i].name) == 0) {
            o->preset = presets[i].name;
            o->base = presets[i].tol;
            o->auto_judgement = i == 0;
            free(o->settings); /* a preset replaces what came before */
            o->settings = NULL;
            o->n_settings = 0;
            return 0;
        }
    }
    llorch_set_error(err, err_size, "unknown preset '%s' (auto, f32, f16, backend, exact)", preset);
    return -1;
}

static int parse_tol_value(const char *key, const char *value, struct tol_setting *s, char *err, size_t err_size) {
    static const struct {
        const char *key;
        unsigned    bit;
    } keys[] = {
        {"atol", SET_ATOL},
        {"rtol", SET_RTOL},
        {"nmse", SET_NMSE},
        {"within", SET_WITHIN},
    };
    char  *end;
    double v = strtod(value, &end);
    if (end == value || *end || !isfinite(v) || v < 0) {
        llorch_set_error(err, err_size, "tolerance %s=%s: not a non-negative number", key, value);
        return -1;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i].key) != 0) {
            continue;
        }
        if (keys[i].bit == SET_WITHIN && v > 1) {
            llorch_set_error(err, err_size, "tolerance within=%s: a fraction in [0, 1]", value);
            return -1;
        }
        double *field[] = {&s->tol.atol, &s->tol.rtol, &s->tol.nmse, &s->tol.within};
        *field[i] = v;
        s->set |= keys[i].bit;
        return 0;
    }
    llorch_set_error(err, err_size, "unknown tolerance '%s' (atol, rtol, nmse, within)", key);
    return -1;
}

/* "key=value,key=value" into s. */
static int parse_tol_list(char *list, struct tol_setting *s, char *err, size_t err_size) {
    for (char *item = list; item;) {
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

/* The kind a setting names; every name a dump can hold ("graph" too) is
 * listed when the name is none of them. */
static int parse_checkpoint(const char *name, int *kind, char *err, size_t err_size) {
    char known[1024] = "";
    *kind = llorch_ckpt_kind_from_name(name);
    if (*kind >= 0) {
        return 0;
    }
    for (int k = 0, used = 0; k < LLORCH_CKPT_KIND_COUNT && used < (int) sizeof known; k++) {
        used += snprintf(known + used, sizeof known - (size_t) used, "%s%s", k ? ", " : "",
                         llorch_ckpt_kind_info((enum llorch_ckpt_kind) k)->name);
    }
    llorch_set_error(err, err_size, "unknown checkpoint '%s' (%s)", name, known);
    return -1;
}

/* "[CHECKPOINT:]list" into s; text is modified. */
static int parse_spec(char *text, struct tol_setting *s, char *err, size_t err_size) {
    char *list = text, *colon = strchr(text, ':'), *eq = strchr(text, '=');
    s->kind = LLORCH_CMP_NO_KIND;
    if (colon && (!eq || colon < eq)) {
        *colon = '\0';
        list = colon + 1;
        if (text[0] && parse_checkpoint(text, &s->kind, err, err_size) != 0) {
            return -1;
        }
    }
    return parse_tol_list(list, s, err, err_size);
}

int llorch_ckpt_compare_options_tolerance(llorch_ckpt_compare_options *o, const char *spec, char *err,
                                          size_t err_size) {
    struct tol_setting  s = {0};
    char               *text = llorch_strdup(spec);
    struct tol_setting *grown = realloc(o->settings, (o->n_settings + 1) * sizeof *grown);
    if (grown) {
        o->settings = grown;
    }
    if (!text || !grown) {
        llorch_set_error(err, err_size, "out of memory");
        free(text);
        return -1;
    }
    int rc = parse_spec(text, &s, err, err_size);
    if (rc == 0) {
        o->settings[o->n_settings++] = s;
        if (o->auto_judgement) { /* an explicit limit: the f32 preset under it */
            o->auto_judgement = false;
            o->preset = presets[1].name;
            o->base = presets[1].tol;
        }
    }
    free(text);
    return rc;
}

void llorch_ckpt_compare_options_allow_token_mismatch(llorch_ckpt_compare_options *o, bool allow) {
    o->allow_token_mismatch = allow;
}

bool llorch_cmp_allow_token_mismatch(const llorch_ckpt_compare_options *o) {
    return o->allow_token_mismatch;
}

void llorch_ckpt_compare_options_allow_model_mismatch(llorch_ckpt_compare_options *o, bool allow) {
    o->allow_model_mismatch = allow;
}

bool llorch_cmp_allow_model_mismatch(const llorch_ckpt_compare_options *o) {
    return o->allow_model_mismatch;
}

void llorch_ckpt_compare_options_sequences(llorch_ckpt_compare_options *o, int ref_seq, int cand_seq) {
    o->seq[0] = ref_seq;
    o->seq[1] = cand_seq;
}

int llorch_ckpt_compare_options_noise_factor(llorch_ckpt_compare_options *o, double k, char *err, size_t err_size) {
    if (!isfinite(k) || k < 1) {
        llorch_set_error(err, err_size, "noise factor %g: a finite number of at least 1", k);
        return -1;
    }
    o->noise_factor = k;
    return 0;
}

double llorch_ckpt_compare_options_get_noise_factor(const llorch_ckpt_compare_options *o) {
    return o->noise_factor;
}

/* ---- the decision's settings (compare_logits.c) ---- */

int llorch_ckpt_compare_options_kl_max(llorch_ckpt_compare_options *o, double kl_max, char *err, size_t err_size) {
    if (!isfinite(kl_max) || kl_max < 0) {
        llorch_set_error(err, err_size, "KL divergence bound %g: a finite number of at least 0", kl_max);
        return -1;
    }
    o->kl_max = kl_max;
    return 0;
}

double llorch_ckpt_compare_options_get_kl_max(const llorch_ckpt_compare_options *o) {
    return o->kl_max;
}

void llorch_ckpt_compare_options_decision(llorch_ckpt_compare_options *o, bool by_logits) {
    o->by_decision = by_logits;
}

bool llorch_cmp_decision_asked(const llorch_ckpt_compare_options *o) {
    return o->by_decision;
}

int llorch_cmp_sequence(const llorch_ckpt_compare_options *o, bool reference) {
    return o->seq[reference ? 0 : 1];
}

const char *llorch_ckpt_compare_options_preset_name(const llorch_ckpt_compare_options *o) {
    return o->preset;
}

struct llorch_ckpt_tolerance llorch_cmp_tolerance(const llorch_ckpt_compare_options *o, int kind) {
    struct llorch_ckpt_tolerance t = o->base;
    for (size_t i = 0; i < o->n_settings; i++) {
        const struct tol_setting *s = &o->settings[i];
        if (s->kind != LLORCH_CMP_NO_KIND && s->kind != kind) {
            continue;
        }
        t.atol = (s->set & SET_ATOL) ? s->tol.atol : t.atol;
        t.rtol = (s->set & SET_RTOL) ? s->tol.rtol : t.rtol;
        t.nmse = (s->set & SET_NMSE) ? s->tol.nmse : t.nmse;
        t.within = (s->set & SET_WITHIN) ? s->tol.within : t.within;
    }
    return t;
}

/* A name that is no kind gets what applies to every checkpoint: no setting
 * can name it. */
struct llorch_ckpt_tolerance llorch_ckpt_compare_options_get(const llorch_ckpt_compare_options *o,
                                                             const char                        *checkpoint) {
    return llorch_cmp_tolerance(o, checkpoint ? llorch_ckpt_kind_from_name(checkpoint) : LLORCH_CMP_NO_KIND);
}

bool llorch_cmp_auto_judgement(const llorch_ckpt_compare_options *o) {
    return o->auto_judgement;
}

int llorch_ckpt_compare_options_only(llorch_ckpt_compare_options *o, const char *list, char *err, size_t err_size) {
    llorch_ckpt_selection *sel = llorch_ckpt_selection_create(list, "all", err, err_size);
    if (!sel) {
        return -1;
    }
    llorch_ckpt_selection_free(o->only);
    o->only = sel;
    return 0;
}

const llorch_ckpt_selection *llorch_cmp_only(const llorch_ckpt_compare_options *o) {
    return o->only;
}

void llorch_ckpt_compare_options_allow_missing(llorch_ckpt_compare_options *o, bool allow) {
    o->allow_missing = allow;
}

bool llorch_cmp_allow_missing(const llorch_ckpt_compare_options *o) {
    return o->allow_missing;
}

void llorch_ckpt_compare_options_free(llorch_ckpt_compare_options *o) {
    if (o) {
        llorch_ckpt_selection_free(o->only);
        free(o->settings);
        free(o);
    }
}
