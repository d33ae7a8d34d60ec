/* evloop.h — the C glue's one public entry point, as the cffi build declares it.
 *
 * Why it exists: evloop/_build.py compiles its cffi wrapper (evloop/_ev.c) as a translation
 * unit of its own; this is everything that unit may know of the glue: the bootstrap that
 * builds evloop._cext. libev's version functions come from ev.h.
 *
 * What it must not do: declare the glue's types or internal functions; those are in
 * csrc/evloop_internal.h, for the rooms of the glue only.
 */
#ifndef EVLOOP_H
#define EVLOOP_H

/* Builds evloop._cext and registers it in sys.modules: 0, or -1 with a Python exception. */
int evloop_bootstrap(void);

#endif
