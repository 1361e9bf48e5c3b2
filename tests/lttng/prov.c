#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "prov.h"
#include <pthread.h>
#include <stdlib.h>
static int per_thread;
static void *work(void *arg) {
    long t = (long) arg;
    int seq[3] = {1, -2, 3};
    for (int i = 0; i < per_thread; i++) {
        lttng_ust_tracepoint(prov, ev, i, -1000L * i - t, i / 3.0, 0.5f * i, "hello", seq, (unsigned) (i % 4));
        lttng_ust_tracepoint(prov, tick, -i);
    }
    return NULL;
}
int main(int argc, char **argv) {
    int nthreads = argc > 1 ? atoi(argv[1]) : 2;
    per_thread = argc > 2 ? atoi(argv[2]) : 100;
    pthread_t th[64];
    for (long t = 0; t < nthreads; t++) pthread_create(&th[t], NULL, work, (void *) t);
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    return 0;
}
