/* evloop_arena.c — small CPython arena blocks from malloc.
 *
 * Why it exists: CPython 3.11+ gives each greenlet its own 16 KiB frame data-stack chunk
 * from the arena allocator, which is mmap/munmap: two system calls and page faults per
 * greenlet. Blocks up to 64 KiB come from malloc instead (docs/architecture.md).
 *
 * What it must not do: free a block it did not allocate (blocks from before evloop was
 * imported go back to the previous allocator), or touch Python objects.
 */
#include "evloop_internal.h"

/* --- small arena blocks from malloc --------------------------------------------------------
 *
 * CPython 3.11+ gives each greenlet its own 16 KiB frame data-stack chunk from the arena
 * allocator, which is mmap/munmap: two system calls and page faults per greenlet (strace:
 * 5114 mmap for 5000 greenlets; ~8 us of a ~9 us spawn-to-finish, ~5 us per greenlet that
 * suspends while others are alive). Blocks up to 64 KiB are served by malloc instead, which
 * recycles them without system calls; obmalloc's 1 MiB arenas still use the previous
 * allocator and go back to the OS. A pointer set records which blocks came from malloc, so
 * blocks allocated before evloop was imported are still freed by the previous allocator.
 * Arena functions are always called with the GIL held. EVLOOP_ARENA_CACHE=0 turns it off.
 */
#define EVLOOP_SMALL_BLOCK (64 * 1024)
#define EVLOOP_TOMBSTONE ((void *)1)
static PyObjectArenaAllocator evloop_arena_prev;
static void **evloop_blocks = NULL;
static size_t evloop_blocks_cap = 0, evloop_blocks_live = 0, evloop_blocks_used = 0;

static size_t
evloop_block_hash(void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static int
evloop_blocks_grow(void)
{
    size_t cap = evloop_blocks_cap ? evloop_blocks_cap : 1024;
    void **old = evloop_blocks, **table;
    size_t oldcap = evloop_blocks_cap;
    while (evloop_blocks_live * 4 >= cap)
        cap *= 2;
    table = (void **)calloc(cap, sizeof(void *));
    if (table == NULL)
        return -1;
    for (size_t i = 0; i < oldcap; i++) {
        void *p = old[i];
        if (p != NULL && p != EVLOOP_TOMBSTONE) {
            size_t j = evloop_block_hash(p) & (cap - 1);
            while (table[j] != NULL)
                j = (j + 1) & (cap - 1);
            table[j] = p;
        }
    }
    free(old);
    evloop_blocks = table;
    evloop_blocks_cap = cap;
    evloop_blocks_used = evloop_blocks_live;
    return 0;
}

static void *
evloop_arena_alloc(void *ctx, size_t size)
{
    void *p;
    size_t j;
    if (size > EVLOOP_SMALL_BLOCK)
        return evloop_arena_prev.alloc(evloop_arena_prev.ctx, size);
    if ((evloop_blocks_used + 1) * 2 > evloop_blocks_cap && evloop_blocks_grow() < 0)
        return evloop_arena_prev.alloc(evloop_arena_prev.ctx, size);
    p = malloc(size);
    if (p == NULL)
        return evloop_arena_prev.alloc(evloop_arena_prev.ctx, size);
    j = evloop_block_hash(p) & (evloop_blocks_cap - 1);
    while (evloop_blocks[j] != NULL && evloop_blocks[j] != EVLOOP_TOMBSTONE)
        j = (j + 1) & (evloop_blocks_cap - 1);
    if (evloop_blocks[j] == NULL)
        evloop_blocks_used++;
    evloop_blocks[j] = p;
    evloop_blocks_live++;
    return p;
}

static void
evloop_arena_free(void *ctx, void *ptr, size_t size)
{
    if (ptr != NULL && size <= EVLOOP_SMALL_BLOCK && evloop_blocks_cap) {
        size_t j = evloop_block_hash(ptr) & (evloop_blocks_cap - 1);
        while (evloop_blocks[j] != NULL) {
            if (evloop_blocks[j] == ptr) {
                evloop_blocks[j] = EVLOOP_TOMBSTONE;
                evloop_blocks_live--;
                free(ptr);
                return;
            }
            j = (j + 1) & (evloop_blocks_cap - 1);
        }
    }
    evloop_arena_prev.free(evloop_arena_prev.ctx, ptr, size);
}

static void
evloop_install_arena_cache(void)
{
    static PyObjectArenaAllocator mine = {NULL, evloop_arena_alloc, evloop_arena_free};
    const char *env = getenv("EVLOOP_ARENA_CACHE");
    if (env != NULL && strcmp(env, "0") == 0)
        return;
    PyObject_GetArenaAllocator(&evloop_arena_prev);
    if (evloop_arena_prev.alloc == evloop_arena_alloc)
        return;
    PyObject_SetArenaAllocator(&mine);
}
