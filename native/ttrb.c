/*
 * ttrb.c — lock-free ring buffers in shared memory, one CTF packet per
 * sub-buffer.  See ttrb.h for the API and the packet layout.
 *
 * Shared-memory object of a channel:
 *
 *   +--------------------+  0
 *   | struct chan_shm    |  sizes, flags (flight is atomic), uuid
 *   +--------------------+  ctl_off(b) = page-rounded header + b * ctl_size
 *   | struct buf_ctl  b  |  write_off, consumed, loss counters   (one per buffer)
 *   | struct slot_meta[] |  one per sub-buffer, a cache line each
 *   +--------------------+  data_off (page aligned)
 *   | buffer 0 data      |  n_subbuf * subbuf_size bytes
 *   | buffer 1 data ...  |
 *   +--------------------+
 *
 * Positions.  write_off is a free-running byte offset into an infinite
 * stream; sub-buffer number k = write_off / subbuf_size lives in slot
 * k % n_subbuf, cycle k / n_subbuf.  consumed is the number of the oldest
 * sub-buffer writers may not reuse; its top bit (HELD) says the consumer is
 * reading it.  A slot is free for sub-buffer k when k - n_subbuf < consumed.
 *
 *             consumed                         write_off
 *                |                                 |
 *   ... free ... [ complete | complete | ... | open ....... ] ... free ...
 *                <----------- at most n_subbuf sub-buffers ----------->
 *
 * Writers (any thread of any process, no locks):
 *   1. load write_off, read the TSC (after an lfence, so the timestamp is
 *      taken after the load and timestamps follow offsets), compute the new
 *      offset; CAS.  A record that does not fit the open sub-buffer closes
 *      it (the rest is padding) and opens the next one, whose slot must be
 *      free: in discard mode the record is dropped if it is not; in flight
 *      mode the writer first pushes `consumed` past the oldest complete
 *      sub-buffer (counting its records as overwritten), unless the consumer
 *      holds it or a writer has not committed into it yet (then it drops).
 *   2. the closer records where the content of the closed packet ends and
 *      its end time in the slot's meta, then commits the padding; the opener
 *      writes the new packet header.
 *   3. commit: an add of (1 << 40) + bytes to the slot's count: low 40 bits
 *      count bytes, high 24 bits count records, both cumulative and compared
 *      modulo their width.  The count is two words: `commit_cpu`, added to
 *      without a lock by a restartable sequence (rseq) that only completes on
 *      the buffer's own CPU (a per-CPU buffer's writers, nearly always), and
 *      `commit`, added to atomically by everyone else (a writer that moved, the
 *      consumer's flush, a global buffer).  Whoever sees the sum reach the end
 *      of the slot's cycle claims the cycle (a CAS from the previous cycle's
 *      claim) and publishes it (`done` = cycle + 1, release).  An atomic adder
 *      of a closed slot looks again for a moment if the sum falls short (the
 *      last lock-free add may still be in its CPU's store buffer), and the
 *      consumer settles an unpublished complete slot itself (get_subbuf).
 *      The TSC of a per-CPU buffer's writer is read without an lfence when it
 *      is read on the buffer's CPU (see reserve_).
 *
 * Consumer (one per buffer): get_subbuf takes the oldest published packet by
 * setting HELD with a CAS on `consumed` (so flight writers cannot push past
 * it), put_subbuf releases it.  snapshot copies published packets without
 * holding them and keeps a copy only if `consumed` has not moved past it by
 * the end of the copy (writers push `consumed` before touching a slot), so a
 * half-overwritten packet is never returned.
 *
 * Dead writers: a writer killed between reserve and commit leaves its slot
 * incomplete forever.  check_stuck() (called by the consumer) notices that
 * the oldest unconsumed slot is closed but has made no commit progress for a
 * timeout, adds the missing bytes itself, and drops the packet (its bytes
 * may be torn), counting its committed records as discarded and lost_dead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>
/* ThreadSanitizer cannot see the restartable sequence's add (inline assembly), so its builds
 * (tests/unit/test_native_stress.py) check the protocol's atomic path alone; the plain build
 * of the same stress program runs the lock-free one. */
#if defined(__has_include) && !defined(__SANITIZE_THREAD__)
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h> /* glibc >= 2.35: the thread's rseq area, for its CPU number */
#define HAVE_GLIBC_RSEQ 1
#endif
#endif

#include "ttrb.h"

#define CACHELINE 64
#define HELD (1ULL << 63)
#define BYTES_BITS 40
#define BYTES_MASK ((1ULL << BYTES_BITS) - 1)
#define RECS_MASK ((1ULL << (64 - BYTES_BITS)) - 1)
#define ONE_REC (1ULL << BYTES_BITS)
#define SHM_VERSION 3
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

struct chan_shm {
    uint64_t magic;
    uint32_t version;
    uint32_t subbuf_size;
    uint32_t n_subbuf;
    uint32_t nbuf;
    uint32_t flags;          /* TTRB_FLAG_GLOBAL; flight lives in `flight` */
    uint32_t stream_id;
    uint64_t map_size;
    uint64_t ctl_size;       /* bytes of buf_ctl + slot metas per buffer */
    uint64_t ctl_off;
    uint64_t data_off;
    uint8_t uuid[16];
    _Atomic uint32_t flight;
    /* Pids of the processes that map the channel (0: free slot); the daemon
     * tells a dead writer from a stopped one with it (ttrb_chan_mappers). */
    _Atomic int32_t mappers[TTRB_MAX_MAPPERS];
};

struct buf_ctl {
    _Atomic uint64_t write_off;
    /* Sticky: a writer not running on this buffer's CPU wrote here (an explicit buffer, a
     * CPU beyond nbuf).  Until then the writers of a per-CPU buffer all read the TSC on its
     * CPU and need no lfence (see reserve_).  On write_off's line: read with it. */
    _Atomic uint32_t mixed;
    char pad0[CACHELINE - 12];
    _Atomic uint64_t consumed;
    char pad1[CACHELINE - 8];
    /* Slow-path counters: touched on loss, publish, and by the consumer. */
    _Atomic uint64_t discarded;
    _Atomic uint64_t overwritten;
    _Atomic uint64_t too_big;
    _Atomic uint64_t lost_dead;
    _Atomic uint64_t recs_published;
    _Atomic uint64_t bytes_published;
    _Atomic uint64_t packets;
    _Atomic uint64_t stuck_packets;
    _Atomic uint64_t reported_lost;  /* highest events_discarded a packet carries */
    /* Consumer-only. */
    uint64_t consumed_recs;
    uint64_t consumed_packets;
    uint64_t stuck_seen_commit;
    uint64_t stuck_seen_slot;
    uint64_t stuck_seen_ns;
    uint64_t handed_lost;      /* highest events_discarded handed out so far */
} __attribute__((aligned(CACHELINE)));

