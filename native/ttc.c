/*
 * ttc.c — libtracetui-probe: the public C API (tracetui/probe.h) over the same ring buffers
 * (ttrb.c) and emitters (ttpr.c) as Python's markers, and the process's link to the daemon.
 *
 * The link is the C statement of tracetui/core/client/probe.py (docs/PROTOCOL.md,
 * "Recording"): one thread per process finds the daemon through the runtime directory's port
 * file, says probe-hello on a netlink socket of its own, registers every marker (the daemon
 * assigns ids), applies the target tables the daemon pushes (opening the channels' shared
 * memory), acknowledges each table once ttpr_synchronize() says no emit begun under an older
 * one still runs, reports early emits as lost, pings every second, and after 3.5 s without a
 * word from the daemon turns every marker off and looks for a daemon again.
 *
 * Nothing here may hurt the program: every failure turns markers off and is retried later;
 * the thread blocks every signal; emits never wait for it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ttrb.h"
#include "ttpr.h"
#include "ttpr_va.h"

#include "tracetui/probe.h"

/* Protocol constants (tracetui/core/wire/protocol.py, recording.py). */
#define NETLINK_USERSOCK_ 2
#define TT_VERSION 1
#define TT_PROBE_HELLO 0x20
#define TT_MARKER_MSG 0x21
#define TT_TARGETS 0x22
#define TT_PING 0x23
#define TT_TARGETS_ACK 0x27
#define TT_LOST 0x28
#define TT_A_NAME 20
#define TT_A_FORMAT 21
#define TT_A_ID 22
#define TT_A_TARGET 23
#define TT_A_GEN 31
#define TT_A_COUNT 32
#define TT_T_ID 1
#define TT_T_SHM 2

#define PING_NS 1000000000ull
#define DEAD_NS 3500000000ull
#define RETRY_NS 500000000ull
#define STALL_NS 1500000000ull
#define SYNC_FIRST_NS 200000000ull
#define SYNC_RETRY_NS 50000000ull
#define NAME_MAX_ 128
#define MAX_CHANNELS 256

/* The library's state of one marker. */
struct impl {
    struct ttpr_marker core;
    struct tt_marker *pub;
    struct impl *next;
    int bad;          /* name or format refused: stays off */
    int id;           /* -1 until the daemon answered */
    int sent;         /* registration sent in this session */
    int awaiting_table;
    int ready;        /* its targets are applied (or it was refused) in this session */
    int early;        /* counts emits until its targets come */
    int flush_early;  /* stopped counting: report the count once no emit still counts */
    uint64_t unsent;  /* a count TT_LOST has still to send (a full socket, no id yet) */
    int gone;         /* its object was unloaded with a count to report: kept until sent */
    char name[NAME_MAX_ + 1]; /* the name, kept here: the object holding it may be unloaded */
    char canon[1024]; /* the format as sent */
};

