/*
 * replay_driver.c - runs a fuzz target's LLVMFuzzerTestOneInput on every
 * file of the given folders (the seed corpus, crash reproducers), without
 * libFuzzer: the normal and sanitizer builds replay the corpus with any
 * compiler.
 *   replay_TARGET DIR_OR_FILE...
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t   cap = 4096, size = 0;
    uint8_t *data = malloc(cap);
    for (;;) {
        size_t n = data != NULL ? fread(data + size, 1, cap - size, f) : 0;
        if (n == 0) {
            break;
        }
        size += n;
        if (size == cap) {
            uint8_t *grown = realloc(data, cap * 2);
            if (grown == NULL) {
                free(data);
                data = NULL;
                break;
            }
            data = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (data == NULL) {
        fprintf(stderr, "replay: out of memory reading %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

/* Replays path, or every regular file in it; returns the count or -1. */
static int replay(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s does not exist\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return replay_file(path) == 0 ? 1 : -1;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    int count = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        if (e->d_name[0] == '.' || stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (replay_file(file) != 0) {
            count = -1;
            break;
        }
        count++;
    }
    closedir(d);
    return count;
}

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = replay(argv[i]);
        if (n < 0) {
            return 1;
        }
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 1;
    }
    printf("ok: %d inputs replayed\n", total);
    return 0;
}
