/* Loops timed by benchmarks/bench_c.py.  Built twice: with -DWITH_TRACETUI against the public
 * header and library, and with -DWITH_LTTNG against an LTTng-UST provider (tp.h) of the same
 * three integers.  Both builds also time the reference CAS ring (ref_cas below).
 *
 *   bench_c COUNT REPEAT   prints "name ns_per_event" lines (median of REPEAT rounds minus the
 *                          bare loop's median)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>
#ifdef WITH_TRACETUI
#include <tracetui/probe.h>
#endif
#ifdef WITH_LTTNG
#include "tp.h"
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The reference: a bare lock-free ring of 48-byte records, a CAS on the write offset, an
 * rdtsc timestamp, a release store as the commit.  No sub-buffers, packets or loss counting. */
#define RING (1u << 20) /* 1 MiB: as ttrb_bench_ref_cas, the ring stays in cache */
static char ring[RING] __attribute__((aligned(64)));
static uint64_t _Atomic head;
static uint64_t _Atomic committed;

static __attribute__((noinline)) void ref_cas(int a, int b, int c)
{
    uint64_t off = __atomic_load_n(&head, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&head, &off, off + 48, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
        ;
    char *p = ring + (off & (RING - 1));
    uint64_t ts = __rdtsc();
    uint16_t id = 7;
    memcpy(p, &id, 2);
    memcpy(p + 2, &ts, 8);
    memcpy(p + 10, &a, 4);
    memcpy(p + 14, &b, 4);
    memcpy(p + 18, &c, 4);
    memset(p + 22, 0, 26);
    __atomic_store_n(&committed, off + 48, __ATOMIC_RELEASE); /* the commit a reader waits for */
}

static volatile int sink;

static uint64_t bare(long n)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        sink = (int)i;
    return now_ns() - t0;
}

static uint64_t cas(long n)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        sink = (int)i;
        ref_cas((int)i, 2, 3);
    }
    return now_ns() - t0;
}

#ifdef WITH_TRACETUI
static uint64_t emit_ints(long n)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        sink = (int)i;
        TT_MARKER(bench_ints, "a %d b %d c %d", (int)i, 2, 3);
    }
    return now_ns() - t0;
}

static uint64_t emit_str(long n)
{
    const char *s = "sixteen-chars-ab";
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        sink = (int)i;
        TT_MARKER(bench_str, "a %d b %d s %s", (int)i, 2, s);
    }
    return now_ns() - t0;
}

static uint64_t disabled(long n)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        sink = (int)i;
        TT_MARKER(bench_off, "a %d b %d c %d", (int)i, 2, 3);
    }
    return now_ns() - t0;
}
#endif

#ifdef WITH_LTTNG
static uint64_t lttng_ints(long n)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        sink = (int)i;
        lttng_ust_tracepoint(bench, ints, (int)i, 2, 3);
    }
    return now_ns() - t0;
}
#endif

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_of(uint64_t *v, int repeat, long n)
{
    qsort(v, (size_t)repeat, sizeof(v[0]), cmp);
    return (double)v[repeat / 2] / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int repeat = argc > 2 ? atoi(argv[2]) : 9;
    if (repeat < 1 || repeat > 64)
        repeat = 9;
    /* Every round runs each loop once, so a noisy neighbour (this is a shared VM) hits every
     * figure alike; each figure is the median of its rounds minus the bare loop's. */
    static const char *names[] = {"bare", "ref_ring_cas_ns",
#ifdef WITH_TRACETUI
                                  "c_emit_ints_ns", "c_emit_str_ns", "c_disabled_ns",
#endif
#ifdef WITH_LTTNG
                                  "ref_lttng_ust_ns",
#endif
    };
    uint64_t (*const loops[])(long) = {bare, cas,
#ifdef WITH_TRACETUI
                                       emit_ints, emit_str, disabled,
#endif
#ifdef WITH_LTTNG
                                       lttng_ints,
#endif
    };
    enum { N = sizeof(loops) / sizeof(loops[0]) };
    static uint64_t v[N][64];
    for (int r = 0; r < repeat; r++)
        for (int i = 0; i < N; i++)
            v[i][r] = loops[i](n);
    double b = median_of(v[0], repeat, n);
    for (int i = 1; i < N; i++)
        printf("%s %.3f\n", names[i], median_of(v[i], repeat, n) - b);
    return 0;
}
