/*
 * ttrb — tracetui ring buffers in shared memory.
 *
 * This header is the whole public API of the backend.  It is also the cffi
 * cdef (native/build.py reads it), so it holds only plain declarations and
 * integer #defines: no macros with bodies, no includes, no inline code.
 *
 * Vocabulary
 *   channel     one POSIX shared-memory object: a control block, then
 *               nbuf buffers (1 for a global channel, one per possible CPU).
 *   buffer      n_subbuf sub-buffers of subbuf_size bytes, used as a ring.
 *   sub-buffer  one CTF 1.8 packet.  Never holds part of a record.
 *   record      one event: u16 id, u64 timestamp, payload (little endian,
 *               byte aligned, no padding).
 *
 * Packet layout (all fields little endian, byte aligned):
 *
 *   off  size  field                  written by
 *     0     4  magic = 0xC1FC1FC1     opener (writer that starts the packet)
 *     4    16  trace uuid             opener
 *    20     4  stream_id              opener
 *    24     8  timestamp_begin        opener   (timestamp of its record)
 *    32     8  timestamp_end          last committer (closer's timestamp)
 *    40     8  content_size, bits     last committer
 *    48     8  packet_size, bits      opener   (subbuf_size * 8)
 *    56     8  packet_seq_num         opener   (sub-buffer number since start)
 *    64     8  events_discarded       last committer (free-running count of
 *                                     records lost to discard, too_big and
 *                                     dead writers, as CTF 1.8 defines it)
 *    72     4  cpu_id                 opener   (buffer index; 0 if global)
 *    76        first record
 *
 *   record: u16 id | u64 timestamp | payload
 *
 * Timestamps are raw TSC ticks (ttrb_clock()); tracetui.core.buffers
 * calibrates them against CLOCK_MONOTONIC and CLOCK_REALTIME.
 *
 * Error contract: functions return 0 (or a count) on success and a negative
 * errno on failure; each declaration says which.
 */

#define TTRB_MAGIC 3254525889
#define TTRB_PACKET_HEADER_SIZE 76
#define TTRB_EVENT_HEADER_SIZE 10
#define TTRB_MIN_SUBBUF_SIZE 4096
#define TTRB_MAX_SUBBUF_SIZE 67108864
#define TTRB_MIN_N_SUBBUF 2
#define TTRB_MAX_N_SUBBUF 4096
#define TTRB_MAX_BUFFERS 1024
#define TTRB_NAME_MAX 200
#define TTRB_MAX_MAPPERS 256

#define TTRB_FLAG_GLOBAL 1
#define TTRB_FLAG_FLIGHT 2

struct ttrb_chan;

/* A reservation between ttrb_reserve() and ttrb_commit(). */
struct ttrb_resv {
    struct ttrb_chan *chan;
    char *payload;          /* where the payload goes (len bytes) */
    uint64_t offset;        /* absolute offset of the record in its buffer */
    uint32_t buffer;        /* buffer index */
    uint32_t len;           /* payload length */
};

/* Counters of one buffer.  All are exact; see ttrb_stats(). */
struct ttrb_stats {
    uint64_t recorded;      /* records committed (published or not) */
    uint64_t discarded;     /* dropped: buffer full, or sub-buffer being read
                               or not yet complete when flight wanted it */
    uint64_t overwritten;   /* lost to flight-mode overwrite */
    uint64_t too_big;       /* refused: larger than a sub-buffer can hold */
    uint64_t lost_dead;     /* committed records dropped with a sub-buffer a
                               dead writer left incomplete (also in discarded) */
    uint64_t bytes;         /* bytes of records committed (headers included) */
    uint64_t packets;       /* sub-buffers completed */
    uint64_t consumed;      /* records in packets handed out by get_subbuf */
    uint64_t consumed_packets;
    uint64_t stuck_packets; /* sub-buffers forced complete after a dead writer */
    uint64_t write_offset;  /* bytes of ring used since allocation */
};

/*
 * ttrb_chan_create - create and map a channel.
 * @name: shared-memory name, "/..." (at most TTRB_NAME_MAX bytes).
 * @flags: TTRB_FLAG_GLOBAL (one buffer) and/or TTRB_FLAG_FLIGHT.
 * @nbuf: number of buffers for a per-CPU channel (ignored when global).
 * @uuid: 16 bytes copied into every packet header.
 * Return: 0; -EINVAL on a bad size, count or name; -EEXIST if the name is
 * taken; -ENOMEM/-ENOSPC when shared memory cannot be had (nothing is left
 * behind); other -errno from shm_open/mmap.
 */
