/*
 * tracetui/probe.h — trace C and C++ programs with tracetui.
 *
 *     #include <tracetui/probe.h>
 *
 *     void schedule(int prev, int next, const char *comm)
 *     {
 *         TT_MARKER(sched_switch, "prev_pid %d next_pid %d comm %s", prev, next, comm);
 *     }
 *
 * Build: cc prog.c $(tracetui config --cflags --libs)
 *        (or $(pkg-config --cflags --libs tracetui-probe) with PKG_CONFIG_PATH set to
 *        `tracetui config --pkg-config-path`).
 *
 * A marker is a name (a C identifier) and a format of field names and printf letters, the same
 * formats as Python's tracetui.probe.marker():
 *
 *     %d int32   %u uint32   %x uint32 (hex)   %ld %lld int64   %lu %llu uint64
 *     %p pointer (uint64, hex)   %c char   %f double   %s NUL-terminated UTF-8 string
 *
 * The compiler checks the arguments against the format (it is a printf format).  TT_MARKER
 * defines the marker once (a static object where it is written) and emits; when no trace wants
 * it, it costs one predictable branch on the marker's flag.  TT_MARKER_DEFINE / TT_EMIT /
 * TT_ENABLED separate the definition from the emits (one marker used in several places).
 *
 * Markers register with the tracetui daemon when their program or library is loaded (a
 * constructor; a thread of the library does the talking), so they are exact from the first
 * event: while a daemon answers, loading waits until the daemon has said where the markers'
 * events go (at most TRACETUI_REGISTER_TIMEOUT seconds, 3 by default; after a timeout what is
 * emitted before the answer is counted as lost).  Markers in a library loaded with dlopen()
 * register when it is loaded and are forgotten when it is unloaded.  After fork() the child
 * is a new process to the daemon and registers again.
 *
 * Nothing here can hurt the program: with no daemon, a daemon that dies, or full buffers an
 * event is not recorded (losses are counted in the buffers) and nothing blocks, fails or
 * prints, except one line on stderr for a marker whose name or format is bad (it stays off).
 */
#ifndef TRACETUI_PROBE_H
#define TRACETUI_PROBE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TT_API_VERSION 1

/* One marker.  Every member is the library's; `on` is what TT_MARKER tests. */
struct tt_marker {
    volatile int on;         /* nonzero while some trace wants the events (or not yet known) */
    int version;             /* TT_API_VERSION */
    const char *name;
    const char *format;
    void *impl_;             /* the library's state of this marker */
};

#define TT_MARKER_INIT(name_, format_) { 1, TT_API_VERSION, name_, format_, 0 }

#if defined(__GNUC__)
#define TT_PUBLIC_ __attribute__((visibility("default")))
#else
#define TT_PUBLIC_
#endif

/* Called by the macros below, not by programs.  tt_emit_ encodes the arguments by the
 * marker's format; a first call registers the marker if its constructor did not. */
TT_PUBLIC_ void tt_emit_(struct tt_marker *m, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
TT_PUBLIC_ void tt_register_(struct tt_marker *const *begin, struct tt_marker *const *end);
TT_PUBLIC_ void tt_unregister_(struct tt_marker *const *begin, struct tt_marker *const *end);

/* Library state for diagnostics and tests: 1 when a daemon told this process its targets. */
TT_PUBLIC_ int tt_connected(void);
/* Wait (at most timeout_ms) until the daemon has acknowledged every marker registered so far
 * and this process's tables are applied.  Return: 1 when that happened, 0 on timeout or when
 * no daemon answers.  Programs never need it (loading already waits); tests use it. */
TT_PUBLIC_ int tt_wait_registered(int timeout_ms);

#if defined(__GNUC__)
#define TT_UNLIKELY_(x) __builtin_expect(!!(x), 0)
#else
#define TT_UNLIKELY_(x) (x)
#endif

/* Every marker's address sits in the section tt_markers of its program or library, so the
 * library can register them all when the object is loaded and forget them when it is unloaded
 * (the linker provides __start_ / __stop_ symbols per object). */
#define TT_SECTION_ "tt_markers"
/* A marker without fields has the format "": not a mistake here, whatever -Wformat says. */
#if defined(__GNUC__)
#define TT_NO_ZERO_LENGTH_WARNING_(stmt)                                                       \
    _Pragma("GCC diagnostic push")                                                             \
    _Pragma("GCC diagnostic ignored \"-Wformat-zero-length\"") stmt;                          \
    _Pragma("GCC diagnostic pop")
#else
#define TT_NO_ZERO_LENGTH_WARNING_(stmt) stmt
#endif
#define TT_CAT2_(a, b) a##b
#define TT_CAT_(a, b) TT_CAT2_(a, b)

#define TT_MARKER_DEFINE(var, name_, format_)                                                  \
    static struct tt_marker var = TT_MARKER_INIT(#name_, format_);                             \
    static struct tt_marker *const TT_CAT_(tt_ptr_, var)                                       \
        __attribute__((section(TT_SECTION_), used)) = &var

/* Is the marker wanted by a trace now?  Skip expensive argument work when not. */
#define TT_ENABLED(var) TT_UNLIKELY_((var).on)

/* Emit through a marker defined with TT_MARKER_DEFINE.  The format is the marker's own, so the
 * compiler checks the arguments against it. */
#define TT_EMIT(var, ...)                                                                      \
    do {                                                                                       \
        if (TT_UNLIKELY_((var).on)) {                                                          \
            TT_NO_ZERO_LENGTH_WARNING_(tt_emit_(&(var), __VA_ARGS__));                         \
        }                                                                                      \
    } while (0)

/* Define the marker NAME with FORMAT here (once) and emit one event with the arguments. */
#define TT_MARKER(name_, ...)                                                                  \
    do {                                                                                       \
        TT_MARKER_DEFINE(tt_marker_##name_, name_, TT_FIRST_(__VA_ARGS__, 0));                 \
        if (TT_UNLIKELY_(tt_marker_##name_.on)) {                                              \
            TT_NO_ZERO_LENGTH_WARNING_(tt_emit_(&tt_marker_##name_, __VA_ARGS__));             \
        }                                                                                      \
    } while (0)
#define TT_FIRST_(first, ...) first

/* Registration of this object's markers at load, forgetting at unload.  Static in every
 * translation unit that includes this header; registering twice is harmless. */
extern struct tt_marker *const __start_tt_markers[] __attribute__((weak, visibility("hidden")));
extern struct tt_marker *const __stop_tt_markers[] __attribute__((weak, visibility("hidden")));

__attribute__((constructor, used)) static void tt_object_loaded_(void)
{
    if ((const void *)__start_tt_markers != (const void *)__stop_tt_markers)
        tt_register_(__start_tt_markers, __stop_tt_markers);
}

__attribute__((destructor, used)) static void tt_object_unloaded_(void)
{
    if ((const void *)__start_tt_markers != (const void *)__stop_tt_markers)
        tt_unregister_(__start_tt_markers, __stop_tt_markers);
}

#ifdef __cplusplus
}
#endif

#endif /* TRACETUI_PROBE_H */
