/*
 * ttrb_bench.c — C-side write loops for benchmarks/bench_buffers.py, so the
 * cost of the ring buffer is measured without Python in the loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "ttrb.h"

struct bench_arg {
    struct ttrb_chan *chan;
    uint64_t count;
    uint32_t len;
    _Atomic int *go;
    uint64_t ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *bench_thread(void *p)
{
    struct bench_arg *a = p;
    char payload[4096];
    memset(payload, 0x5a, sizeof(payload));
    while (!atomic_load(a->go))
        ;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < a->count; i++) {
        memcpy(payload, &i, sizeof(i));
        ttrb_write(a->chan, 1, payload, a->len);
    }
    a->ns = now_ns() - t0;
    return NULL;
}

int64_t ttrb_bench_write(struct ttrb_chan *chan, uint32_t nthreads, uint64_t count,
                         uint32_t payload_len)
{
    if (nthreads < 1 || nthreads > 64 || payload_len > 4096)
        return -EINVAL;
    pthread_t th[64];
    struct bench_arg args[64];
    _Atomic int go = 0;
    uint32_t started = 0;
    for (; started < nthreads; started++) {
        args[started] = (struct bench_arg){chan, count, payload_len, &go, 0};
        if (pthread_create(&th[started], NULL, bench_thread, &args[started]) != 0)
            break;
    }
    atomic_store(&go, 1);
    uint64_t worst = 0;
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (args[i].ns > worst)
            worst = args[i].ns;
    }
    if (started < nthreads)
        return -EAGAIN;
    return (int64_t)(worst / (count ? count : 1));
}

/* The reference ring of ttrb_bench_ref_cas: 1 MiB, wrapping, one committed word per record. */
#define REF_RING (1u << 20)
static char ref_ring[REF_RING] __attribute__((aligned(64)));
static _Atomic uint64_t ref_head;

int64_t ttrb_bench_ref_cas(uint64_t count, uint32_t payload_len, int atomic)
{
    const uint32_t rec = payload_len + 10;
    if (payload_len > 4096 || rec > REF_RING / 4)
        return -EINVAL;
    char payload[4096];
    memset(payload, 0x5a, sizeof(payload));
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        uint64_t off, next;
        if (atomic) {
            off = atomic_load_explicit(&ref_head, memory_order_relaxed);
            do {
                next = off + rec;
            } while (!atomic_compare_exchange_weak_explicit(&ref_head, &off, next,
                                                            memory_order_acquire,
                                                            memory_order_relaxed));
        } else {
            off = atomic_load_explicit(&ref_head, memory_order_relaxed);
            atomic_store_explicit(&ref_head, off + rec, memory_order_relaxed);
        }
        uint32_t pos = (uint32_t)(off % (REF_RING - rec));
        uint16_t id = 1;
        uint64_t ts = __builtin_ia32_rdtsc();
        memcpy(payload, &i, sizeof(i));
        memcpy(ref_ring + pos, &id, 2);
        memcpy(ref_ring + pos + 2, &ts, 8);
        memcpy(ref_ring + pos + 10, payload, payload_len);
        atomic_thread_fence(memory_order_release); /* the commit a reader would wait for */
    }
    return (int64_t)((now_ns() - t0) / (count ? count : 1));
}
