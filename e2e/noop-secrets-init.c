/*
 * A do-nothing stand-in for secrets-init, used only to prove that scripts/test-e2e
 * fails when secrets-init does not do its job (E2E_NOOP_SECRETS_INIT=1).
 *
 * It behaves like secrets-init everywhere except the one thing that matters:
 *   noop install DIR                 copies itself to DIR/secrets-init
 *   noop [flags] -- program args...  execs program with the environment unchanged
 * so pods start normally and only the assertions on the app's environment can notice.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int install(const char *dir) {
    char dst[4096];
    char buf[65536];
    ssize_t n;
    int in, out;
    snprintf(dst, sizeof dst, "%s/secrets-init", dir);
    in = open("/proc/self/exe", O_RDONLY);
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0555);
    if (in < 0 || out < 0) {
        perror("noop-secrets-init: install");
        return 1;
    }
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            perror("noop-secrets-init: write");
            return 1;
        }
    }
    close(in);
    return close(out) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int i;
    if (argc == 3 && strcmp(argv[1], "install") == 0) {
        return install(argv[2]);
    }
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0 && i + 1 < argc) {
            execvp(argv[i + 1], &argv[i + 1]);
            perror("noop-secrets-init: exec");
            return 127;
        }
    }
    fprintf(stderr, "noop-secrets-init: usage: install DIR | [flags] -- program [args...]\n");
    return 2;
}
