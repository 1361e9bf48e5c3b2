/*
 * ttpr — the probe side: markers with atomically replaceable target lists,
 * and emitters that encode a marker's fields straight into every target's
 * reservation.  Part of the cffi cdef (see native/build.py).
 *
 * Field types (the marker format's printf-like letters):
 *   TTPR_I32 %d, TTPR_U32 %u, TTPR_I64 %ld %lld, TTPR_U64 %lu %llu,
 *   TTPR_X32 %x (u32), TTPR_PTR %p (u64), TTPR_STR %s (UTF-8 + NUL),
 *   TTPR_CHAR %c (u8), TTPR_F64 %f (IEEE double).
 * Integer-like fields take the emitters' int64 arguments in field order,
 * %s fields take their char* arguments in field order.
 */

#define TTPR_I32 1
#define TTPR_U32 2
#define TTPR_I64 3
#define TTPR_U64 4
#define TTPR_X32 5
#define TTPR_PTR 6
#define TTPR_STR 7
#define TTPR_CHAR 8
#define TTPR_F64 9
#define TTPR_MAX_FIELDS 32

struct ttpr_targets;

struct ttpr_marker {
    void *targets_;            /* struct ttpr_targets *, atomic */
    uint16_t id;
    uint8_t nfields;
    uint8_t types[32];
    uint32_t fixed_len;        /* payload bytes when no field is a string, else 0 */
    uint32_t count_early;      /* count emits while there is no target list */
    uint64_t early_;           /* atomic: emits counted while count_early */
};

/* A target list of @n channels (set with ttpr_targets_set).  NULL on ENOMEM. */
struct ttpr_targets *ttpr_targets_new(uint32_t n);
void ttpr_targets_set(struct ttpr_targets *t, uint32_t i, struct ttrb_chan *chan);
void ttpr_targets_free(struct ttpr_targets *t);

/*
 * ttpr_marker_init - set id and field types.  Return: 0; -EINVAL on a bad
 * type or more than TTPR_MAX_FIELDS fields.
 */
int ttpr_marker_init(struct ttpr_marker *m, uint16_t id, const uint8_t *types, uint32_t n);
/* Publish a new target list (NULL: none); returns the previous one, which
 * the caller frees only after a grace period (writers may still read it). */
struct ttpr_targets *ttpr_marker_swap(struct ttpr_marker *m, struct ttpr_targets *t);
void ttpr_marker_set_id(struct ttpr_marker *m, uint16_t id);

/*
 * Early events: while count_early is set, an emit that finds no target list
 * is counted (its marker's targets are not known yet: registration timed
 * out).  ttpr_marker_take_early returns the count and zeroes it.
 */
void ttpr_marker_count_early(struct ttpr_marker *m, int on);
uint64_t ttpr_marker_take_early(struct ttpr_marker *m);

/*
 * ttpr_synchronize - wait until every emit (in any thread of this process)
 * that was in progress when it was called has finished: after a
 * ttpr_marker_swap(), no writer still uses the list it returned, and every
 * record reserved under the old list is committed.
 * Emitters pay a thread-local nesting counter and compiler barriers; this
 * side pays membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) (a seq_cst fence on
 * the emit side instead, if the kernel lacks it) and polls the threads.
 * Return: 0; -ETIMEDOUT when an emit in progress did not finish within
 * @timeout_ns (a stopped or descheduled thread); the caller may call again.
 */
int ttpr_synchronize(uint64_t timeout_ns);

/*
 * Test hook (tests only): while @hold is non-zero, every emit of this process
 * stops between reserving and committing its record, as a writer stopped
 * mid-record would, until the hook is cleared.  ttpr_test_held() says how
 * many emits are held right now.  Return: 0.
 */
int ttpr_test_hold(int hold);
int ttpr_test_held(void);

/*
 * Emitters.  Return: the number of targets that lost the event (buffer
 * full, too big: counted in the buffers' stats), or -ERANGE when a value
 * does not fit its field (the caller's bug; nothing was written).
 */
/* Integer fields whose values the caller range-checked (generated typed
 * emitters ttpr_fast_<letters>, see native/build.py). */
int ttpr_emit_raw(struct ttpr_marker *m, const int64_t *iv, uint32_t ni);
int ttpr_emit_bytes(struct ttpr_marker *m, const char *payload, uint32_t len);
int ttpr_emit_i1(struct ttpr_marker *m, int64_t a);
int ttpr_emit_i2(struct ttpr_marker *m, int64_t a, int64_t b);
int ttpr_emit_i3(struct ttpr_marker *m, int64_t a, int64_t b, int64_t c);
int ttpr_emit_i4(struct ttpr_marker *m, int64_t a, int64_t b, int64_t c, int64_t d);
int ttpr_emit_s1(struct ttpr_marker *m, const char *s);
int ttpr_emit_i1s1(struct ttpr_marker *m, int64_t a, const char *s);
int ttpr_emit_i2s1(struct ttpr_marker *m, int64_t a, int64_t b, const char *s);
int ttpr_emit_i3s1(struct ttpr_marker *m, int64_t a, int64_t b, int64_t c, const char *s);
int ttpr_emit_i2s2(struct ttpr_marker *m, int64_t a, int64_t b, const char *s, const char *t);
