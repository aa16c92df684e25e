/* capture_outputs.c - marking checkpoints as graph outputs before llama.cpp
 * allocates a graph, so that they can all be read after it.
 *
 * The patched llama.cpp asks the eval callback about every node of a new
 * graph twice before it allocates it (the nodes' memory is not assigned
 * yet: t->buffer == NULL): the first time the capture records the graph,
 * the second time it marks the memory of the checkpoints with
 * ggml_set_output. ggml-alloc then never gives that memory to a later
 * node, and no backend fuses those nodes away; a step reads them all after
 * the last node, in the split that the graph ends with anyway, with one
 * device round trip (capture_copy.c).
 *
 * ggml-alloc plans where every node lives once for a graph and reuses that
 * plan for every later graph with as many nodes (llama.cpp's graphs of any
 * batch size share one structure), whatever their flags. So the marks must
 * be the same for every graph of one structure, from the graphs that
 * llama.cpp reserves when the context is created on: the first graph of a
 * structure decides them (its checkpoints, in graph order, within
 * output_bytes), and every later graph of that structure, and the plan of
 * a step of that structure, gets the same. A graph that llama.cpp builds
 * without asking (a llama.cpp without the patch) has no marks: its steps
 * are captured at graph splits. */
#define _POSIX_C_SOURCE 200809L
#include "capture_internal.h"

#include <ggml-backend.h>
#include <stdlib.h>
#include <string.h>

/* The number of tokens of a graph: the rows of its first residual-stream
 * tensor ([n_embd, n_tokens]). 0 when it has none. */
static int32_t tokens_of(const llorch_capture *cap, const struct llorch_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        const struct llorch_gnode *n = &g->nodes[i];
        if (n->ne[0] == cap->n_embd && n->ne[2] == 1 && n->ne[3] == 1) {
            return (int32_t) n->ne[1];
        }
    }
    return 0;
}

/* Chooses the marks of graphs with the structure of g into *set, from g. */
static int choose_marks(const llorch_capture *cap, const struct llorch_graph *g, struct llorch_plan *set) {
    struct llorch_identify_input in = {.graph = g,
                                       .n_tokens = tokens_of(cap, g),
                                       .n_layer = cap->n_layer,
                                       .n_embd = cap->n_embd,
                                       .n_vocab = cap->n_vocab,
                                       .arch = cap->arch};
    if (in.n_tokens == 0) {
        return -1; /* not a model's graph that the capture reads */
    }
    return llorch_plan_build(set, g, &in, cap->p.selection, true, cap->p.output_bytes, 0);
}

/* The marks of graphs with the structure of g: those of an earlier graph
 * of that structure, or chosen now. The budget holds for the largest graph
 * of a structure: llama.cpp reserves its graphs for the most tokens and
 * the whole cache before any step, and a larger graph than the one that
 * chose the marks chooses them again (fewer fit; a graph allocated with
 * more marks keeps them all). NULL when out of memory or when g is not a
 * model's graph. */
static const struct llorch_plan *marks_for(llorch_capture *cap, const struct llorch_graph *g) {
    for (int i = 0; i < cap->n_mark_sets; i++) {
        struct llorch_plan *set = &cap->mark_sets[i];
        if (!llorch_plan_same_graph(&set->graph, g)) {
            continue;
        }
        struct llorch_plan larger;
        if (llorch_graph_bytes(g) > llorch_graph_bytes(&set->graph) && choose_marks(cap, g, &larger) == 0) {
            llorch_plan_free(set);
            *set = larger;
        }
        return set;
    }
    struct llorch_plan *grown = realloc(cap->mark_sets, (size_t) (cap->n_mark_sets + 1) * sizeof *grown);
    if (grown == NULL) {
        return NULL;
    }
    cap->mark_sets = grown;
    return choose_marks(cap, g, &grown[cap->n_mark_sets]) == 0 ? &cap->mark_sets[cap->n_mark_sets++] : NULL;
}

static void end_recording(llorch_capture *cap) {
    struct llorch_pass *ps = &cap->pass;
    ps->marking = true;
    ps->n_marked = 0;
    ps->next_mark = 0;
    ps->marks = llorch_graph_finish(&ps->rec) == 0 ? marks_for(cap, &ps->rec) : NULL;
    cap->pass_nodes = ps->rec.n_nodes; /* how many nodes the graph about to be computed has */
}

void llorch_capture_pass_node(llorch_capture *cap, struct ggml_tensor *t) {
    struct llorch_pass *ps = &cap->pass;
    if (cap->p.output_bytes == 0 || cap->p.split_each || cap->outputs_off || cap->p.feed != NULL) {
        return; /* a fed run writes the fed tensors at graph splits: it reads there too */
    }
    if (ps->marking && ps->n_marked == ps->rec.n_nodes) { /* both rounds are over: a new graph */
        ps->marking = false;
        llorch_graph_reset(&ps->rec);
    }
    if (!ps->marking && ps->rec.n_nodes > 0 && ps->rec.nodes[0].t == t) {
        end_recording(cap); /* the second round starts */
    }
    if (!ps->marking) {
        llorch_graph_add(&ps->rec, t);
        return;
    }
    int i = ps->n_marked++;
    if (ps->marks != NULL && ps->next_mark < ps->marks->n_marks && ps->marks->marks[ps->next_mark] == i) {
        ggml_set_output(t);
        ps->next_mark++;
    }
}

int llorch_capture_plan_marks(llorch_capture *cap, struct llorch_plan *plan) {
    for (int i = 0; i < cap->n_mark_sets; i++) {
        if (llorch_plan_same_graph(&cap->mark_sets[i].graph, &plan->graph)) {
            return llorch_plan_use_marks(plan, cap->mark_sets[i].marks, cap->mark_sets[i].n_marks);
        }
    }
    return 0; /* llama.cpp never asked about a graph of this structure */
}

const struct llorch_schedule *llorch_capture_schedule(const llorch_capture *cap) {
    const struct llorch_plan *plan = cap->plan;
    return plan->uses_marks && !cap->outputs_off ? &plan->outputs : &plan->splits;
}

bool llorch_capture_output_intact(const struct ggml_tensor *t) {
    const struct ggml_tensor *base = t->view_src != NULL ? t->view_src : t;
    if (base->flags & GGML_TENSOR_FLAG_OUTPUT) {
        return true;
    }
    /* state (the KV cache) outlives every graph */
    return base->buffer != NULL && ggml_backend_buffer_get_usage(base->buffer) != GGML_BACKEND_BUFFER_USAGE_COMPUTE;
}

void llorch_capture_free_marks(llorch_capture *cap) {
    for (int i = 0; i < cap->n_mark_sets; i++) {
        llorch_plan_free(&cap->mark_sets[i]);
    }
    free(cap->mark_sets);
    llorch_graph_free(&cap->pass.rec);
}