int ttrb_chan_create(const char *name, uint32_t subbuf_size, uint32_t n_subbuf,
                     uint32_t nbuf, uint32_t flags, const uint8_t *uuid,
                     uint32_t stream_id, struct ttrb_chan **out);

/*
 * ttrb_chan_open - map an existing channel created by any process of the
 * same user.  Return: 0; -ENOENT; -EPROTO if it is not a ttrb channel.
 */
int ttrb_chan_open(const char *name, struct ttrb_chan **out);

/* Unmap (does not unlink).  Safe on NULL. */
void ttrb_chan_close(struct ttrb_chan *chan);

/* Remove the name; mappings stay valid until closed.  Return: 0 or -errno. */
int ttrb_chan_unlink(const char *name);

uint32_t ttrb_chan_nbuf(const struct ttrb_chan *chan);
uint32_t ttrb_chan_subbuf_size(const struct ttrb_chan *chan);
uint32_t ttrb_chan_n_subbuf(const struct ttrb_chan *chan);
uint32_t ttrb_chan_flags(const struct ttrb_chan *chan);
uint64_t ttrb_chan_map_size(const struct ttrb_chan *chan);

/*
 * Mappers.  ttrb_chan_create and ttrb_chan_open list the calling process's
 * pid in the channel's shared header (up to TTRB_MAX_MAPPERS at once);
 * ttrb_chan_close removes it.  A process that dies keeps its entry until the
 * consumer forgets it, so the consumer knows whose death may have left a
 * reservation uncommitted (see ttrb_stuck).
 * ttrb_chan_mappers - copy up to @n listed pids into @out.  Return: how many.
 * ttrb_chan_forget_mapper - remove one entry of @pid.  Return: 0; -ENOENT.
 */
uint32_t ttrb_chan_mappers(const struct ttrb_chan *chan, int32_t *out, uint32_t n);
int ttrb_chan_forget_mapper(struct ttrb_chan *chan, int32_t pid);

/* Switch flight (overwrite) mode; takes effect for the next sub-buffer
 * switch of every writer.  Return: 0. */
int ttrb_chan_set_flight(struct ttrb_chan *chan, int flight);

/* Raw timestamp source (TSC), monotonic across CPUs on this machine. */
uint64_t ttrb_clock(void);
/* One reading of CLOCK_MONOTONIC and CLOCK_REALTIME (ns) bracketing a
 * ttrb_clock() read; for calibration. */
void ttrb_clock_sample(uint64_t *mono_ns, uint64_t *tsc, uint64_t *real_ns);

/*
 * ttrb_reserve - reserve room for one record of @len payload bytes in the
 * buffer of the current CPU (or @buffer if >= 0; taken modulo nbuf).
 * Writes the record header; the caller fills r->payload and must call
 * ttrb_commit() soon.
 * Return: 0; -ENOSPC when the record is discarded (buffer full); -E2BIG when
 * it can never fit in a sub-buffer.  Both are counted.
 */
int ttrb_reserve(struct ttrb_chan *chan, int buffer, uint16_t id, uint32_t len,
                 struct ttrb_resv *r);
void ttrb_commit(struct ttrb_resv *r);

/* Reserve, copy, commit.  Return: as ttrb_reserve(). */
int ttrb_write(struct ttrb_chan *chan, uint16_t id, const void *payload,
               uint32_t len);

/* Records of fixed shape for fast emitters: n 64-bit integers. */
int ttrb_write_u64x3(struct ttrb_chan *chan, uint16_t id, uint64_t a,
                     uint64_t b, uint64_t c);

/*
 * Consumer side.  One consumer per buffer at a time (the daemon).
 *
 * ttrb_get_subbuf - hand out the oldest complete packet of @buffer.
 * @data, @size: the packet in shared memory (size = subbuf_size; the packet
 * context holds content_size).  It stays untouched by writers until
 * ttrb_put_subbuf(), in discard and flight mode alike.
 * Return: 0; -EAGAIN if none is complete; -EINVAL on a bad buffer index;
 * -EBUSY if a packet is already held.
 */
int ttrb_get_subbuf(struct ttrb_chan *chan, uint32_t buffer,
                    const char **data, uint32_t *size);
int ttrb_put_subbuf(struct ttrb_chan *chan, uint32_t buffer);

/* Close the current partial sub-buffer now, if it holds records.  When none
 * is open but records were lost since the last packet, write an empty packet
 * carrying the new events_discarded count (if a sub-buffer is free).
 * Return: 1 if a packet was closed, 0 if there was nothing to close. */
