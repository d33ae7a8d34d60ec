/* evloop_unity.c — the C glue's one translation unit: libev, then every room in layer order.
 *
 * Why it exists: the rooms (csrc/evloop_*.c) share the loop and watcher internals and call
 * each other on every event; compiled as one unit every function stays `static`, libev's
 * loop fields are readable (ev.c is included first, as gevent's cext does: the glue reads
 * activecnt, pipe_w and the signal table), and the compiler inlines across rooms.
 * csrc/evloop_internal.h declares everything a room may use of another; this file only
 * puts them together.
 *
 * What it must not do: hold code. A new room is one #include line here (after the rooms
 * it uses), its declarations in evloop_internal.h and its init call in evloop_module.c.
 */
#include "evloop_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#if EV_USE_EVENTFD
#include <sys/eventfd.h>
#endif

#if defined(__linux__) && defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))
/* glibc 2.33 turned lstat into a versioned symbol of its own (lstat64@GLIBC_2.33); calling
 * it would limit the wheel to manylinux_2_34. libev's stat watcher only needs lstat, and on
 * these 64-bit ABIs the kernel's struct stat is glibc's, so ask the kernel directly. */
#include <sys/syscall.h>
static int
evloop_lstat(const char *path, struct stat *buf)
{
    return (int)syscall(SYS_newfstatat, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
#define lstat(path, buf) evloop_lstat(path, buf)
#endif

#include "ev.c"

/* the rooms, lowest first */
#include "evloop_errors.c"
#include "evloop_signals.c"
#include "evloop_watcher.c"
#include "evloop_watchers.c"
#include "evloop_callbacks.c"
#include "evloop_loop.c"
#include "evloop_arena.c"
#include "evloop_hub.c"
#include "evloop_io.c"
#include "evloop_aio.c"
#include "evloop_transport.c"
#include "evloop_module.c"