struct slot_meta {
    _Atomic uint64_t commit;   /* (records << 40) | bytes, cumulative: atomic adds */
    _Atomic uint64_t done;     /* cycle + 1 of the last published cycle */
    uint64_t last_recs;        /* record count (24 bits) at last publish */
    uint64_t nrec;             /* records of the published cycle */
    uint64_t content_end;      /* bytes; written by the closer */
    uint64_t ts_end;           /* written by the closer */
    uint32_t dropped;          /* published by force (dead writer): skip */
    _Atomic uint32_t claimed;  /* cycle + 1 of the last cycle someone set out to publish */
    /* Like commit, but added to without a lock: only by a restartable sequence running on
     * this buffer's own CPU (local_add).  A slot's count is the sum of both. */
    _Atomic uint64_t commit_cpu;
};

_Static_assert(sizeof(struct slot_meta) == CACHELINE, "slot_meta is one cache line");

/* Process-local view of a mapped channel; derived values cached here so the
 * write path reads one cache line of its own. */
struct ttrb_chan {
    struct chan_shm *shm;
    char *base;
    char *ctl_base;
    char *data_base;
    uint64_t ctl_size;
    uint64_t buf_bytes;
    uint64_t map_size;
    uint32_t subbuf_size, n_subbuf, nbuf;
    uint32_t sb_shift, n_shift;
};

/* ---- helpers ---------------------------------------------------------- */

static inline uint64_t rdtsc_ordered(void)
{
    /* lfence: the TSC is read after the preceding load of write_off, so a
     * record that wins its CAS later never carries an earlier timestamp. */
    _mm_lfence();
    return __rdtsc();
}

uint64_t ttrb_clock(void) { return rdtsc_ordered(); }

/* The CPU this thread runs on: the kernel's word in the rseq area glibc registered (a load),
 * else sched_getcpu().  -1 if unknown. */
static inline int cur_cpu(void)
{
#ifdef HAVE_GLIBC_RSEQ
    if (likely(__rseq_size > 0)) {
        const struct rseq *rs =
            (const struct rseq *)((const char *)__builtin_thread_pointer() + __rseq_offset);
        int cpu = (int)*(const volatile uint32_t *)&rs->cpu_id;
        if (likely(cpu >= 0))
            return cpu;
    }
#endif
    return sched_getcpu();
}

static uint64_t ns_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void ttrb_clock_sample(uint64_t *mono_ns, uint64_t *tsc, uint64_t *real_ns)
{
    uint64_t m0 = ns_of(CLOCK_MONOTONIC);
    uint64_t t = rdtsc_ordered();
    uint64_t r = ns_of(CLOCK_REALTIME);
    uint64_t m1 = ns_of(CLOCK_MONOTONIC);
    *mono_ns = m0 + (m1 - m0) / 2;
    *tsc = t;
    *real_ns = r - (m1 - m0) / 2;
}

static inline int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static inline uint32_t log2u(uint32_t v) { return 31u - (uint32_t)__builtin_clz(v); }

static inline struct buf_ctl *ctl_of(const struct ttrb_chan *c, uint32_t b)
{
    return (struct buf_ctl *)(c->ctl_base + (uint64_t)b * c->ctl_size);
}

static inline struct slot_meta *meta_of(const struct ttrb_chan *c, struct buf_ctl *bc,
                                        uint64_t k)
{
    struct slot_meta *m = (struct slot_meta *)((char *)bc + sizeof(struct buf_ctl));
    return &m[k & (c->n_subbuf - 1)];
}

static inline char *slot_data(const struct ttrb_chan *c, uint32_t b, uint64_t k)
{
    return c->data_base + (uint64_t)b * c->buf_bytes + ((k & (c->n_subbuf - 1)) << c->sb_shift);
}

static inline void put_u32(char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put_u64(char *p, uint64_t v) { memcpy(p, &v, 8); }

static uint64_t page_round(uint64_t v)
{
    uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
    return (v + pg - 1) & ~(pg - 1);
}

/* ---- mappers ---------------------------------------------------------- */

static void mapper_add(struct ttrb_chan *c)
{
    int32_t pid = (int32_t)getpid();
    for (uint32_t i = 0; i < TTRB_MAX_MAPPERS; i++) {
        int32_t free_ = 0;
        if (atomic_compare_exchange_strong(&c->shm->mappers[i], &free_, pid))
            return;
    }
    /* Full (the daemon forgets dead mappers, so only with more than
     * TTRB_MAX_MAPPERS live ones): this mapping goes unlisted, and a
     * reservation it leaves behind if it dies is never reclaimed. */
}

static void mapper_remove(struct ttrb_chan *c)
{
    int32_t pid = (int32_t)getpid();
    for (uint32_t i = 0; i < TTRB_MAX_MAPPERS; i++) {
        int32_t cur = pid;
        if (atomic_compare_exchange_strong(&c->shm->mappers[i], &cur, 0))
            return;
    }
}

uint32_t ttrb_chan_mappers(const struct ttrb_chan *c, int32_t *out, uint32_t n)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < TTRB_MAX_MAPPERS; i++) {
        int32_t pid = atomic_load(&c->shm->mappers[i]);
        if (pid && k < n)
            out[k++] = pid;
    }
    return k;
}

int ttrb_chan_forget_mapper(struct ttrb_chan *c, int32_t pid)
{
    for (uint32_t i = 0; i < TTRB_MAX_MAPPERS; i++) {
        int32_t cur = pid;
        if (pid && atomic_compare_exchange_strong(&c->shm->mappers[i], &cur, 0))
            return 0;
    }
    return -ENOENT;
}

/* ---- channel lifetime ------------------------------------------------- */

static int name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len < 2 || len > TTRB_NAME_MAX || name[0] != '/' || strchr(name + 1, '/'))
        return 0;
    return 1;
}