int ttrb_flush(struct ttrb_chan *chan, uint32_t buffer);

/*
 * ttrb_snapshot - copy the complete packets of @buffer, oldest first, into
 * @dst (without consuming them).  Packets overwritten during the copy are
 * left out, never returned torn.  Call ttrb_flush() first to include the
 * newest records.
 * Return: bytes copied (a multiple of subbuf_size); -ENOSPC if @dst_len is
 * smaller than n_subbuf * subbuf_size.
 */
int64_t ttrb_snapshot(struct ttrb_chan *chan, uint32_t buffer, char *dst,
                      uint64_t dst_len);
/* The same, leaving out packets whose sequence number is below @first_seq
 * (a live view that already has them). */
int64_t ttrb_snapshot_from(struct ttrb_chan *chan, uint32_t buffer, uint64_t first_seq,
                           char *dst, uint64_t dst_len);

/*
 * ttrb_stuck - is the oldest unconsumed sub-buffer of @buffer closed but
 * incomplete (a reservation in it not committed), and not held?
 * Return: 1, with its number in *k and its commit word in *commit (which
 * moves while its writers make progress); 0 if not; -EINVAL.
 */
int ttrb_stuck(struct ttrb_chan *chan, uint32_t buffer, uint64_t *k, uint64_t *commit);

/*
 * ttrb_reclaim - force stuck sub-buffer @k (from ttrb_stuck) complete and
 * drop it, counting its committed records in discarded and lost_dead.  Only
 * for a reservation whose writer is dead: a living writer that commits later
 * would corrupt the next cycle of the sub-buffer.
 * Return: 1 if reclaimed; 0 if @k is not stuck any more; -EINVAL.
 */
int ttrb_reclaim(struct ttrb_chan *chan, uint32_t buffer, uint64_t k);

/* Sub-buffers of @buffer written (the open one included) and not consumed
 * yet; 0 once the consumer has everything. */
uint64_t ttrb_pending(const struct ttrb_chan *chan, uint32_t buffer);

/* Closed, unconsumed sub-buffers of @buffer that are not complete (hold a
 * reservation not committed yet).  After ttrb_flush, 0 means no writer that
 * reserved before the flush still owes a commit. */
uint64_t ttrb_incomplete(const struct ttrb_chan *chan, uint32_t buffer);

/*
 * ttrb_check_stuck - detect a sub-buffer a dead writer left incomplete.
 * Call periodically with the current CLOCK_MONOTONIC time.  When the oldest
 * unconsumed sub-buffer is closed, incomplete, and its commit count has not
 * moved for @timeout_ns, it is forced complete and dropped; its committed
 * records are counted in discarded and lost_dead.  By time alone: it cannot
 * tell a stopped writer from a dead one (the daemon decides with
 * ttrb_stuck, the mapper list and process states instead).
 * Return: 1 if a sub-buffer was forced, 0 otherwise.
 */
int ttrb_check_stuck(struct ttrb_chan *chan, uint32_t buffer, uint64_t now_ns,
                     uint64_t timeout_ns);

/* Count @n records lost before they reached @buffer (a probe's early events,
 * TT_LOST) as discarded: the next packet carries them.  The open packet is
 * closed first, and an empty one written if the buffer has none yet, so the
 * loss is an increase between two packets, which every reader counts.
 * Consumer side (the daemon).  Return: 0; -EINVAL. */
int ttrb_charge_lost(struct ttrb_chan *chan, uint32_t buffer, uint64_t n);

int ttrb_stats(const struct ttrb_chan *chan, uint32_t buffer,
               struct ttrb_stats *out);

/*
 * ttrb_bench_write - benchmark helper: @nthreads threads each write @count
 * records of @payload_len bytes into @chan with ttrb_write(), started
 * together.  Return: mean ns per record per thread (wall time of the slowest
 * thread / count), or a negative errno if threads cannot be started.
 */
int64_t ttrb_bench_write(struct ttrb_chan *chan, uint32_t nthreads, uint64_t count,
                         uint32_t payload_len);
/*
 * ttrb_bench_ref_cas - the same-run reference: @count records of @payload_len
 * bytes (plus a 10-byte id + timestamp header) written by one thread into a bare
 * lock-free ring of its own (a CAS on the write offset, an rdtsc timestamp, a
 * release store as commit; no sub-buffers, packets or loss counting).  With
 * @atomic 0 the offset is a plain add (a single writer, no atomics).
 * Return: mean ns per record, or -EINVAL.
 */
int64_t ttrb_bench_ref_cas(uint64_t count, uint32_t payload_len, int atomic);
