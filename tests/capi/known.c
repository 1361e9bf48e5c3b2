/* Known events for tests/capi/test_capi.py: every field type, threads, a fork, a marker in a
 * dlopen'ed library.  Prints "emitted NAME COUNT" for each marker at the end.
 *
 *   known THREADS N [fork] [dlopen LIB] [loop SECONDS]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <tracetui/probe.h>

static int n_per_thread;

static void *worker(void *arg)
{
    int t = (int)(long)arg;
    char s[32];
    for (int k = 0; k < n_per_thread; k++) {
        snprintf(s, sizeof(s), "t%d-k%d", t, k);
        TT_MARKER(capi_all,
                  "t %d k %d i %d u %u l %ld lu %lu ll %lld llu %llu x %x p %p c %c f %f s %s",
                  t, k, -k, (unsigned)k * 3u, -(long)k * 1000000007L,
                  (unsigned long)k * 4000000000ul, -(long long)k, (unsigned long long)k << 33,
                  0xabc0u + (unsigned)k, (void *)(long)(0x1000 + k), 'a' + k % 26, k + 0.25, s);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int threads = atoi(argv[1]);
    n_per_thread = atoi(argv[2]);
    int do_fork = 0;
    const char *lib = NULL;
    double loop = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "fork"))
            do_fork = 1;
        else if (!strcmp(argv[i], "dlopen") && i + 1 < argc)
            lib = argv[++i];
        else if (!strcmp(argv[i], "loop") && i + 1 < argc)
            loop = atof(argv[++i]);
    }
    pthread_t tid[64];
    for (int t = 0; t < threads && t < 64; t++)
        pthread_create(&tid[t], NULL, worker, (void *)(long)t);
    for (int t = 0; t < threads && t < 64; t++)
        pthread_join(tid[t], NULL);
    printf("emitted capi_all %d\n", threads * n_per_thread);
    if (do_fork) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            for (int k = 0; k < n_per_thread; k++)
                TT_MARKER(capi_child, "k %d pid %d", k, (int)getpid());
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        printf("emitted capi_child %d\n", n_per_thread);
    }
    if (lib) {
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        void (*emit)(int);
        *(void **)&emit = dlsym(h, "plugin_emit");
        emit(n_per_thread);
        dlclose(h);
        printf("emitted capi_plugin %d\n", n_per_thread);
        for (int k = 0; k < n_per_thread; k++)
            TT_MARKER(capi_after_dlclose, "k %d", k);
        printf("emitted capi_after_dlclose %d\n", n_per_thread);
    }
    if (loop > 0) {
        long n = 0;
        double end = now() + loop;
        while (now() < end) {
            for (int k = 0; k < 1000; k++, n++)
                TT_MARKER(capi_loop, "n %ld", n);
            struct timespec d = {0, 1000000};
            nanosleep(&d, NULL);
        }
        printf("emitted capi_loop %ld\n", n);
    }
    return 0;
}