static int chan_map(int fd, uint64_t size, struct ttrb_chan **out)
{
    /* MAP_POPULATE: page faults are paid here, never on the write path. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    struct ttrb_chan *c = calloc(1, sizeof(*c));
    if (!c) {
        munmap(p, size);
        return -ENOMEM;
    }
    c->base = p;
    c->shm = p;
    c->map_size = size;
    *out = c;
    return 0;
}

/* Cache the derived geometry once the header is known to be valid. */
static void chan_derive(struct ttrb_chan *c)
{
    struct chan_shm *h = c->shm;
    c->subbuf_size = h->subbuf_size;
    c->n_subbuf = h->n_subbuf;
    c->nbuf = h->nbuf;
    c->sb_shift = log2u(c->subbuf_size);
    c->n_shift = log2u(c->n_subbuf);
    c->ctl_base = c->base + h->ctl_off;
    c->data_base = c->base + h->data_off;
    c->ctl_size = h->ctl_size;
    c->buf_bytes = (uint64_t)c->subbuf_size * c->n_subbuf;
}

int ttrb_chan_create(const char *name, uint32_t subbuf_size, uint32_t n_subbuf,
                     uint32_t nbuf, uint32_t flags, const uint8_t *uuid,
                     uint32_t stream_id, struct ttrb_chan **out)
{
    if (!name_ok(name) || !out)
        return -EINVAL;
    if (!is_pow2(subbuf_size) || subbuf_size < TTRB_MIN_SUBBUF_SIZE ||
        subbuf_size > TTRB_MAX_SUBBUF_SIZE)
        return -EINVAL;
    if (!is_pow2(n_subbuf) || n_subbuf < TTRB_MIN_N_SUBBUF || n_subbuf > TTRB_MAX_N_SUBBUF)
        return -EINVAL;
    if (flags & TTRB_FLAG_GLOBAL)
        nbuf = 1;
    if (nbuf < 1 || nbuf > TTRB_MAX_BUFFERS)
        return -EINVAL;

    uint64_t ctl_size = sizeof(struct buf_ctl) + (uint64_t)n_subbuf * sizeof(struct slot_meta);
    uint64_t ctl_off = page_round(sizeof(struct chan_shm));
    uint64_t data_off = page_round(ctl_off + ctl_size * nbuf);
    uint64_t size = data_off + (uint64_t)nbuf * n_subbuf * subbuf_size;

    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -errno;
    /* fchmod: shm_open's mode is filtered by the umask. */
    int err = 0;
    if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)size) < 0) {
        err = -errno;
        goto fail;
    }
    /* Reserve the memory now: a traced program must never die of SIGBUS on
     * a page tmpfs cannot supply later. */
    err = -posix_fallocate(fd, 0, (off_t)size);
    if (err)
        goto fail;
    struct ttrb_chan *c;
    err = chan_map(fd, size, &c);
    if (err)
        goto fail;
    close(fd);
    struct chan_shm *h = c->shm;
    h->version = SHM_VERSION;
    h->subbuf_size = subbuf_size;
    h->n_subbuf = n_subbuf;
    h->nbuf = nbuf;
    h->flags = flags & TTRB_FLAG_GLOBAL;
    h->stream_id = stream_id;
    h->map_size = size;
    h->ctl_size = ctl_size;
    h->ctl_off = ctl_off;
    h->data_off = data_off;
    if (uuid)
        memcpy(h->uuid, uuid, 16);
    atomic_store(&h->flight, (flags & TTRB_FLAG_FLIGHT) ? 1 : 0);
    chan_derive(c);
    mapper_add(c);
    /* Publish last: a process that opens the name sees magic only once the
     * header is complete. */
    atomic_store_explicit((_Atomic uint64_t *)&h->magic, TTRB_MAGIC, memory_order_release);
    *out = c;
    return 0;
fail:
    close(fd);
    shm_unlink(name);
    return err;
}

int ttrb_chan_open(const char *name, struct ttrb_chan **out)
{
    if (!name_ok(name) || !out)
        return -EINVAL;
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    int err = 0;
    if (fstat(fd, &st) < 0) {
        err = -errno;
        goto out;
    }
    if ((uint64_t)st.st_size < sizeof(struct chan_shm)) {
        err = -EPROTO;
        goto out;
    }
    struct ttrb_chan *c;
    err = chan_map(fd, (uint64_t)st.st_size, &c);
    if (err)
        goto out;
    struct chan_shm *h = c->shm;
    uint64_t magic = atomic_load_explicit((_Atomic uint64_t *)&h->magic, memory_order_acquire);
    if (magic != TTRB_MAGIC || h->version != SHM_VERSION || h->map_size != (uint64_t)st.st_size ||
        !is_pow2(h->subbuf_size) || !is_pow2(h->n_subbuf) || h->nbuf < 1 ||
        h->nbuf > TTRB_MAX_BUFFERS || h->data_off + (uint64_t)h->nbuf * h->n_subbuf *
        h->subbuf_size > h->map_size || h->ctl_off + h->ctl_size * h->nbuf > h->data_off) {
        ttrb_chan_close(c);
        err = -EPROTO;
        goto out;
    }
    chan_derive(c);
    mapper_add(c);
    *out = c;
out:
    close(fd);
    return err;
}

void ttrb_chan_close(struct ttrb_chan *c)
{
    if (!c)
        return;
    if (c->ctl_base)
        mapper_remove(c);
    munmap(c->base, c->map_size);
    free(c);
}

int ttrb_chan_unlink(const char *name)
{
    if (!name_ok(name))
        return -EINVAL;
    return shm_unlink(name) < 0 ? -errno : 0;
}

uint32_t ttrb_chan_nbuf(const struct ttrb_chan *c) { return c->nbuf; }
uint32_t ttrb_chan_subbuf_size(const struct ttrb_chan *c) { return c->subbuf_size; }
uint32_t ttrb_chan_n_subbuf(const struct ttrb_chan *c) { return c->n_subbuf; }
uint64_t ttrb_chan_map_size(const struct ttrb_chan *c) { return c->map_size; }

uint32_t ttrb_chan_flags(const struct ttrb_chan *c)
{
    return c->shm->flags | (atomic_load(&c->shm->flight) ? TTRB_FLAG_FLIGHT : 0);
}

int ttrb_chan_set_flight(struct ttrb_chan *c, int flight)
{
    atomic_store(&c->shm->flight, flight ? 1 : 0);
    return 0;
}

/* ---- writer side ------------------------------------------------------ */

/* The last committer of sub-buffer k: finalize the packet context and
 * publish.  It sees every other commit of the cycle (acq_rel add chain), so
 * the closer's meta and every record are visible. */