struct chan_ref {
    char name[TTRB_NAME_MAX + 1];
    struct ttrb_chan *chan;
    int used;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int pending_flush; /* a TT_LOST waits on a synchronize or a full socket */
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static struct impl *impls;
static pthread_t thread;
static int thread_started;
static int wake_fd[2] = {-1, -1};
static int sock = -1;
static uint32_t daemon_uid;
static uint32_t seqno;
static int connected_;
static uint32_t unacked;      /* generation applied, not acknowledged yet */
static int have_unacked;
static uint32_t session_gen;  /* bumps at each session: waits restart */
static struct chan_ref chans[MAX_CHANNELS];
static struct ttpr_targets *retired[4096];
static unsigned n_retired;
static struct ttrb_chan *retired_chans[MAX_CHANNELS];
static unsigned n_retired_chans;
static int atfork_done;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- formats (tracetui/core/model/formats.py) ------------------------------------------ */

static int is_ident(const char *s, size_t n)
{
    if (!n || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
              (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static int type_of(const char *spec, size_t n)
{
    static const struct { const char *s; int t; } table[] = {
        {"%d", TTPR_I32}, {"%u", TTPR_U32}, {"%ld", TTPR_I64}, {"%lu", TTPR_U64},
        {"%lld", TTPR_I64}, {"%llu", TTPR_U64}, {"%x", TTPR_X32}, {"%p", TTPR_PTR},
        {"%c", TTPR_CHAR}, {"%f", TTPR_F64}, {"%s", TTPR_STR},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strlen(table[i].s) == n && !memcmp(table[i].s, spec, n))
            return table[i].t;
    return 0;
}

/* Parse @fmt into @types; the canonical text (single spaces) into @canon.  Return: the number
 * of fields, or -1 with a sentence in @why. */
static int parse_format(const char *fmt, uint8_t *types, char *canon, size_t canon_size,
                        char *why, size_t why_size)
{
    const char *names[TTPR_MAX_FIELDS];
    size_t name_len[TTPR_MAX_FIELDS];
    int n = 0;
    size_t used = 0;
    const char *p = fmt;
    canon[0] = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        const char *name = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
        size_t nl = (size_t)(p - name);
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        const char *spec = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
        size_t sl = (size_t)(p - spec);
        if (!sl) {
            snprintf(why, why_size, "'%.*s' has no type (formats are pairs: 'pid %%d comm %%s')",
                     (int)nl, name);
            return -1;
        }
        if (!is_ident(name, nl)) {
            snprintf(why, why_size, "field name '%.*s' is not a C identifier", (int)nl, name);
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (name_len[i] == nl && !memcmp(names[i], name, nl)) {
                snprintf(why, why_size, "field name '%.*s' is used twice", (int)nl, name);
                return -1;
            }
        int t = type_of(spec, sl);
        if (!t) {
            snprintf(why, why_size,
                     "field '%.*s' has type '%.*s'; the types are %%d %%u %%ld %%lu %%lld %%llu "
                     "%%x %%p %%c %%f %%s",
                     (int)nl, name, (int)sl, spec);
            return -1;
        }
        if (n == TTPR_MAX_FIELDS) {
            snprintf(why, why_size, "a marker has at most %d fields", TTPR_MAX_FIELDS);
            return -1;
        }
        if (used + nl + sl + 2 >= canon_size) {
            snprintf(why, why_size, "the format is longer than %zu characters", canon_size - 1);
            return -1;
        }
        used += (size_t)snprintf(canon + used, canon_size - used, "%s%.*s %.*s", n ? " " : "",
                                 (int)nl, name, (int)sl, spec);
        names[n] = name;
        name_len[n] = nl;
        types[n++] = (uint8_t)t;
    }
    return n;
}

/* ---- registration ---------------------------------------------------------------------- */

static void link_start_locked(void);
static void wake(void);

static int register_timeout_ms(void)
{
    const char *v = getenv("TRACETUI_REGISTER_TIMEOUT");
    if (v && *v) {
        char *end;
        double s = strtod(v, &end);
        if (end != v && !*end && s >= 0 && s < 3600)
            return (int)(s * 1000);
    }
    return 3000;
}

static void runtime_dir(char *out, size_t n)
{
    const char *env = getenv("TRACETUI_RUNTIME_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(out, n, "%s", env);
    else if (xdg && *xdg)
        snprintf(out, n, "%s/tracetui", xdg);
    else
        snprintf(out, n, "/tmp/tracetui-%u", (unsigned)getuid());
}

struct port_info {
    uint32_t port;
    int32_t pid;
    uint32_t uid;
};

static int json_int(const char *text, const char *key, long long *out)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *p = strstr(text, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    char *end;
    *out = strtoll(p, &end, 10);
    return end == p ? -1 : 0;
}

/* The daemon's address from its port file (rendezvous.py).  Return: 0, or -1. */
static int read_port_file(struct port_info *pi)
{
    char dir[4096], path[4200], buf[512];
    runtime_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/daemon.port", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    long long port, pid;
    if (json_int(buf, "port", &port) || json_int(buf, "pid", &pid) || port <= 0 || pid <= 0)
        return -1;
    pi->port = (uint32_t)port;
    pi->pid = (int32_t)pid;
    pi->uid = (uint32_t)st.st_uid;
    return 0;
}

static int daemon_answers(void)
{
    struct port_info pi;
    if (read_port_file(&pi))
        return 0;
    return kill(pi.pid, 0) == 0 || errno == EPERM;
}

static struct impl *impl_new(struct tt_marker *m)
{
    struct impl *im = calloc(1, sizeof(*im));
    if (!im)
        return NULL;
    im->pub = m;
    im->id = -1;
    char why[256];
    uint8_t types[TTPR_MAX_FIELDS];
    size_t nl = m->name ? strlen(m->name) : 0;
    int n = -1;
    if (!m->name || !is_ident(m->name, nl) || nl > NAME_MAX_)
        snprintf(why, sizeof(why), "the name must be a C identifier of at most %d characters",
                 NAME_MAX_);
    else if (!m->format)
        snprintf(why, sizeof(why), "it has no format");
    else
        n = parse_format(m->format, types, im->canon, sizeof(im->canon), why, sizeof(why));
    if (n >= 0)
        memcpy(im->name, m->name, nl + 1);
    if (n < 0 || ttpr_marker_init(&im->core, 0xFFFF, types, (uint32_t)n)) {
        im->bad = 1;
        fprintf(stderr, "tracetui: marker %s is off: %s\n", m->name ? m->name : "(null)", why);
    }
    return im;
}

/* Under the lock: wait for the link thread's next change, at most 10 ms. */
static void wait_changed_locked(void)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += 10000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&changed, &lock, &dl);
}

/* Under the lock: wait (at most the register timeout) until every marker of [begin, end) has
 * its targets, as Python's probe.marker() does; on timeout, until their targets come, what
 * they emit is counted and reported as lost. */
static void wait_ready_locked(struct tt_marker *const *begin, struct tt_marker *const *end)
{
    uint64_t deadline = now_ns() + (uint64_t)register_timeout_ms() * 1000000ull;
    for (;;) {
        int pending = 0;
        for (struct tt_marker *const *p = begin; p < end; p++) {
            struct impl *im = *p ? (*p)->impl_ : NULL;
            if (im && !im->bad && !im->ready)
                pending = 1;
        }
        if (!pending)
            return;
        if (now_ns() >= deadline)
            break;
        wait_changed_locked();
    }
    for (struct tt_marker *const *p = begin; p < end; p++) {
        struct impl *im = *p ? (*p)->impl_ : NULL;
        if (im && !im->bad && !im->ready && !im->early) {
            im->early = 1;
            ttpr_marker_count_early(&im->core, 1);
            im->pub->on = 1;
        }
    }
}

/* Add the markers of [begin, end) that are not registered yet; with @wait, wait (bounded) for
 * their targets when a daemon answers, as Python's probe.marker() does. */
static void register_range(struct tt_marker *const *begin, struct tt_marker *const *end,
                           int wait)
{
    pthread_mutex_lock(&lock);
    int added = 0;
    for (struct tt_marker *const *p = begin; p < end; p++) {
        struct tt_marker *m = *p;
        if (!m || m->impl_)
            continue;
        struct impl *im = impl_new(m);
        if (!im) {
            m->on = 0;
            continue;
        }
        m->impl_ = im;
        m->on = 0;
        if (im->bad)
            continue;
        im->next = impls;
        impls = im;
        added++;
    }
    if (added)
        link_start_locked();
    pthread_mutex_unlock(&lock);
    if (!added)
        return;
    wake();
    if (!wait || !daemon_answers())
        return;
    pthread_mutex_lock(&lock);
    wait_ready_locked(begin, end);
    pthread_mutex_unlock(&lock);
}

void tt_register_(struct tt_marker *const *begin, struct tt_marker *const *end)
{
    register_range(begin, end, 1);
}

/* Stop counting early emits and return what was counted (no emit still counts: the caller
 * holds the only thread, or the marker's code is unloaded, or a synchronize passed). */
static uint64_t stop_counting(struct impl *im)
{
    ttpr_marker_count_early(&im->core, 0);
    im->early = 0;
    im->flush_early = 0;
    return ttpr_marker_take_early(&im->core);
}

static void drop_impl(struct impl *im)
{
    for (struct impl **q = &impls; *q; q = &(*q)->next)
        if (*q == im) {
            *q = im->next;
            break;
        }
    free(im);
}

void tt_unregister_(struct tt_marker *const *begin, struct tt_marker *const *end)
{
    /* The object holding these markers is being unloaded: no emit of its code runs any more
     * (a program unloading code another thread still runs has a bug of its own).  A marker
     * that counted early emits outlives its object until the count is reported: the
     * program's own destructor runs before this library's exit flush, so dropping it here
     * lost every early event of a program that finished before its targets came. */
    pthread_mutex_lock(&lock);
    int owed = 0;
    for (struct tt_marker *const *p = begin; p < end; p++) {
        struct tt_marker *m = *p;
        struct impl *im = m ? m->impl_ : NULL;
        if (!im)
            continue;
        m->on = 0;
        m->impl_ = NULL;
        im->unsent += stop_counting(im);
        struct ttpr_targets *old = ttpr_marker_swap(&im->core, NULL);
        if (old && n_retired < sizeof(retired) / sizeof(retired[0]))
            retired[n_retired++] = old;
        im->pub = NULL;
        if (!im->unsent) {
            drop_impl(im);
            continue;
        }
        im->gone = 1;
        owed = 1;
    }
    if (owed) {
        pending_flush = 1;
        wake();
    }
    pthread_mutex_unlock(&lock);
}

void tt_emit_(struct tt_marker *m, const char *format, ...)
{
    (void)format;
    struct impl *im = m->impl_;
    if (__builtin_expect(!im, 0)) {
        /* Emitted before its object's constructor ran (from another constructor). */
        struct tt_marker *one[1] = {m};
        register_range(one, one + 1, 1);
        im = m->impl_;
        if (!im || im->bad)
            return;
    }
    va_list ap;
    va_start(ap, format);
    ttpr_emit_va(&im->core, ap);
    va_end(ap);
}

int tt_connected(void)
{
    return __atomic_load_n(&connected_, __ATOMIC_RELAXED);
}

int tt_wait_registered(int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    pthread_mutex_lock(&lock);
    int ok = 0;
    for (;;) {
        ok = connected_ && !have_unacked;
        for (struct impl *im = impls; ok && im; im = im->next)
            if (!im->ready && !im->gone)
                ok = 0;
        if (ok || now_ns() >= deadline)
            break;
        wait_changed_locked();
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

/* ---- netlink messages (docs/PROTOCOL.md, "Framing") ------------------------------------- */

struct msg {
    char buf[8192];
    uint32_t len;
};

static void msg_begin(struct msg *m, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
    memset(m->buf, 0, 20);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    seqno = (seqno + 1) & 0x7FFFFFFF;
    if (!seqno)
        seqno = 1;
    h->nlmsg_seq = seqno;
    m->buf[16] = TT_VERSION;
    m->len = 20;
}

static void msg_attr(struct msg *m, uint16_t type, const void *data, uint32_t n)
{
    uint32_t total = 4 + n, padded = (total + 3) & ~3u;
    if (m->len + padded > sizeof(m->buf))
        return;
    uint16_t hdr[2] = {(uint16_t)total, type};
    memcpy(m->buf + m->len, hdr, 4);
    memcpy(m->buf + m->len + 4, data, n);
    memset(m->buf + m->len + total, 0, padded - total);
    m->len += padded;
}

static int msg_send(struct msg *m)
{
    ((struct nlmsghdr *)m->buf)->nlmsg_len = m->len;
    if (sock < 0)
        return -1;
    return send(sock, m->buf, m->len, MSG_DONTWAIT) == (ssize_t)m->len ? 0 : -1;
}

static int send_simple(uint16_t type)
{
    struct msg m;
    msg_begin(&m, type, NLM_F_REQUEST);
    return msg_send(&m);
}

/* Attributes of a payload: call @fn for each (type, data, len). */
#define FOR_ATTRS(p, n, typ, data, alen)                                                       \
    for (uint32_t off_ = 0, typ, alen; off_ + 4 <= (n) &&                                      \
         ((alen = ((const uint16_t *)((p) + off_))[0]) >= 4) && off_ + alen <= (n) &&         \
         ((typ = ((const uint16_t *)((p) + off_))[1] & 0x3FFF), 1);                            \
         off_ += (alen + 3) & ~3u)                                                            \
        for (const char *data = (p) + off_ + 4; data; data = NULL)

static uint32_t u32_at(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- the link thread -------------------------------------------------------------------- */

static void wake(void)
{
    if (wake_fd[1] >= 0) {
        char c = 'x';
        ssize_t r = write(wake_fd[1], &c, 1);
        (void)r;
    }
}

static void set_on(struct impl *im)
{
    if (!im->gone)
        im->pub->on = im->early || ttpr_marker_wanted(&im->core);
}

static struct ttrb_chan *chan_get(const char *name)
{
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (chans[i].chan && !strcmp(chans[i].name, name)) {
            chans[i].used = 1;
            return chans[i].chan;
        }
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (!chans[i].chan) {
            struct ttrb_chan *c;
            if (strlen(name) > TTRB_NAME_MAX || ttrb_chan_open(name, &c))
                return NULL; /* freed meanwhile: the next table will not name it */
            snprintf(chans[i].name, sizeof(chans[i].name), "%s", name);
            chans[i].chan = c;
            chans[i].used = 1;
            return c;
        }
    return NULL;
}

/* Free what no emit can use any more: call only after ttpr_synchronize() returned 0. */
static void reap_retired(void)
{
    for (unsigned i = 0; i < n_retired; i++)
        ttpr_targets_free(retired[i]);
    n_retired = 0;
    for (unsigned i = 0; i < n_retired_chans; i++)
        ttrb_chan_close(retired_chans[i]);
    n_retired_chans = 0;
}

static void retire(struct ttpr_targets *old)
{
    if (!old)
        return;
    if (n_retired == sizeof(retired) / sizeof(retired[0])) {
        if (ttpr_synchronize(SYNC_FIRST_NS) != 0)
            return; /* a writer stopped mid-emit may still read it: leak rather than crash */
        reap_retired();
    }
    retired[n_retired++] = old;
}

/* Apply a targets table (payload of TT_TARGETS) under the lock. */
static void apply_table(const char *p, uint32_t n)
{
    for (int i = 0; i < MAX_CHANNELS; i++)
        chans[i].used = 0;
    uint32_t gen = 0;
    FOR_ATTRS(p, n, typ, data, alen) {
        if (typ == TT_A_GEN && alen >= 8)
            gen = u32_at(data);
    }
    for (struct impl *im = impls; im; im = im->next) {
        if (im->id < 0 || im->gone)
            continue;
        struct ttrb_chan *targets[64];
        uint32_t nt = 0;
        FOR_ATTRS(p, n, typ, data, alen) {
            if (typ != TT_A_TARGET)
                continue;
            const char *inner = data;
            uint32_t in = alen - 4;
            int id = -1;
            FOR_ATTRS(inner, in, t2, d2, l2) {
                if (t2 == TT_T_ID && l2 >= 8)
                    id = (int)u32_at(d2);
            }
            if (id != im->id)
                continue;
            FOR_ATTRS(inner, in, t2, d2, l2) {
                if (t2 != TT_T_SHM || l2 < 5 || d2[l2 - 5] != 0 || nt == 64)
                    continue;
                struct ttrb_chan *c = chan_get(d2);
                if (c)
                    targets[nt++] = c;
            }
        }
        struct ttpr_targets *t = NULL;
        if (nt) {
            t = ttpr_targets_new(nt);
            for (uint32_t k = 0; t && k < nt; k++)
                ttpr_targets_set(t, k, targets[k]);
        }
        retire(ttpr_marker_swap(&im->core, t));
        set_on(im);
    }
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (chans[i].chan && !chans[i].used) {
            if (n_retired_chans < MAX_CHANNELS) {
                retired_chans[n_retired_chans++] = chans[i].chan;
                chans[i].chan = NULL;
            }
        }
    for (struct impl *im = impls; im; im = im->next)
        if (im->awaiting_table) {
            im->awaiting_table = 0;
            im->ready = 1;
        }
    unacked = gen;
    have_unacked = 1;
    __atomic_store_n(&connected_, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&changed);
}

/* Report what markers counted before their targets came (TT_LOST), once a synchronize says
 * no emit still counts; retried each loop turn while one is stopped mid-way.  Under the lock. */
static void flush_early(uint64_t timeout_ns)
{
    pending_flush = 1;
    pthread_mutex_unlock(&lock);
    int rc = ttpr_synchronize(timeout_ns);
    pthread_mutex_lock(&lock);
    if (rc != 0)
        return;
    pending_flush = 0;
    for (struct impl *im = impls, *next; im; im = next) {
        next = im->next;
        if (im->flush_early) {
            im->flush_early = 0;
            im->unsent += ttpr_marker_take_early(&im->core);
        }
        if (im->unsent && im->id >= 0) {
            struct msg m;
            msg_begin(&m, TT_LOST, NLM_F_REQUEST);
            uint32_t id = (uint32_t)im->id;
            msg_attr(&m, TT_A_ID, &id, 4);
            msg_attr(&m, TT_A_COUNT, &im->unsent, 8);
            if (msg_send(&m) == 0)
                im->unsent = 0;
            else
                pending_flush = 1; /* a full socket (a busy daemon): sent again next turn */
        }
        /* Without an id yet (a new session registers it again) the count waits in unsent;
         * try_ack sends it once the daemon answered.  Never dropped. */
        if (im->gone && !im->unsent)
            drop_impl(im);
    }
    pthread_cond_broadcast(&changed);
}

/* At exit: emits counted before their targets came are reported before the process goes
 * (bounded: at most EXIT_FLUSH_NS, the default register timeout, and only while a daemon
 * answers; 1 s was too short for a daemon on a loaded machine: the count was never told). */
#define EXIT_FLUSH_NS 3000000000ull
__attribute__((destructor)) static void flush_at_exit(void)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)(EXIT_FLUSH_NS / 1000000000ull);
    if (pthread_mutex_timedlock(&lock, &dl))
        return;
    uint64_t deadline = now_ns() + EXIT_FLUSH_NS;
    /* Not connected yet (a register timeout of 0, a program faster than the first reply):
     * still worth the wait while a daemon answers. */
    int answers = connected_ || (impls && daemon_answers());
    for (;;) {
        int waiting = pending_flush || have_unacked;
        for (struct impl *im = impls; im && !waiting; im = im->next)
            waiting = im->early || im->flush_early || im->unsent;
        if (!waiting || !answers || now_ns() >= deadline)
            break;
        wake(); /* the link thread retries now */
        wait_changed_locked();
    }
    pthread_mutex_unlock(&lock);
}

/* Acknowledge the applied table once no emit begun under an older one still runs. */
static void try_ack(uint64_t timeout_ns)
{
    if (!have_unacked)
        return;
    pthread_mutex_unlock(&lock);
    int rc = ttpr_synchronize(timeout_ns);
    pthread_mutex_lock(&lock);
    if (rc != 0 || !have_unacked)
        return; /* an emit is stopped mid-way (SIGSTOP, a debugger): retried next turn */
    reap_retired();
    uint32_t gen = unacked;
    have_unacked = 0;
    int flush = 0;
    for (struct impl *im = impls; im; im = im->next) {
        if (im->unsent && im->id >= 0)
            flush = 1;
        if (!im->early || !im->ready)
            continue;
        ttpr_marker_count_early(&im->core, 0);
        im->early = 0;
        im->flush_early = 1;
        flush = 1;
        set_on(im);
    }
    if (flush)
        flush_early(timeout_ns);
    struct msg m;
    msg_begin(&m, TT_TARGETS_ACK, NLM_F_REQUEST);
    msg_attr(&m, TT_A_GEN, &gen, 4);
    msg_send(&m);
    pthread_cond_broadcast(&changed);
}

static void send_pending(void)
{
    for (struct impl *im = impls; im; im = im->next) {
        if (im->sent)
            continue;
        struct msg m;
        msg_begin(&m, TT_MARKER_MSG, NLM_F_REQUEST);
        msg_attr(&m, TT_A_NAME, im->name, (uint32_t)strlen(im->name) + 1);
        msg_attr(&m, TT_A_FORMAT, im->canon, (uint32_t)strlen(im->canon) + 1);
        if (msg_send(&m) == 0) {
            im->sent = (int)((struct nlmsghdr *)m.buf)->nlmsg_seq;
            if (!im->sent)
                im->sent = 1;
        }
    }
}

/* Handle one message under the lock.  Return: -1 when the session must end. */
static int handle(const struct nlmsghdr *h)
{
    const char *p = (const char *)h + 20;
    uint32_t n = h->nlmsg_len >= 20 ? h->nlmsg_len - 20 : 0;
    if (h->nlmsg_type == TT_MARKER_MSG) {
        const char *name = NULL;
        int id = -1;
        FOR_ATTRS(p, n, typ, data, alen) {
            if (typ == TT_A_NAME && alen > 4 && data[alen - 5] == 0)
                name = data;
            else if (typ == TT_A_ID && alen >= 8)
                id = (int)u32_at(data);
        }
        for (struct impl *im = impls; name && id >= 0 && im; im = im->next)
            if (im->id < 0 && im->sent && !strcmp(im->name, name)) {
                im->id = id;
                ttpr_marker_set_id(&im->core, (uint16_t)id);
                im->awaiting_table = 1; /* the daemon pushes a table covering it next */
            }
    } else if (h->nlmsg_type == TT_TARGETS) {
        apply_table(p, n);
    } else if (h->nlmsg_type == NLMSG_ERROR && n >= 4 + 16 - 4) {
        int32_t err;
        memcpy(&err, (const char *)h + 16, 4);
        if (err == -ENOENT && h->nlmsg_seq == 0)
            return -1; /* the daemon forgot this process: register again */
        if (err) {
            for (struct impl *im = impls; im; im = im->next)
                if (im->id < 0 && im->sent == (int)h->nlmsg_seq) {
                    /* Refused: nothing will come to wait for, and no trace can want what
                     * it counted. */
                    im->ready = 1;
                    stop_counting(im);
                    im->unsent = 0;
                    set_on(im);
                    const char *why = "";
                    uint32_t off = 16 + 4 + 16; /* hdr, error, the request's header */
                    if (h->nlmsg_len > off + 4) {
                        const char *a = (const char *)h + off;
                        uint32_t an = h->nlmsg_len - off;
                        FOR_ATTRS(a, an, typ, data, alen) {
                            if (typ == 1 && alen > 4 && data[alen - 5] == 0)
                                why = data;
                        }
                    }
                    fprintf(stderr, "tracetui: marker %s is off: the daemon refused it: %s\n",
                            im->name, why);
                    pthread_cond_broadcast(&changed);
                }
        }
    }
    return 0;
}

/* Read every queued datagram.  Return: 1 if any came from the daemon, -1 to end the session. */
static int receive(void)
{
    static char buf[1 << 16];
    int got = 0;
    for (;;) {
        char anc[CMSG_SPACE(sizeof(struct ucred))];
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh = {0};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = anc;
        mh.msg_controllen = sizeof(anc);
        ssize_t r = recvmsg(sock, &mh, MSG_DONTWAIT);
        if (r < 0)
            return errno == EAGAIN || errno == EINTR ? got : -1;
        int trusted = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                struct ucred cr;
                memcpy(&cr, CMSG_DATA(c), sizeof(cr));
                trusted = cr.uid == daemon_uid || cr.uid == 0;
            }
        if (!trusted)
            continue; /* not from the daemon's uid: a squatter, ignored */
        got = 1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (uint32_t)r);
             h = NLMSG_NEXT(h, r))
            if (handle(h) < 0)
                return -1;
    }
}

static int connect_daemon(void)
{
    struct port_info pi;
    if (read_port_file(&pi))
        return -1;
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK_);
    if (s < 0)
        return -1;
    int one = 1, rcv = 4 << 20;
    struct sockaddr_nl me = {.nl_family = AF_NETLINK};
    struct sockaddr_nl peer = {.nl_family = AF_NETLINK, .nl_pid = pi.port};
    if (setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) ||
        bind(s, (struct sockaddr *)&me, sizeof(me)) ||
        connect(s, (struct sockaddr *)&peer, sizeof(peer))) {
        close(s);
        return -1;
    }
    sock = s;
    daemon_uid = pi.uid;
    return 0;
}

