/* Reads a dump and compares it with itself through the installed library:
 * consumer DUMP_DIR prints "N rows, exit status S". */
#include <llorch_compare.h>

#include <stdio.h>

int main(int argc, char **argv) {
    char err[1024];
    if (argc != 2) {
        fprintf(stderr, "usage: consumer DUMP_DIR\n");
        return 2;
    }
    llorch_ckpt_dump            *d = llorch_ckpt_dump_open(argv[1], err, sizeof err);
    llorch_ckpt_compare_options *o = llorch_ckpt_compare_options_create();
    llorch_ckpt_comparison      *c = d && o ? llorch_ckpt_compare(d, d, o, err, sizeof err) : NULL;
    if (!c) {
        fprintf(stderr, "consumer: %s\n", err);
        return 2;
    }
    printf("%zu rows, exit status %d\n", llorch_ckpt_comparison_n_rows(c), llorch_ckpt_comparison_exit_code(c));
    llorch_ckpt_comparison_free(c);
    llorch_ckpt_compare_options_free(o);
    llorch_ckpt_dump_free(d);
    return 0;
}
