/* A library with a marker of its own, loaded with dlopen by known.c. */
#include <tracetui/probe.h>

void plugin_emit(int n)
{
    for (int k = 0; k < n; k++)
        TT_MARKER(capi_plugin, "k %d s %s", k, "from the plugin");
}
