/* echo_client: a closed-loop TCP echo load generator for benchmarks/workloads/tcp_echo.py
 * and benchmarks/scale.py.
 *
 *   echo_client HOST PORT CONNS MSGSIZE WARMUP_S DURATION_S [mark]
 *
 * Opens CONNS connections; each sends MSGSIZE bytes, waits until all MSGSIZE come back,
 * and sends again. One thread, one epoll set, level-triggered, non-blocking sockets (a
 * message bigger than the socket buffers is written as the server drains it, while the
 * echo is read), so the client costs a few microseconds per message and is not the
 * bottleneck for a Python server. Messages echoed during the first WARMUP_S seconds are
 * not counted; then it counts for DURATION_S seconds and prints one JSON line on stdout:
 *
 *   {"ops": round trips, "seconds": elapsed, "bytes": bytes echoed (received),
 *    "p50_us": ..., "p99_us": ..., "max_us": ...}
 *
 * Latency is a round trip's time from the start of its send to the end of its echo, each
 * end stamped with the time epoll_wait returned for that batch of events (one clock read
 * per batch, not per message: cheap, and exact to within one batch's processing), in a
 * histogram of 1/16-octave buckets (6% resolution). It raises its RLIMIT_NOFILE soft limit
 * to the hard one (10,000 connections need 10,000 fds). With the optional argument "mark"
 * it writes the line "counting" to stderr (flushed) when the counted part begins, so that
 * a harness can sample the server's CPU time over exactly that part (scale.py); the
 * counted part ends when the JSON line is printed. Exit status 1 on any error (a
 * connection refused, reset or closed by the server), 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SUB 16                       /* buckets per octave */
#define OCTAVES 40                   /* 1 ns .. 2^40 ns (18 min) */
static unsigned long long hist[SUB * OCTAVES];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void record(double seconds) {
    double ns = seconds * 1e9;
    int b = ns < 1 ? 0 : (int)(log2(ns) * SUB);
    if (b >= SUB * OCTAVES) b = SUB * OCTAVES - 1;
    hist[b]++;
}

/* the upper edge, in microseconds, of the bucket holding the q-quantile */
static double quantile(unsigned long long total, double q) {
    if (!total) return 0;
    unsigned long long rank = (unsigned long long)ceil(q * (double)total), seen = 0;
    if (rank < 1) rank = 1;
    for (int b = 0; b < SUB * OCTAVES; b++) {
        seen += hist[b];
        if (seen >= rank) return exp2((b + 1) / (double)SUB) / 1e3;
    }
    return 0;
}

struct conn {
    int fd;
    size_t sent, got;                /* of the current message */
    double started;                  /* when its first byte was sent */
    int want_out;                    /* EPOLLOUT registered */
};

static void set_events(int ep, struct conn *c, unsigned idx, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = idx};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl(MOD)");
    c->want_out = want_out;
}

/* send what the socket takes of the rest of the message; EPOLLOUT while some is left */
static void pump(int ep, struct conn *c, unsigned idx, const char *msg, size_t msgsize) {
    while (c->sent < msgsize) {
        ssize_t n = send(c->fd, msg + c->sent, msgsize - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            die("send");
        }
        c->sent += (size_t)n;
    }
    set_events(ep, c, idx, c->sent < msgsize);
}

int main(int argc, char **argv) {
    if (argc != 7 && !(argc == 8 && strcmp(argv[7], "mark") == 0)) {
        fprintf(stderr, "usage: %s HOST PORT CONNS MSGSIZE WARMUP_S DURATION_S [mark]\n",
                argv[0]);
        return 2;
    }
    int mark = argc == 8;
    const char *host = argv[1];
    int port = atoi(argv[2]), conns = atoi(argv[3]);
    long msgsize_arg = atol(argv[4]);
    double warmup = atof(argv[5]), duration = atof(argv[6]);
    if (port <= 0 || port > 65535 || conns <= 0 || msgsize_arg <= 0 || warmup < 0 ||
        duration <= 0) {
        fprintf(stderr, "echo_client: bad arguments\n");
        return 2;
    }
    size_t msgsize = (size_t)msgsize_arg;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    size_t bufsize = 1 << 18;
    char *msg = malloc(msgsize), *buf = malloc(bufsize);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    if (!msg || !buf || !cs) die("malloc");
    memset(msg, 'x', msgsize);

    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0) die("socket");
        /* blocking connect: the server's accept queue paces it */
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        cs[i].fd = fd;
    }
    double start = now();
    for (int i = 0; i < conns; i++) {
        cs[i].started = start;
        pump(ep, &cs[i], (unsigned)i, msg, msgsize);
    }

    struct epoll_event events[256];
    double counting_from = start + warmup, stop = counting_from + duration;
    double t = start;
    long long counted = 0;
    unsigned long long bytes = 0, latencies = 0;
    double max_latency = 0;
    int counting = 0;
    while (t < stop) {
        int n = epoll_wait(ep, events, 256, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        t = now();
        if (!counting && t >= counting_from) {
            counting = 1;
            if (mark) {
                fputs("counting\n", stderr);
                fflush(stderr);
                t = now();  /* the harness's sample is taken from here */
            }
            counting_from = t;
            stop = t + duration;
        }
        for (int e = 0; e < n; e++) {
            unsigned i = events[e].data.u32;
            struct conn *c = &cs[i];
            if (events[e].events & EPOLLOUT) pump(ep, c, i, msg, msgsize);
            if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t r = recv(c->fd, buf, bufsize, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                die("recv");
            }
            if (r == 0) {
                fprintf(stderr, "echo_client: connection %u closed by the server\n", i);
                return 1;
            }
            c->got += (size_t)r;
            if (counting) bytes += (unsigned long long)r;
            if (c->got > c->sent) {
                fprintf(stderr, "echo_client: connection %u got more than it sent\n", i);
                return 1;
            }
            if (c->got == msgsize) {
                if (counting) {
                    double latency = t - c->started;
                    counted++;
                    latencies++;
                    record(latency);
                    if (latency > max_latency) max_latency = latency;
                }
                c->got = c->sent = 0;
                c->started = t;
                pump(ep, c, i, msg, msgsize);
            }
        }
    }
    printf("{\"ops\": %lld, \"seconds\": %.6f, \"bytes\": %llu, \"p50_us\": %.1f, "
           "\"p99_us\": %.1f, \"max_us\": %.1f}\n",
           counted, now() - counting_from, bytes, quantile(latencies, 0.50),
           quantile(latencies, 0.99), max_latency * 1e6);
    fflush(stdout);
    for (int i = 0; i < conns; i++) close(cs[i].fd);
    return 0;
}
