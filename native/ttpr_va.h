/*
 * ttpr_va — the emitter of the public C API (libtracetui-probe, native/ttc.c): a marker's
 * fields taken from a va_list in format order.  Not part of the cffi cdef (cffi has no
 * va_list); same read-side sections, target lists and ring writes as every ttpr emitter.
 *
 * Argument types per field (the default argument promotions of a printf call):
 *   TTPR_I32 TTPR_U32 TTPR_X32 TTPR_CHAR  int / unsigned int
 *   TTPR_I64 TTPR_U64                     long long (long on LP64: the same)
 *   TTPR_PTR                              void *
 *   TTPR_F64                              double
 *   TTPR_STR                              const char * (NULL is recorded as "(null)")
 * Return: the number of targets that lost the event (counted in the buffers' stats).
 */
#ifndef TTPR_VA_H
#define TTPR_VA_H
#include <stdarg.h>
#include <stdint.h>
struct ttpr_marker;
int ttpr_emit_va(struct ttpr_marker *m, va_list ap);
/* 1 when the marker has a target list now, or counts early emits. */
int ttpr_marker_wanted(struct ttpr_marker *m);
#endif