/* The daemon is gone: nothing may be written for it any more. */
static void disconnect(void)
{
    __atomic_store_n(&connected_, 0, __ATOMIC_RELAXED);
    for (struct impl *im = impls; im; im = im->next) {
        retire(ttpr_marker_swap(&im->core, NULL));
        im->id = -1;
        im->sent = 0;
        im->ready = 0;
        im->awaiting_table = 0;
        set_on(im);
    }
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (chans[i].chan && n_retired_chans < MAX_CHANNELS) {
            retired_chans[n_retired_chans++] = chans[i].chan;
            chans[i].chan = NULL;
        }
    have_unacked = 0;
    if (sock >= 0) {
        close(sock);
        sock = -1;
    }
    pthread_cond_broadcast(&changed);
}

static void session(void)
{
    if (connect_daemon())
        return;
    if (send_simple(TT_PROBE_HELLO))
        return;
    uint64_t last_rx = now_ns(), last_ping = 0, last_turn = now_ns();
    session_gen++;
    for (;;) {
        send_pending();
        uint64_t now = now_ns();
        if (now - last_turn > STALL_NS) {
            /* This process was stopped (SIGSTOP, a debugger), not the daemon. */
            last_rx = now;
            last_ping = 0;
        }
        last_turn = now;
        if (now - last_ping >= PING_NS) {
            send_simple(TT_PING);
            last_ping = now;
            if (n_retired || n_retired_chans) {
                pthread_mutex_unlock(&lock);
                int rc = ttpr_synchronize(SYNC_RETRY_NS);
                pthread_mutex_lock(&lock);
                if (rc == 0 && !have_unacked)
                    reap_retired();
            }
        }
        struct pollfd fds[2] = {{sock, POLLIN, 0}, {wake_fd[0], POLLIN, 0}};
        pthread_mutex_unlock(&lock);
        /* An ack or a lost count waiting on a synchronize is retried soon, not a ping later. */
        poll(fds, 2, have_unacked || pending_flush ? 10 : (int)(PING_NS / 2 / 1000000));
        pthread_mutex_lock(&lock);
        if (now_ns() - now > STALL_NS) {
            last_rx = now_ns();
            last_ping = 0;
        }
        if (fds[1].revents & POLLIN) {
            char drain[256];
            while (read(wake_fd[0], drain, sizeof(drain)) > 0)
                ;
        }
        if (fds[0].revents & (POLLIN | POLLERR)) {
            int r = receive();
            if (r < 0)
                return;
            if (r > 0)
                last_rx = now_ns();
        }
        if (now_ns() - last_rx > DEAD_NS)
            return;
        if (have_unacked)
            try_ack(SYNC_RETRY_NS);
        else if (pending_flush)
            flush_early(SYNC_RETRY_NS);
    }
}