static void publish(struct ttrb_chan *c, uint32_t b, struct buf_ctl *bc, uint64_t k,
                    uint64_t commit)
{
    struct slot_meta *m = meta_of(c, bc, k);
    uint64_t recs = commit >> BYTES_BITS;
    uint64_t nrec = (recs - __atomic_load_n(&m->last_recs, __ATOMIC_RELAXED)) & RECS_MASK;
    /* Relaxed atomics: stats and flight writers read these without holding
     * the slot (a stale value only makes their CAS fail or a total lag). */
    __atomic_store_n(&m->last_recs, recs, __ATOMIC_RELAXED);
    __atomic_store_n(&m->nrec, nrec, __ATOMIC_RELAXED);
    char *p = slot_data(c, b, k);
    uint64_t lost = atomic_load_explicit(&bc->discarded, memory_order_relaxed) +
                    atomic_load_explicit(&bc->too_big, memory_order_relaxed);
    put_u64(p + 32, m->ts_end);
    put_u64(p + 40, m->content_end * 8);
    put_u64(p + 64, lost);
    uint64_t seen = atomic_load_explicit(&bc->reported_lost, memory_order_relaxed);
    while (seen < lost && !atomic_compare_exchange_weak_explicit(
                              &bc->reported_lost, &seen, lost, memory_order_relaxed,
                              memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&bc->recs_published, nrec, memory_order_relaxed);
    atomic_fetch_add_explicit(&bc->bytes_published, m->content_end - TTRB_PACKET_HEADER_SIZE,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&bc->packets, 1, memory_order_relaxed);
    atomic_store_explicit(&m->done, (k >> c->n_shift) + 1, memory_order_release);
}

/* A slot's commit count: the sum of its two words, field by field. */
static inline uint64_t slot_commit(struct slot_meta *m)
{
    uint64_t a = atomic_load_explicit(&m->commit, memory_order_acquire);
    uint64_t l = atomic_load_explicit(&m->commit_cpu, memory_order_acquire);
    uint64_t recs = ((a >> BYTES_BITS) + (l >> BYTES_BITS)) & RECS_MASK;
    return (recs << BYTES_BITS) | (((a & BYTES_MASK) + (l & BYTES_MASK)) & BYTES_MASK);
}

static inline uint64_t cycle_end(const struct ttrb_chan *c, uint64_t k)
{
    return ((k >> c->n_shift) + 1) << c->sb_shift;
}

/* Sub-buffer k's count reached the end of its cycle. */
static inline int complete(const struct ttrb_chan *c, struct slot_meta *m, uint64_t k)
{
    return (slot_commit(m) & BYTES_MASK) == (cycle_end(c, k) & BYTES_MASK);
}

/* 1 for the one caller that publishes sub-buffer k's cycle.  A slot's cycles are claimed in
 * order, so only the previous cycle's claim may be replaced: a caller that saw the cycle
 * complete, then slept while it was published and the slot reused, must not claim it again. */
static int claim(const struct ttrb_chan *c, struct slot_meta *m, uint64_t k)
{
    uint32_t want = (uint32_t)((k >> c->n_shift) + 1);
    uint32_t prev = want - 1;
    return atomic_compare_exchange_strong_explicit(&m->claimed, &prev, want,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

/* Publish sub-buffer k if its count reached the end of its cycle and nobody else set out to
 * (the count has two words, so several committers can see it complete).  Return: 1 if
 * complete. */
static __attribute__((noinline)) int settle(struct ttrb_chan *c, uint32_t b,
                                            struct buf_ctl *bc, uint64_t k)
{
    struct slot_meta *m = meta_of(c, bc, k);
    if (!complete(c, m, k))
        return 0;
    if (claim(c, m, k))
        publish(c, b, bc, k, slot_commit(m));
    return 1;
}

static inline int published(const struct ttrb_chan *c, struct slot_meta *m, uint64_t k)
{
    return atomic_load_explicit(&m->done, memory_order_acquire) == (k >> c->n_shift) + 1;
}

/* Sub-buffer k is published, or complete and published now: two adders can each miss the
 * other's last add (see commit_bytes), so whoever waits on a slot settles it. */
static int published_or_settled(struct ttrb_chan *c, uint32_t b, struct buf_ctl *bc,
                                uint64_t k)
{
    struct slot_meta *m = meta_of(c, bc, k);
    return published(c, m, k) || (settle(c, b, bc, k) && published(c, m, k));
}

/* Add @add to the slot's lock-free word with a restartable sequence that aborts unless this
 * thread runs on @cpu (the buffer's CPU) through the add: the only writers of commit_cpu are
 * such adds, one instruction each, so none is lost.  Return: 0, or -1 (not on that CPU, or
 * no rseq): the caller adds atomically instead. */
#define TT_RSEQ_SIG 0x53053053 /* glibc's registration signature on x86 */
static inline __attribute__((always_inline)) int local_add(_Atomic uint64_t *word,
                                                           uint64_t add, uint32_t cpu)
{
#ifdef HAVE_GLIBC_RSEQ
    if (unlikely(__rseq_size == 0))
        return -1;
    struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    __asm__ __volatile__ goto(
        ".pushsection __rseq_cs, \"aw\"\n\t"
        ".balign 32\n\t"
        "3:\n\t"
        ".long 0x0, 0x0\n\t"
        ".quad 1f, (2f - 1f), 4f\n\t"
        ".popsection\n\t"
        "leaq 3b(%%rip), %%rax\n\t"
        "movq %%rax, %[cs]\n\t"
        "1:\n\t"
        "cmpl %[cpu], %[cpu_start]\n\t"
        "jnz 5f\n\t"
        "addq %[add], %[word]\n\t"
        "2:\n\t"
        "movq $0, %[cs]\n\t"
        ".pushsection __rseq_failure, \"ax\"\n\t"
        ".byte 0x0f, 0xb9, 0x3d\n\t"
        ".long %c[sig]\n\t"
        "4:\n\t"
        "5:\n\t"
        "movq $0, %[cs]\n\t"
        "jmp %l[aborted]\n\t"
        ".popsection\n\t"
        :
        : [cs] "m"(rs->rseq_cs), [cpu_start] "m"(rs->cpu_id_start), [cpu] "r"(cpu),
          [word] "m"(*(uint64_t *)word), [add] "r"(add), [sig] "i"(TT_RSEQ_SIG)
        : "memory", "cc", "rax"
        : aborted);
    return 0;
aborted:
    return -1;
#else
    (void)word;
    (void)add;
    (void)cpu;
    return -1;
#endif
}

/* Add to sub-buffer k's count; whoever completes it publishes.  @local: the add may take the
 * lock-free word (a writer's add into a per-CPU buffer). */
static inline __attribute__((always_inline)) void commit_bytes(struct ttrb_chan *c,
                                                               uint32_t b,
                                                               struct buf_ctl *bc,
                                                               uint64_t k, uint64_t add,
                                                               int local)
{
    struct slot_meta *m = meta_of(c, bc, k);
    if (local && c->nbuf > 1 && local_add(&m->commit_cpu, add, b) == 0) {
        /* No barrier here: a remote adder completing the slot meanwhile may miss this add
         * (still in this CPU's store buffer) while this load misses its add; the remote
         * side looks again below.  Inline: the sum is checked before any call. */
        if (unlikely(complete(c, m, k)))
            settle(c, b, bc, k);
        return;
    }
    atomic_fetch_add_explicit(&m->commit, add, memory_order_acq_rel);
    if (unlikely(complete(c, m, k))) {
        settle(c, b, bc, k);
        return;
    }
    if (c->nbuf == 1)
        return;
    /* The lock-free adds of a closed slot's last records may sit in their CPU's store
     * buffer for a moment: look again for a while before leaving the publication to them
     * (they look after their add) or to the consumer (ttrb_get_subbuf settles too). */
    uint64_t w = atomic_load_explicit(&bc->write_off, memory_order_acquire);
    if ((w >> c->sb_shift) <= k)
        return; /* still open: its closer's add comes later and looks then */
    for (int spin = 0; spin < 64 && !settle(c, b, bc, k); spin++)
        _mm_pause();
}

/* Close the open sub-buffer at @o (pos > 0) if @close, account the slot
 * for the new one, write its header.  Called after the CAS succeeded. */
static void switch_subbuf(struct ttrb_chan *c, uint32_t b, struct buf_ctl *bc, uint64_t o,
                          uint64_t ts, int close_old, int open_new)
{
    uint64_t sb = c->subbuf_size;
    uint64_t pos = o & (sb - 1);
    uint64_t k_old = o >> c->sb_shift;
    if (close_old) {
        struct slot_meta *m = meta_of(c, bc, k_old);
        m->content_end = pos;
        m->ts_end = ts;
        /* The padding commit is a release: the meta above is visible to
         * whoever completes the slot. */
        commit_bytes(c, b, bc, k_old, sb - pos, 1);
    }
    if (open_new) {
        uint64_t k = close_old ? k_old + 1 : k_old;
        struct slot_meta *m = meta_of(c, bc, k);
        __atomic_store_n(&m->dropped, 0, __ATOMIC_RELAXED);
        char *p = slot_data(c, b, k);
        put_u32(p, (uint32_t)TTRB_MAGIC);
        memcpy(p + 4, c->shm->uuid, 16);
        put_u32(p + 20, c->shm->stream_id);
        put_u64(p + 24, ts);
        put_u64(p + 48, sb * 8);
        put_u64(p + 56, k);
        put_u32(p + 72, c->nbuf == 1 ? 0 : b);
    }
}

/*
 * Slow path of reserve: the record opens sub-buffer k.  Returns 0 when the
 * slot may be used, -ENOSPC when the record must be dropped, -EAGAIN when
 * the caller must reload write_off and retry.
 */
static int make_room(struct ttrb_chan *c, uint32_t b, struct buf_ctl *bc, uint64_t k)
{
    uint64_t cns = atomic_load_explicit(&bc->consumed, memory_order_acquire);
    uint64_t cnum = cns & ~HELD;
    if (k - cnum < c->n_subbuf)
        return 0;
    if (!atomic_load_explicit(&c->shm->flight, memory_order_relaxed) || (cns & HELD))
        return -ENOSPC;
    /* Flight: overwrite the oldest sub-buffer, if every writer is done with
     * it.  k - cnum == n_subbuf here: older ones were reused already. */
    if (!published_or_settled(c, b, bc, cnum))
        return -ENOSPC;
    struct slot_meta *m = meta_of(c, bc, cnum);
    uint64_t nrec = __atomic_load_n(&m->nrec, __ATOMIC_RELAXED);
    uint32_t dropped = __atomic_load_n(&m->dropped, __ATOMIC_RELAXED);
    /* Push before anyone writes into the slot (snapshot relies on it). */
    if (!atomic_compare_exchange_strong_explicit(&bc->consumed, &cns, cnum + 1,
                                                 memory_order_acq_rel, memory_order_acquire))
        return -EAGAIN;
    if (!dropped)
        atomic_fetch_add_explicit(&bc->overwritten, nrec, memory_order_relaxed);
    return 0;
}

/* Slow path of reserve: the record opens a sub-buffer (closing the open one
 * first if any).  Kept out of line so the fast path inlines small. */
#define REPICK 1 /* reserve_slow: the writer left its buffer's CPU; pick again */

static __attribute__((noinline)) int reserve_slow(struct ttrb_chan *c, uint32_t b,
                                                  struct buf_ctl *bc, uint64_t o,
                                                  uint64_t rlen, uint16_t id,
                                                  struct ttrb_resv *r, int cpu)
{
    uint64_t sb = c->subbuf_size;
    uint64_t ts, start, pos;
    int close_old;
    for (;;) {
        ts = rdtsc_ordered();
        /* A writer of the lfence-free path reads every TSC on the buffer's CPU, here too
         * (the next record's writer may skip the lfence).  Before any side effect. */
        if (cpu >= 0) {
            __asm__ __volatile__("" ::: "memory");
            if (unlikely(cur_cpu() != cpu))
                return REPICK;
        }
        pos = o & (sb - 1);
        if (pos != 0 && pos + rlen <= sb) {
            /* Someone opened it meanwhile: an ordinary reservation. */
            if (atomic_compare_exchange_weak_explicit(&bc->write_off, &o, o + rlen,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                start = o;
                char *p = slot_data(c, b, start >> c->sb_shift) + pos;
                memcpy(p, &id, 2);
                memcpy(p + 2, &ts, 8);
                r->payload = p + TTRB_EVENT_HEADER_SIZE;
                r->offset = start;
                goto done;
            }
            continue;
        }
        close_old = pos != 0;
        uint64_t k = (o >> c->sb_shift) + (close_old ? 1 : 0);
        int rc = make_room(c, b, bc, k);
        if (rc == -EAGAIN) {
            o = atomic_load_explicit(&bc->write_off, memory_order_acquire);
            continue;
        }
        if (rc) {
            atomic_fetch_add_explicit(&bc->discarded, 1, memory_order_relaxed);
            return rc;
        }
        start = (k << c->sb_shift) + TTRB_PACKET_HEADER_SIZE;
        if (atomic_compare_exchange_weak_explicit(&bc->write_off, &o, start + rlen,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    switch_subbuf(c, b, bc, o, ts, close_old, 1);
    char *p = slot_data(c, b, start >> c->sb_shift) + TTRB_PACKET_HEADER_SIZE;
    memcpy(p, &id, 2);
    memcpy(p + 2, &ts, 8);
    r->payload = p + TTRB_EVENT_HEADER_SIZE;
    r->offset = start - TTRB_PACKET_HEADER_SIZE;
done:
    if (((start + rlen) & (sb - 1)) == 0) {
        /* An exact fit closes the sub-buffer: this writer is its closer. */
        struct slot_meta *m = meta_of(c, bc, start >> c->sb_shift);
        m->content_end = sb;
        m->ts_end = ts;
    }
    return 0;
}

/*
 * Timestamps follow offsets in a buffer.  A writer that reads the TSC after an lfence reads
 * it after its load of write_off, so after the CAS of the record before its own.  A per-CPU
 * buffer skips the lfence (about a quarter of an event's cost on a VM) while every writer of
 * it reads the TSC on the buffer's own CPU: it picks the buffer by its CPU and checks the CPU
 * again after the TSC read, picking again if it moved.  Two such reads on one CPU are
 * separated by a context switch when they are of different threads, and a switch is exact:
 * a writer whose TSC read retired before it has also loaded write_off before it, so that
 * load cannot have seen a CAS made after the switch; records of one CPU get their
 * timestamps in offset order.  A writer elsewhere (an explicit buffer, a CPU id beyond nbuf)
 * sets the buffer's sticky `mixed` before its CAS (release), and a writer that loads a
 * write_off at or after that CAS (acquire) sees it and takes the lfence too.  Sub-buffer
 * openers (reserve_slow) always take it: a consumer's flush moves write_off from elsewhere.
 */
static inline __attribute__((always_inline)) int reserve_(struct ttrb_chan *c, int buffer,
                                                          uint16_t id, uint32_t len,
                                                          struct ttrb_resv *r)
{
    uint64_t sb = c->subbuf_size;
    uint64_t rlen = (uint64_t)len + TTRB_EVENT_HEADER_SIZE;
    r->len = len;
    r->chan = c;
repick:;
    uint32_t b;
    int cpu = -1; /* >= 0: this writer may skip the lfence while it runs on that CPU */
    if (buffer >= 0) {
        b = (uint32_t)buffer % c->nbuf;
    } else if (c->nbuf == 1) {
        b = 0;
    } else {
        int now = cur_cpu();
        b = now < 0 ? 0 : (uint32_t)now % c->nbuf;
        if (now >= 0 && (uint32_t)now < c->nbuf)
            cpu = now;
    }
    struct buf_ctl *bc = ctl_of(c, b);
    r->buffer = b;
    if (unlikely(rlen + TTRB_PACKET_HEADER_SIZE > sb)) {
        atomic_fetch_add_explicit(&bc->too_big, 1, memory_order_relaxed);
        return -E2BIG;
    }
    if (unlikely(cpu < 0 && c->nbuf > 1 &&
                 !atomic_load_explicit(&bc->mixed, memory_order_relaxed)))
        atomic_store_explicit(&bc->mixed, 1, memory_order_relaxed); /* before the CAS */
    uint64_t o = atomic_load_explicit(&bc->write_off, memory_order_acquire);
    for (;;) {
        uint64_t ts;
        int fast = cpu >= 0 && !atomic_load_explicit(&bc->mixed, memory_order_relaxed);
        if (likely(fast)) {
            ts = __rdtsc();
            __asm__ __volatile__("" ::: "memory"); /* the CPU is read after the TSC */
            if (unlikely(cur_cpu() != cpu))
                goto repick;
        } else {
            ts = rdtsc_ordered();
        }
        uint64_t pos = o & (sb - 1);
        /* Strictly inside the open sub-buffer: an exact fit goes the slow way,
         * where the closer's bookkeeping is. */
        if (unlikely(pos == 0 || pos + rlen >= sb)) {
            int rc = reserve_slow(c, b, bc, o, rlen, id, r, fast ? cpu : -1);
            if (unlikely(rc == REPICK))
                goto repick;
            return rc;
        }
        /* Acquire on success: it reads from the opener's release (or a later
         * reservation in its release sequence), so this record's bytes are
         * ordered after the consumer's reads of the slot's previous cycle.
         * Release: a `mixed` set before it is seen by whoever loads this value. */
        if (likely(atomic_compare_exchange_weak_explicit(&bc->write_off, &o, o + rlen,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))) {
            char *p = slot_data(c, b, o >> c->sb_shift) + pos;
            memcpy(p, &id, 2);
            memcpy(p + 2, &ts, 8);
            r->payload = p + TTRB_EVENT_HEADER_SIZE;
            r->offset = o;
            return 0;
        }
    }
}

static inline __attribute__((always_inline)) void commit_(struct ttrb_resv *r)
{
    struct ttrb_chan *c = r->chan;
    struct buf_ctl *bc = ctl_of(c, r->buffer);
    uint64_t bytes = (uint64_t)r->len + TTRB_EVENT_HEADER_SIZE;
    /* A record that opened its packet also commits the packet header. */
    if (unlikely((r->offset & (c->subbuf_size - 1)) == 0))
        bytes += TTRB_PACKET_HEADER_SIZE;
    commit_bytes(c, r->buffer, bc, r->offset >> c->sb_shift, ONE_REC + bytes, 1);
}

int ttrb_reserve(struct ttrb_chan *c, int buffer, uint16_t id, uint32_t len,
                 struct ttrb_resv *r)
{
    return reserve_(c, buffer, id, len, r);
}

void ttrb_commit(struct ttrb_resv *r) { commit_(r); }

int ttrb_write(struct ttrb_chan *c, uint16_t id, const void *payload, uint32_t len)
{
    struct ttrb_resv r;
    int rc = reserve_(c, -1, id, len, &r);
    if (unlikely(rc))
        return rc;
    memcpy(r.payload, payload, len);
    commit_(&r);
    return 0;
}

int ttrb_write_u64x3(struct ttrb_chan *c, uint16_t id, uint64_t a, uint64_t b, uint64_t d)
{
    struct ttrb_resv r;
    int rc = reserve_(c, -1, id, 24, &r);
    if (unlikely(rc))
        return rc;
    memcpy(r.payload, &a, 8);
    memcpy(r.payload + 8, &b, 8);
    memcpy(r.payload + 16, &d, 8);
    commit_(&r);
    return 0;
}

/* ---- consumer side ---------------------------------------------------- */

int ttrb_get_subbuf(struct ttrb_chan *c, uint32_t b, const char **data, uint32_t *size)
{
    if (b >= c->nbuf)
        return -EINVAL;
    struct buf_ctl *bc = ctl_of(c, b);
    for (;;) {
        uint64_t cns = atomic_load_explicit(&bc->consumed, memory_order_acquire);
        if (cns & HELD)
            return -EBUSY;
        if (!published_or_settled(c, b, bc, cns))
            return -EAGAIN;
        struct slot_meta *m = meta_of(c, bc, cns);
        if (__atomic_load_n(&m->dropped, __ATOMIC_RELAXED)) {
            /* Forced complete after a dead writer: never hand it out. */
            if (atomic_compare_exchange_strong(&bc->consumed, &cns, cns + 1))
                bc->consumed_packets++;
            continue;
        }
        if (!atomic_compare_exchange_strong_explicit(&bc->consumed, &cns, cns | HELD,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire))
            continue; /* a flight writer pushed past it */
        bc->consumed_recs += m->nrec;
        bc->consumed_packets++;
        /* Packets are published in any order (a slow committer of packet k
         * lets k+1 publish first, with an older loss count): hand them out
         * with a count that never decreases, as CTF's free-running
         * events_discarded must be, or readers miscount. */
        char *p = slot_data(c, b, cns);
        uint64_t lost;
        memcpy(&lost, p + 64, 8);
        if (lost < bc->handed_lost)
            put_u64(p + 64, bc->handed_lost);
        else
            bc->handed_lost = lost;
        *data = p;
        *size = c->subbuf_size;
        return 0;
    }
}

int ttrb_put_subbuf(struct ttrb_chan *c, uint32_t b)
{
    if (b >= c->nbuf)
        return -EINVAL;
    struct buf_ctl *bc = ctl_of(c, b);
    uint64_t cns = atomic_load_explicit(&bc->consumed, memory_order_acquire);
    if (!(cns & HELD))
        return -EINVAL;
    /* Release: our reads of the packet happen before a writer reuses it. */
    atomic_store_explicit(&bc->consumed, (cns & ~HELD) + 1, memory_order_release);
    return 0;
}

/*
 * Every sub-buffer is closed, yet records were lost since the last packet
 * was finalized: write an empty packet whose context carries the count, so
 * readers can report those losses (a trace must not end with losses no
 * packet mentions).  Only into a free slot: never overwrites anything.
 */
static int flush_losses(struct ttrb_chan *c, uint32_t b, struct buf_ctl *bc, uint64_t o,
                        uint64_t ts, int force)
{
    uint64_t lost = atomic_load_explicit(&bc->discarded, memory_order_relaxed) +
                    atomic_load_explicit(&bc->too_big, memory_order_relaxed);
    if (!force && lost == atomic_load_explicit(&bc->reported_lost, memory_order_relaxed))
        return 0;
    uint64_t k = o >> c->sb_shift;
    uint64_t cnum = atomic_load_explicit(&bc->consumed, memory_order_acquire) & ~HELD;
    if (k - cnum >= c->n_subbuf)
        return 0; /* no free slot: the next flush, after the consumer, will do it */
    if (!atomic_compare_exchange_strong_explicit(&bc->write_off, &o, o + c->subbuf_size,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return 0; /* a writer opened it: its packet will carry the count */
    switch_subbuf(c, b, bc, o, ts, 0, 1);
    struct slot_meta *m = meta_of(c, bc, k);
    m->content_end = TTRB_PACKET_HEADER_SIZE;
    m->ts_end = ts;
    commit_bytes(c, b, bc, k, c->subbuf_size, 0);
    return 1;
}

int ttrb_flush(struct ttrb_chan *c, uint32_t b)
{
    if (b >= c->nbuf)
        return -EINVAL;
    struct buf_ctl *bc = ctl_of(c, b);
    uint64_t sb = c->subbuf_size;
    uint64_t o = atomic_load_explicit(&bc->write_off, memory_order_relaxed);
    for (;;) {
        uint64_t ts = rdtsc_ordered();
        uint64_t pos = o & (sb - 1);
        if (pos == 0)
            return flush_losses(c, b, bc, o, ts, 0);
        if (atomic_compare_exchange_weak_explicit(&bc->write_off, &o, o - pos + sb,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            switch_subbuf(c, b, bc, o, ts, 1, 0);
            return 1;
        }
    }
}

/*
 * The data copy of a seqlock read: writers may be overwriting the packet
 * while it is copied; the caller keeps the copy only if `consumed` shows no
 * writer reached the slot before the copy ended.  Racy by design, hence out
 * of ThreadSanitizer's sight (and a plain memcpy: no torn read survives the
 * check).
 */
__attribute__((no_sanitize_thread, noinline, optimize("no-tree-loop-distribute-patterns")))
static void seqlock_copy(char *dst, const char *src, size_t n)
{
    /* Word by word (sub-buffers are 8-byte multiples, 8-byte aligned): a
     * memcpy call would go through the sanitizer's interceptor anyway. */
    uint64_t *d = (uint64_t *)(void *)dst;
    const uint64_t *s = (const uint64_t *)(const void *)src;
    for (size_t i = 0; i < n / 8; i++)
        d[i] = s[i];
}

int64_t ttrb_snapshot(struct ttrb_chan *c, uint32_t b, char *dst, uint64_t dst_len)
{
    return ttrb_snapshot_from(c, b, 0, dst, dst_len);
}

int64_t ttrb_snapshot_from(struct ttrb_chan *c, uint32_t b, uint64_t first_seq, char *dst,
                           uint64_t dst_len)
{
    if (b >= c->nbuf)
        return -EINVAL;
    if (dst_len < (uint64_t)c->n_subbuf * c->subbuf_size)
        return -ENOSPC;
    struct buf_ctl *bc = ctl_of(c, b);
    uint64_t w = atomic_load_explicit(&bc->write_off, memory_order_acquire);
    uint64_t kw = w >> c->sb_shift; /* the open (or next) sub-buffer */
    uint64_t cnum = atomic_load_explicit(&bc->consumed, memory_order_acquire) & ~HELD;
    uint64_t first = kw >= c->n_subbuf ? kw - c->n_subbuf : 0;
    if (first < cnum)
        first = cnum;
    if (first < first_seq)
        first = first_seq;
    uint64_t last = kw + 1; /* kw itself counts if it is published */
    int64_t out = 0;
    uint64_t run_lost = 0;
    for (uint64_t k = first; k < last; k++) {
        struct slot_meta *m = meta_of(c, bc, k);
        if (!published(c, m, k) || __atomic_load_n(&m->dropped, __ATOMIC_RELAXED))
            continue;
        seqlock_copy(dst + out, slot_data(c, b, k), c->subbuf_size);
        /* Seqlock check: data loads above happen before these loads. */
        atomic_thread_fence(memory_order_acquire);
        uint64_t now = atomic_load_explicit(&bc->consumed, memory_order_relaxed) & ~HELD;
        if (now > k ||
            atomic_load_explicit(&m->done, memory_order_relaxed) != (k >> c->n_shift) + 1)
            continue; /* overwritten while we copied */
        /* A non-decreasing events_discarded, as get_subbuf hands out. */
        uint64_t lost;
        memcpy(&lost, dst + out + 64, 8);
        if (lost < run_lost)
            put_u64(dst + out + 64, run_lost);
        else
            run_lost = lost;
        out += c->subbuf_size;
    }
    return out;
}

int ttrb_stuck(struct ttrb_chan *c, uint32_t b, uint64_t *k_out, uint64_t *commit_out)
{
    if (b >= c->nbuf)
        return -EINVAL;
    struct buf_ctl *bc = ctl_of(c, b);
    uint64_t cns = atomic_load_explicit(&bc->consumed, memory_order_acquire);
    uint64_t k = cns & ~HELD;
    struct slot_meta *m = meta_of(c, bc, k);
    uint64_t w = atomic_load_explicit(&bc->write_off, memory_order_acquire);
    int closed = (w >> c->sb_shift) > k;
    if (!closed || published(c, m, k) || (cns & HELD))
        return 0;
    *k_out = k;
    *commit_out = slot_commit(m);
    return 1;
}

int ttrb_reclaim(struct ttrb_chan *c, uint32_t b, uint64_t k)
{
    uint64_t k_now, commit;
    if (b >= c->nbuf)
        return -EINVAL;
    if (ttrb_stuck(c, b, &k_now, &commit) != 1 || k_now != k)
        return 0;
    struct buf_ctl *bc = ctl_of(c, b);
    struct slot_meta *m = meta_of(c, bc, k);
    /* Dead writer: complete the cycle ourselves, then drop the packet (its
     * bytes may be torn, and which record is cannot be known). */
    uint64_t missing = (cycle_end(c, k) - commit) & BYTES_MASK;
    __atomic_store_n(&m->dropped, 1, __ATOMIC_RELAXED);
    /* The dropped packet is never read: the loss count it would carry must
     * still reach a later packet (flush_losses looks at reported_lost). */
    uint64_t reported = atomic_load_explicit(&bc->reported_lost, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->commit, missing, memory_order_acq_rel);
    if (complete(c, m, k) && claim(c, m, k)) {
        /* The closer may have died before recording where content ends. */
        if (m->content_end < TTRB_PACKET_HEADER_SIZE || m->content_end > c->subbuf_size)
            m->content_end = TTRB_PACKET_HEADER_SIZE;
        publish(c, b, bc, k, slot_commit(m));
        atomic_store_explicit(&bc->reported_lost, reported, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&bc->discarded, m->nrec, memory_order_relaxed);
    atomic_fetch_add_explicit(&bc->lost_dead, m->nrec, memory_order_relaxed);
    atomic_fetch_add_explicit(&bc->stuck_packets, 1, memory_order_relaxed);
    return 1;
}

int ttrb_check_stuck(struct ttrb_chan *c, uint32_t b, uint64_t now_ns, uint64_t timeout_ns)
{
    if (b >= c->nbuf)
        return -EINVAL;
    struct buf_ctl *bc = ctl_of(c, b);
    uint64_t k, commit;
    if (ttrb_stuck(c, b, &k, &commit) != 1) {
        bc->stuck_seen_ns = 0;
        return 0;
    }
    if (bc->stuck_seen_ns == 0 || bc->stuck_seen_slot != k || bc->stuck_seen_commit != commit) {
        bc->stuck_seen_slot = k;
        bc->stuck_seen_commit = commit;
        bc->stuck_seen_ns = now_ns ? now_ns : 1;
        return 0;
    }
    if (now_ns - bc->stuck_seen_ns < timeout_ns)
        return 0;
    bc->stuck_seen_ns = 0;
    return ttrb_reclaim(c, b, k);
}

/* The consumer's window of buffer @b: write offset and first unconsumed sub-buffer. */
static struct buf_ctl *window_of(const struct ttrb_chan *c, uint32_t b, uint64_t *w,
                                 uint64_t *cnum)
{
    if (b >= c->nbuf)
        return NULL;
    struct buf_ctl *bc = ctl_of(c, b);
    *w = atomic_load_explicit(&bc->write_off, memory_order_acquire);
    *cnum = atomic_load_explicit(&bc->consumed, memory_order_acquire) & ~HELD;
    return bc;
}

uint64_t ttrb_pending(const struct ttrb_chan *c, uint32_t b)
{
    uint64_t w, cnum;
    if (!window_of(c, b, &w, &cnum))
        return 0;
    uint64_t end = (w + c->subbuf_size - 1) >> c->sb_shift;
    return end > cnum ? end - cnum : 0;
}

uint64_t ttrb_incomplete(const struct ttrb_chan *c, uint32_t b)
{
    uint64_t w, cnum;
    struct buf_ctl *bc = window_of(c, b, &w, &cnum);
    if (!bc)
        return 0;
    uint64_t n = 0;
    for (uint64_t k = cnum; k < (w >> c->sb_shift); k++) {
        struct slot_meta *m = meta_of(c, bc, k);
        if (!published(c, m, k))
            n++;
    }
    return n;
}

int ttrb_charge_lost(struct ttrb_chan *c, uint32_t b, uint64_t n)
{
    if (b >= c->nbuf)
        return -EINVAL;
    struct buf_ctl *bc = ctl_of(c, b);
    /* Readers see a loss as an increase from one packet to the next (babeltrace2 does not
     * count one in a stream's first packet): make sure a packet precedes the charge. */
    ttrb_flush(c, b);
    uint64_t o = atomic_load_explicit(&bc->write_off, memory_order_relaxed);
    if (o == 0)
        flush_losses(c, b, bc, o, rdtsc_ordered(), 1);
    atomic_fetch_add_explicit(&bc->discarded, n, memory_order_relaxed);
    return 0;
}

int ttrb_stats(const struct ttrb_chan *c, uint32_t b, struct ttrb_stats *out)
{
    if (b >= c->nbuf)
        return -EINVAL;
    struct buf_ctl *bc = ctl_of(c, b);
    memset(out, 0, sizeof(*out));
    uint64_t recs = atomic_load(&bc->recs_published);
    /* Records committed into slots not yet published. */
    uint64_t w = atomic_load(&bc->write_off);
    for (uint32_t i = 0; i < c->n_subbuf; i++) {
        struct slot_meta *m = &((struct slot_meta *)((char *)bc + sizeof(struct buf_ctl)))[i];
        uint64_t commit = slot_commit(m);
        uint64_t r =
            ((commit >> BYTES_BITS) - __atomic_load_n(&m->last_recs, __ATOMIC_RELAXED)) &
            RECS_MASK;
        recs += r;
    }
    out->recorded = recs;
    out->discarded = atomic_load(&bc->discarded);
    out->overwritten = atomic_load(&bc->overwritten);
    out->too_big = atomic_load(&bc->too_big);
    out->lost_dead = atomic_load(&bc->lost_dead);
    out->bytes = atomic_load(&bc->bytes_published);
    out->packets = atomic_load(&bc->packets);
    out->consumed = bc->consumed_recs;
    out->consumed_packets = bc->consumed_packets;
    out->stuck_packets = atomic_load(&bc->stuck_packets);
    out->write_offset = w;
    return 0;
}
