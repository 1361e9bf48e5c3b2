/*
 * stress.c — the ring buffer's protocol under ThreadSanitizer.
 *
 * Writer threads hammer one channel (per-CPU buffers chosen by sched_getcpu,
 * or a global one) while a consumer thread drains it and, in flight mode, a
 * snapshot thread copies it; flight mode is toggled while they run.  At the
 * end every record read must be intact, in timestamp order per buffer, and
 *     emitted == read + discarded + overwritten + too_big
 * must hold exactly.  Built by tests/test_native_stress.py with
 * -fsanitize=thread, so any data race in the protocol fails the test too.
 *
 *   stress SHM_NAME THREADS RECORDS_PER_THREAD GLOBAL(0|1) FLIGHT(0|1)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ttrb.h"

#define PAYLOAD 24

struct rec {
    uint64_t writer, seq, check;
};

static struct ttrb_chan *chan;
static uint64_t per_thread;
static _Atomic int writers_left;
static _Atomic uint64_t emitted;
static uint64_t read_count;
static int failures;
static int flight;

static uint64_t checksum(uint64_t w, uint64_t s)
{
    return w * 0x9E3779B97F4A7C15ULL ^ s * 0xC2B2AE3D27D4EB4FULL;
}

static void *writer(void *arg)
{
    uint64_t w = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < per_thread; i++) {
        struct rec r = {w, i, checksum(w, i)};
        ttrb_write(chan, 3, &r, sizeof(r));
        atomic_fetch_add(&emitted, 1);
        if (w == 0 && i % 5000 == 0)
            ttrb_chan_set_flight(chan, flight && (i / 5000) % 2 == 0);
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

static uint64_t last_ts[TTRB_MAX_BUFFERS];
static uint64_t last_seq[TTRB_MAX_BUFFERS][64];

static void check_packet(uint32_t b, const char *p, uint32_t size)
{
    uint64_t content, psize;
    memcpy(&content, p + 40, 8);
    memcpy(&psize, p + 48, 8);
    content /= 8;
    if (psize != (uint64_t)size * 8 || content > size) {
        fprintf(stderr, "bad packet sizes\n");
        failures++;
        return;
    }
    for (uint64_t off = TTRB_PACKET_HEADER_SIZE; off < content;) {
        uint16_t id;
        uint64_t ts;
        struct rec r;
        memcpy(&id, p + off, 2);
        memcpy(&ts, p + off + 2, 8);
        memcpy(&r, p + off + 10, sizeof(r));
        off += 10 + sizeof(r);
        read_count++;
        if (id != 3 || r.check != checksum(r.writer, r.seq) || r.writer >= 64) {
            fprintf(stderr, "torn record in buffer %u\n", b);
            failures++;
            return;
        }
        if (ts < last_ts[b]) {
            fprintf(stderr, "timestamps go backwards in buffer %u\n", b);
            failures++;
        }
        last_ts[b] = ts;
        if (last_seq[b][r.writer] && r.seq < last_seq[b][r.writer]) {
            fprintf(stderr, "a thread's records out of order in buffer %u\n", b);
            failures++;
        }
        last_seq[b][r.writer] = r.seq + 1;
    }
}

static void drain(void)
{
    uint32_t n = ttrb_chan_nbuf(chan);
    for (uint32_t b = 0; b < n; b++) {
        const char *p;
        uint32_t size;
        while (ttrb_get_subbuf(chan, b, &p, &size) == 0) {
            check_packet(b, p, size);
            ttrb_put_subbuf(chan, b);
        }
    }
}

static void *consumer(void *arg)
{
    (void)arg;
    while (atomic_load(&writers_left) > 0)
        drain();
    return NULL;
}

static void *snapshotter(void *arg)
{
    (void)arg;
    uint64_t len = (uint64_t)ttrb_chan_n_subbuf(chan) * ttrb_chan_subbuf_size(chan);
    char *dst = malloc(len);
    while (atomic_load(&writers_left) > 0) {
        int64_t n = ttrb_snapshot(chan, 0, dst, len);
        for (int64_t off = 0; off < n; off += ttrb_chan_subbuf_size(chan)) {
            uint64_t content;
            memcpy(&content, dst + off + 40, 8);
            for (uint64_t o = TTRB_PACKET_HEADER_SIZE; o < content / 8; o += 10 + PAYLOAD) {
                struct rec r;
                memcpy(&r, dst + off + o + 10, sizeof(r));
                if (r.check != checksum(r.writer, r.seq)) {
                    fprintf(stderr, "torn record in a snapshot\n");
                    failures++;
                    break;
                }
            }
        }
    }
    free(dst);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: stress SHM THREADS RECORDS GLOBAL FLIGHT\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    per_thread = strtoull(argv[3], NULL, 10);
    int global = atoi(argv[4]);
    flight = atoi(argv[5]);
    uint8_t uuid[16] = {0};
    int rc = ttrb_chan_create(argv[1], 4096, 4, 2, global ? TTRB_FLAG_GLOBAL : 0, uuid, 0,
                              &chan);
    if (rc) {
        fprintf(stderr, "create: %s\n", strerror(-rc));
        return 2;
    }
    ttrb_chan_unlink(argv[1]);
    atomic_store(&writers_left, threads);
    pthread_t th[64], cons, snap;
    pthread_create(&cons, NULL, consumer, NULL);
    pthread_create(&snap, NULL, snapshotter, NULL);
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, writer, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    pthread_join(cons, NULL);
    pthread_join(snap, NULL);
    for (uint32_t b = 0; b < ttrb_chan_nbuf(chan); b++)
        ttrb_flush(chan, b);
    drain();
    uint64_t lost = 0;
    for (uint32_t b = 0; b < ttrb_chan_nbuf(chan); b++) {
        /* Every writer is done and the buffers are flushed: a closed sub-buffer left
         * unpublished means a commit was lost (its count never reaches the end). */
        uint64_t n = ttrb_incomplete(chan, b);
        if (n) {
            fprintf(stderr, "buffer %u: %llu closed sub-buffers never published\n", b,
                    (unsigned long long)n);
            failures++;
        }
        struct ttrb_stats st;
        ttrb_stats(chan, b, &st);
        lost += st.discarded + st.overwritten + st.too_big;
    }
    uint64_t e = atomic_load(&emitted);
    printf("emitted=%llu read=%llu lost=%llu\n", (unsigned long long)e,
           (unsigned long long)read_count, (unsigned long long)lost);
    if (e != read_count + lost) {
        fprintf(stderr, "invariant broken: %llu != %llu + %llu\n", (unsigned long long)e,
                (unsigned long long)read_count, (unsigned long long)lost);
        failures++;
    }
    ttrb_chan_close(chan);
    return failures ? 1 : 0;
}
