/* evloop_module.c — the evloop._cext module: its module-level functions and the bootstrap
 * that readies every room's types and registers the module in sys.modules.
 *
 * Why it exists: evloop.core reaches the C glue through one cffi function,
 * evloop_bootstrap(); every other entry point is a method of the module built here.
 *
 * What it must not do: hold logic of another room. Each room adds its own types and
 * functions and registers its hooks through its evloop_<room>_init(m); this room only
 * calls them in layer order.
 */
#include "evloop_internal.h"

static PyObject *
mod_get_version(PyObject *m, PyObject *unused)
{
    return PyUnicode_FromFormat("libev-%d.%02d", ev_version_major(), ev_version_minor());
}

static PyObject *
mod_get_header_version(PyObject *m, PyObject *unused)
{
    return PyUnicode_FromFormat("libev-%d.%02d", EV_VERSION_MAJOR, EV_VERSION_MINOR);
}

static PyObject *
mod_supported_backends(PyObject *m, PyObject *unused)
{
    return evloop_backend_names(ev_supported_backends());
}

static PyObject *
mod_recommended_backends(PyObject *m, PyObject *unused)
{
    return evloop_backend_names(ev_recommended_backends());
}

static PyObject *
mod_embeddable_backends(PyObject *m, PyObject *unused)
{
    return evloop_backend_names(ev_embeddable_backends());
}

static PyObject *
mod_time(PyObject *m, PyObject *unused)
{
    return PyFloat_FromDouble(ev_time());
}

static PyMethodDef module_methods[] = {
    {"get_version", mod_get_version, METH_NOARGS, "libev's version, as linked"},
    {"get_header_version", mod_get_header_version, METH_NOARGS,
     "libev's version, as compiled against"},
    {"supported_backends", mod_supported_backends, METH_NOARGS, NULL},
    {"recommended_backends", mod_recommended_backends, METH_NOARGS, NULL},
    {"embeddable_backends", mod_embeddable_backends, METH_NOARGS, NULL},
    {"time", mod_time, METH_NOARGS, "libev's ev_time(): wall-clock time"},
    {NULL}
};

static struct PyModuleDef evloop_moduledef = {
    PyModuleDef_HEAD_INIT, "evloop._cext",
    "evloop's C types; import them from evloop.core", -1, module_methods,
};

/* Called once by evloop.core through the cffi module: builds evloop._cext and registers it
 * in sys.modules. Returns 0, or -1 with a Python exception printed by cffi's caller. */
int
evloop_bootstrap(void)
{
    PyObject *m, *modules;
    static int done = 0;
    if (done)
        return 0;
    m = PyModule_Create(&evloop_moduledef);
    if (m == NULL)
        return -1;
    /* each room adds its types and functions (and registers its hooks), lowest first */
    if (evloop_errors_init(m) < 0
        || evloop_signals_init(m) < 0
        || evloop_watcher_init(m) < 0
        || evloop_watchers_init(m) < 0
        || evloop_callbacks_init(m) < 0
        || evloop_loop_init(m) < 0
        || evloop_hub_init(m) < 0
        || evloop_io_init(m) < 0
        || evloop_aio_init(m) < 0
        || evloop_transport_init(m) < 0)
        goto fail;
#define ADDINT(name, value)                                                              \
    if (PyModule_AddIntConstant(m, name, value) < 0)                                     \
        goto fail;
    ADDINT("UNDEF", EV_UNDEF);
    ADDINT("NONE", EV_NONE);
    ADDINT("READ", EV_READ);
    ADDINT("WRITE", EV_WRITE);
    ADDINT("TIMER", EV_TIMER);
    ADDINT("PERIODIC", EV_PERIODIC);
    ADDINT("SIGNAL", EV_SIGNAL);
    ADDINT("CHILD", EV_CHILD);
    ADDINT("STAT", EV_STAT);
    ADDINT("IDLE", EV_IDLE);
    ADDINT("PREPARE", EV_PREPARE);
    ADDINT("CHECK", EV_CHECK);
    ADDINT("EMBED", EV_EMBED);
    ADDINT("FORK", EV_FORK);
    ADDINT("CLEANUP", EV_CLEANUP);
    ADDINT("ASYNC", EV_ASYNC);
    ADDINT("CUSTOM", EV_CUSTOM);
    ADDINT("ERROR", EV_ERROR);
    ADDINT("MINPRI", EV_MINPRI);
    ADDINT("MAXPRI", EV_MAXPRI);
    ADDINT("EVBREAK_CANCEL", EVBREAK_CANCEL);
    ADDINT("EVBREAK_ONE", EVBREAK_ONE);
    ADDINT("EVBREAK_ALL", EVBREAK_ALL);
    ADDINT("EVFLAG_AUTO", EVFLAG_AUTO);
    ADDINT("EVFLAG_NOENV", EVFLAG_NOENV);
    ADDINT("EVFLAG_FORKCHECK", EVFLAG_FORKCHECK);
    ADDINT("EVFLAG_NOINOTIFY", EVFLAG_NOINOTIFY);
    ADDINT("EVFLAG_SIGNALFD", EVFLAG_SIGNALFD);
    ADDINT("EVFLAG_NOSIGMASK", EVFLAG_NOSIGMASK);
    ADDINT("EVBACKEND_SELECT", EVBACKEND_SELECT);
    ADDINT("EVBACKEND_POLL", EVBACKEND_POLL);
    ADDINT("EVBACKEND_EPOLL", EVBACKEND_EPOLL);
    ADDINT("EVBACKEND_KQUEUE", EVBACKEND_KQUEUE);
    ADDINT("EVBACKEND_PORT", EVBACKEND_PORT);
#undef ADDINT

    modules = PyImport_GetModuleDict(); /* borrowed */
    if (PyDict_SetItemString(modules, "evloop._cext", m) < 0)
        goto fail;
    Py_DECREF(m);
    evloop_install_arena_cache();
    done = 1;
    return 0;
fail:
    Py_DECREF(m);
    return -1;
}

