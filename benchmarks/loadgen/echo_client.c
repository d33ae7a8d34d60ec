/* echo_client: a closed-loop TCP echo load generator for benchmarks/workloads/tcp_echo.py.
 *
 *   echo_client HOST PORT CONNS MSGSIZE WARMUP_S DURATION_S
 *
 * Opens CONNS connections; each sends MSGSIZE bytes, waits until all MSGSIZE come back,
 * and sends again. One thread, one epoll set, level-triggered, so the client costs a few
 * microseconds per message and is not the bottleneck for a Python server. Messages echoed
 * during the first WARMUP_S seconds are not counted; then it counts for DURATION_S seconds
 * and prints {"ops": messages, "seconds": elapsed} on stdout. Exit status 1 on any error
 * (a connection refused, reset or closed by the server).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void send_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue; /* 1 KiB into an idle socket */
            die("send");
        }
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNS MSGSIZE WARMUP_S DURATION_S\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), conns = atoi(argv[3]);
    size_t msgsize = (size_t)atol(argv[4]);
    double warmup = atof(argv[5]), duration = atof(argv[6]);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    char *msg = malloc(msgsize), *buf = malloc(65536);
    size_t *got = calloc((size_t)conns, sizeof *got);
    int *fds = calloc((size_t)conns, sizeof *fds);
    memset(msg, 'x', msgsize);

    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        fds[i] = fd;
    }
    for (int i = 0; i < conns; i++) send_all(fds[i], msg, msgsize);

    struct epoll_event events[256];
    double start = now(), counting_from = start + warmup, stop = counting_from + duration;
    double t = start;
    long long counted = 0;
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
            counting_from = t;
            stop = t + duration;
        }
        for (int e = 0; e < n; e++) {
            int i = (int)events[e].data.u32;
            ssize_t r = recv(fds[i], buf, 65536, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                die("recv");
            }
            if (r == 0) {
                fprintf(stderr, "echo_client: connection %d closed by the server\n", i);
                return 1;
            }
            got[i] += (size_t)r;
            if (got[i] > msgsize) {
                fprintf(stderr, "echo_client: connection %d got more than it sent\n", i);
                return 1;
            }
            if (got[i] == msgsize) {
                got[i] = 0;
                if (counting) counted++;
                send_all(fds[i], msg, msgsize);
            }
        }
    }
    printf("{\"ops\": %lld, \"seconds\": %.6f}\n", counted, now() - counting_from);
    fflush(stdout);
    for (int i = 0; i < conns; i++) close(fds[i]);
    return 0;
}
