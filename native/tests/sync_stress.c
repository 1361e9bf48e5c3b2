/*
 * sync_stress.c — ttpr_synchronize under AddressSanitizer.
 *
 * Writer threads emit through one marker (some threads come and go, so
 * reader nodes are registered, handed back and reused) while the main thread
 * swaps the marker between two channels' target lists, calls
 * ttpr_synchronize, and frees the list it replaced at once: an emit still
 * using it would be a use-after-free, which ASan reports.  After each
 * synchronize the channel swapped out must not gain a single committed
 * record (every emit begun under the old list has finished, commit
 * included).  Finally a writer held between reserve and commit by the test
 * hook must make ttpr_synchronize time out, and release it once let go.
 *
 *   sync_stress SHM_PREFIX THREADS SWAPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ttrb.h"
#include "ttpr.h"

static struct ttpr_marker marker;
static _Atomic int running = 1;
static _Atomic uint64_t emitted;

static void *writer(void *arg)
{
    long churn = (long)arg;
    do {
        /* Churning threads exit after a while and are replaced by new ones. */
        for (uint64_t i = 0; atomic_load(&running) && (!churn || i < 20000); i++) {
            ttpr_emit_i3(&marker, (int64_t)i, 1, 2);
            atomic_fetch_add_explicit(&emitted, 1, memory_order_relaxed);
        }
        if (churn && atomic_load(&running)) {
            pthread_t t;
            if (pthread_create(&t, NULL, writer, arg) == 0)
                pthread_detach(t);
        }
    } while (0);
    return NULL;
}

static uint64_t recorded(struct ttrb_chan *c)
{
    uint64_t n = 0;
    struct ttrb_stats st;
    for (uint32_t b = 0; b < ttrb_chan_nbuf(c); b++) {
        ttrb_stats(c, b, &st);
        n += st.recorded;
    }
    return n;
}

static void *held_emit(void *arg)
{
    (void)arg;
    ttpr_emit_i3(&marker, 1, 2, 3);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int nthreads = atoi(argv[2]), swaps = atoi(argv[3]);
    uint8_t uuid[16] = {0};
    struct ttrb_chan *ch[2];
    for (int i = 0; i < 2; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s-%d", argv[1], i);
        if (ttrb_chan_create(name, 16384, 4, 4, TTRB_FLAG_FLIGHT, uuid, 0, &ch[i]))
            return 3;
        ttrb_chan_unlink(name);
    }
    uint8_t types[3] = {TTPR_I64, TTPR_I64, TTPR_I64};
    ttpr_marker_init(&marker, 1, types, 3);
    struct ttpr_targets *t = ttpr_targets_new(1);
    ttpr_targets_set(t, 0, ch[0]);
    ttpr_marker_swap(&marker, t);

    pthread_t th[64];
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_create(&th[i], NULL, writer, (void *)(long)(i % 2));
    int bad = 0;
    for (int s = 1; s <= swaps; s++) {
        struct ttpr_targets *n = ttpr_targets_new(1);
        ttpr_targets_set(n, 0, ch[s % 2]);
        struct ttpr_targets *old = ttpr_marker_swap(&marker, n);
        int rc = ttpr_synchronize(5000000000ULL);
        if (rc) {
            fprintf(stderr, "synchronize: %d\n", rc);
            bad = 1;
        }
        ttpr_targets_free(old); /* at once: no emit may still use it */
        uint64_t before = recorded(ch[(s + 1) % 2]);
        struct timespec d = {0, 2000000};
        nanosleep(&d, NULL);
        uint64_t after = recorded(ch[(s + 1) % 2]);
        if (after != before) {
            fprintf(stderr, "swap %d: %llu records reached the old channel after synchronize\n",
                    s, (unsigned long long)(after - before));
            bad = 1;
        }
    }
    atomic_store(&running, 0);
    for (int i = 0; i < nthreads && i < 64; i++)
        pthread_join(th[i], NULL);
    usleep(100000); /* churned threads see running == 0 and leave */

    /* A writer held between reserve and commit: synchronize cannot finish. */
    ttpr_test_hold(1);
    pthread_t h;
    pthread_create(&h, NULL, held_emit, NULL);
    while (!ttpr_test_held())
        usleep(1000);
    int rc_held = ttpr_synchronize(50000000ULL);
    ttpr_test_hold(0);
    pthread_join(h, NULL);
    int rc_free = ttpr_synchronize(1000000000ULL);
    printf("emitted=%llu held=%d released=%d\n", (unsigned long long)atomic_load(&emitted),
           rc_held, rc_free);
    if (rc_held != -ETIMEDOUT || rc_free != 0)
        bad = 1;
    return bad;
}
