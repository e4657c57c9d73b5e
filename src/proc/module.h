/* module: optional parts of the worker and of the webhook sender that live
 * in shared objects beside the binary (<exe dir>/lib/t2istage/ in the build
 * tree, <exe dir>/../lib/t2istage/ when installed), loaded on first use.
 * They carry heavy libraries (libvips, libcurl) that would otherwise cost
 * every start of the binary tens of milliseconds. */
#ifndef T2I_MODULE_H
#define T2I_MODULE_H

/* dlsym(symbol) from module name (e.g. "fetch_curl.so"), loading it once;
 * NULL (logged once) when it is missing. */
void *module_symbol(const char *name, const char *symbol);

#endif