static void *link_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        session();
        disconnect();
        pthread_mutex_unlock(&lock);
        if (ttpr_synchronize(SYNC_RETRY_NS) == 0) {
            pthread_mutex_lock(&lock);
            reap_retired();
            pthread_mutex_unlock(&lock);
        }
        struct timespec d = {0, (long)RETRY_NS};
        nanosleep(&d, NULL);
        pthread_mutex_lock(&lock);
    }
    return NULL;
}

static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&lock); }

/* The child is a new process to the daemon: the parent's thread and socket are not its own;
 * it registers every marker again (and waits for their targets, as at load). */
static void atfork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&changed, NULL);
    thread_started = 0;
    if (sock >= 0) {
        close(sock);
        sock = -1;
    }
    for (int i = 0; i < 2; i++)
        if (wake_fd[i] >= 0) {
            close(wake_fd[i]);
            wake_fd[i] = -1;
        }
    /* Only this thread exists: nothing else can be inside an emit.  Counts owed by unloaded
     * objects are the parent's to report. */
    for (struct impl *im = impls, *next; im; im = next) {
        next = im->next;
        if (im->gone)
            drop_impl(im);
    }
    int n = 0;
    for (struct impl *im = impls; im; im = im->next) {
        struct ttpr_targets *old = ttpr_marker_swap(&im->core, NULL);
        if (old)
            ttpr_targets_free(old);
        stop_counting(im);
        im->id = -1;
        im->sent = 0;
        im->ready = 0;
        im->unsent = 0;
        im->awaiting_table = 0;
        im->pub->on = 0;
        n++;
    }
    reap_retired();
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (chans[i].chan) {
            ttrb_chan_close(chans[i].chan);
            chans[i].chan = NULL;
        }
    have_unacked = 0;
    __atomic_store_n(&connected_, 0, __ATOMIC_RELAXED);
    if (!n)
        return;
    struct tt_marker **all = calloc((size_t)n, sizeof(*all));
    if (!all)
        return;
    int k = 0;
    for (struct impl *im = impls; im; im = im->next)
        all[k++] = im->pub;
    pthread_mutex_lock(&lock);
    link_start_locked();
    pthread_mutex_unlock(&lock);
    wake();
    /* Wait as at load, on the markers already known. */
    if (daemon_answers()) {
        pthread_mutex_lock(&lock);
        wait_ready_locked(all, all + n);
        pthread_mutex_unlock(&lock);
    }
    free(all);
}

/* Start the link thread (once per process), with every signal blocked in it. */
static void link_start_locked(void)
{
    if (thread_started)
        return;
    if (!atfork_done) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        atfork_done = 1;
    }
    if (wake_fd[0] < 0 && pipe2(wake_fd, O_NONBLOCK | O_CLOEXEC)) {
        wake_fd[0] = wake_fd[1] = -1;
        return;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&thread, &attr, link_main, NULL) == 0)
        thread_started = 1;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
