/* A small multi-threaded program traced with tracetui's C API.
 *
 *   make            # builds ./workers with $(tracetui config --cflags --libs)
 *   tracetui daemon --detach; tracetui mkdir demo; tracetui write demo/start 1
 *   ./workers 4 1000
 *   tracetui write demo/start 0; tracetui dump "$(tracetui read demo/output)"
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <tracetui/probe.h>

struct job {
    int worker;
    int count;
};

static void *work(void *arg)
{
    const struct job *j = arg;
    long long sum = 0;
    for (int i = 0; i < j->count; i++) {
        sum += i;
        TT_MARKER(work_item, "worker %d item %d sum %lld", j->worker, i, sum);
    }
    TT_MARKER(work_done, "worker %d items %d state %s", j->worker, j->count, "done");
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    int count = argc > 2 ? atoi(argv[2]) : 1000;
    if (nthreads < 1 || nthreads > 256 || count < 0) {
        fprintf(stderr, "usage: workers [THREADS 1-256] [ITEMS]\n");
        return 2;
    }
    pthread_t tid[256];
    struct job jobs[256];
    for (int t = 0; t < nthreads; t++) {
        jobs[t].worker = t;
        jobs[t].count = count;
        pthread_create(&tid[t], NULL, work, &jobs[t]);
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
    TT_MARKER(run_done, "threads %d items %d", nthreads, nthreads * count);
    return 0;
}
