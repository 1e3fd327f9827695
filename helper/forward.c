/* mux-forward: the in-container end of `mux forward`.
 *
 * `docker exec -i CONTAINER /.mux-forward-HASH PORT` runs this once per
 * forwarded connection. It connects to PORT on the container's own loopback
 * (127.0.0.1, then ::1: dev servers often listen on one of them only) and
 * copies stdin to the socket and the socket to stdout until both ends are done.
 * `-z PORT` only checks that something listens (exit 0) or not (exit 1).
 *
 * Static (musl), no dependency on the image: it runs in busybox, distroless or
 * scratch images alike. Built by helper/build.sh; the binaries are in
 * mux/forward_bin/.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

static int dial(int port) {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    int fd, one = 1, v4_errno;

    memset(&v4, 0, sizeof v4);
    v4.sin_family = AF_INET;
    v4.sin_port = htons((unsigned short)port);
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&v4, sizeof v4) == 0)
        goto ok;
    v4_errno = errno; /* the one to report: many containers have no IPv6 at all */
    if (fd >= 0)
        close(fd);
    memset(&v6, 0, sizeof v6);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((unsigned short)port);
    v6.sin6_addr = in6addr_loopback;
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&v6, sizeof v6) == 0)
        goto ok;
    if (fd >= 0)
        close(fd);
    errno = v4_errno;
    return -1;
ok:
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const char *p, ssize_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, (size_t)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= w;
    }
    return 0;
}

int main(int argc, char **argv) {
    static char buf[BUF];
    int probe = argc == 3 && strcmp(argv[1], "-z") == 0;
    const char *arg = probe ? argv[2] : argv[1];
    char *end;
    long port;
    int sock, in_open = 1;

    if (argc != 2 + probe || !arg[0]) {
        fputs("usage: mux-forward [-z] PORT\n", stderr);
        return 2;
    }
    port = strtol(arg, &end, 10);
    if (*end || port < 1 || port > 65535) {
        fprintf(stderr, "mux-forward: invalid port %s\n", arg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sock = dial((int)port);
    if (sock < 0) {
        fprintf(stderr, "mux-forward: nothing listens on port %ld in the container "
                        "(%s)\n", port, strerror(errno));
        return 1;
    }
    if (probe)
        return 0;
    for (;;) {
        struct pollfd p[2] = {{sock, POLLIN, 0}, {0, POLLIN, 0}};
        ssize_t n;
        if (poll(p, in_open ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (p[0].revents) {
            n = read(sock, buf, BUF);
            if (n <= 0)
                return 0; /* the service is done: so is this connection */
            if (write_all(1, buf, n) < 0)
                return 0; /* the client went away */
        }
        if (in_open && p[1].revents) {
            n = read(0, buf, BUF);
            if (n <= 0) {
                in_open = 0; /* the client finished sending: pass the half-close on */
                shutdown(sock, SHUT_WR);
            } else if (write_all(sock, buf, n) < 0) {
                return 0;
            }
        }
    }
}
