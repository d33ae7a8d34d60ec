/* evloop_config.h — the fixed configuration libev is compiled with.
 *
 * Why it exists: evloop never runs libev's configure script, a known source of broken
 * builds (wrong feature probes in cross or isolated builds). Every feature is chosen here,
 * once, from what the platform is known to have.
 *
 * What it must not do: depend on probing the build machine. It must be included before
 * ev.h / ev.c in every translation unit that touches libev, so all units agree on the
 * watcher struct layout.
 */
#ifndef EVLOOP_CONFIG_H
#define EVLOOP_CONFIG_H

#define EV_STANDALONE 1
#define EV_MULTIPLICITY 1
#define EV_COMPAT3 0
#define EV_VERIFY 0
/* Everything: all watcher kinds, 4-heap timers, full API. */
#define EV_FEATURES 0x7f

#define EV_USE_FLOOR 1
#define EV_USE_MONOTONIC 1
#define EV_USE_REALTIME 0
#define EV_USE_NANOSLEEP 1
#define EV_USE_SELECT 1
#define EV_USE_POLL 1
#define EV_USE_PORT 0

#if defined(__linux__)
#  define EV_USE_CLOCK_SYSCALL 0
#  define EV_USE_EPOLL 1
#  define EV_USE_INOTIFY 1
#  define EV_USE_EVENTFD 1
#  define EV_USE_TIMERFD 1
/* io_uring and linux aio are experimental in libev 4.33 and off by decision. */
#  define EV_USE_LINUXAIO 0
#  define EV_USE_IOURING 0
#  define EV_USE_KQUEUE 0
#else
#  define EV_USE_EPOLL 0
#  define EV_USE_INOTIFY 0
#  define EV_USE_EVENTFD 0
#  define EV_USE_TIMERFD 0
#  define EV_USE_LINUXAIO 0
#  define EV_USE_IOURING 0
#  if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
#    define EV_USE_KQUEUE 1
#  else
#    define EV_USE_KQUEUE 0
#  endif
#endif

/* libev's child watchers reap every child with waitpid(-1) from its SIGCHLD handler, which
 * takes the statuses of children other code waits for (asyncio, subprocess in threads,
 * os.waitpid). evloop implements child watchers itself, reaping per pid (csrc/evloop_signals.c). */
#define EV_CHILD_ENABLE 0

/* signalfd blocks the signals it watches with sigprocmask; child processes inherit that
 * mask and Python's own handlers stop seeing them. evloop keeps plain sigaction handlers. */
#define EV_USE_SIGNALFD 0

/* libev's select backend otherwise caps fds at FD_SETSIZE silently. */
#define EV_SELECT_IS_WINSOCKET 0

#endif
