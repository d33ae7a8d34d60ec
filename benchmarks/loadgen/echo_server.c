/* echo_server: the floor for the TCP echo benchmarks, a C epoll echo server (one thread,
 * level-triggered): what the kernel's loopback TCP and the load generator allow, with no
 * Python at all. benchmarks/scale.py runs it as the server "c-epoll"; by hand:
 *
 *   cc -O2 -o .build/echo_server loadgen/echo_server.c && .build/echo_server &
 *   .build/echo_client 127.0.0.1 PORT 32 1024 0.3 2
 *
 * It prints its port (127.0.0.1, an ephemeral one) on stdout, then echoes until killed:
 * recv up to 64 KiB, send it back with a blocking send (the client is non-blocking and
 * keeps reading, so the send completes). Listen backlog 4096 and RLIMIT_NOFILE raised to
 * its hard limit, for 10,000 connections. Not a general server: no error recovery beyond
 * closing the connection that failed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(l, (void *)&a, sizeof a) < 0 || listen(l, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t sl = sizeof a;
    getsockname(l, (void *)&a, &sl);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c = accept(l, 0, 0);
                if (c < 0) continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                ev.data.fd = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0 || send(fd, buf, (size_t)r, MSG_NOSIGNAL) != r) close(fd);
        }
    }
}
