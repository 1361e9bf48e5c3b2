#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER prov
#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./prov.h"
#if !defined(PROV_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define PROV_H
#include <lttng/tracepoint.h>
LTTNG_UST_TRACEPOINT_ENUM(prov, color,
    LTTNG_UST_TP_ENUM_VALUES(
        lttng_ust_field_enum_value("RED", 0)
        lttng_ust_field_enum_range("GREEN", 1, 5)
        lttng_ust_field_enum_auto("BLUE")))
LTTNG_UST_TRACEPOINT_EVENT(prov, ev,
    LTTNG_UST_TP_ARGS(int, i, long, neg, double, d, float, f, const char *, s, const int *, seq, unsigned int, n),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(int, i, i)
        lttng_ust_field_integer(long, neg, neg)
        lttng_ust_field_integer_hex(unsigned int, hx, (unsigned int) i * 16u)
        lttng_ust_field_float(double, d, d)
        lttng_ust_field_float(float, f, f)
        lttng_ust_field_string(s, s)
        lttng_ust_field_array_text(char, txt, s, 4)
        lttng_ust_field_array(int, arr, seq, 3)
        lttng_ust_field_sequence(int, seq, seq, unsigned int, n)
        lttng_ust_field_sequence_text(char, stxt, s, unsigned int, n)
        lttng_ust_field_enum(prov, color, int, c, i % 8)
    ))
LTTNG_UST_TRACEPOINT_EVENT(prov, tick, LTTNG_UST_TP_ARGS(int, k), LTTNG_UST_TP_FIELDS(lttng_ust_field_integer(short, k, k)))
#endif
#include <lttng/tracepoint-event.h>
