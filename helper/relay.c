/* mux-relay: the only way out of a proxy-only session's network.
 *
 *   mux-relay LISTEN_PORT TARGET_IPV4 TARGET_PORT
 *
 * Runs as the sole process of mux's egress relay container, which sits on two
 * networks: mux's proxy-only network (`--internal`, no address of the host on
 * it, so sessions there have no route anywhere) and the default bridge, from
 * which the host's proxy is reachable at the bridge gateway. It accepts TCP
 * connections on LISTEN_PORT and copies each, both ways, to TARGET_IPV4:
 * TARGET_PORT (the proxy) and nowhere else: whatever a session sends, it can
 * only ever talk to the proxy, which authenticates it and applies mux's policy.
 *
 * Static (musl), no dependency on the image it runs in. Built by
 * helper/build.sh (NAME relay) into mux/proxy/relay_bin/.
 */
#include <arpa/inet.h>
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

/* Copy a <-> b until both directions are done, passing half-closes on. */
static void pump(int a, int b) {
    static char buf[BUF];
    struct pollfd fds[2];
    int open_a = 1, open_b = 1;

    while (open_a || open_b) {
        fds[0].fd = open_a ? a : -1;
        fds[0].events = POLLIN;
        fds[1].fd = open_b ? b : -1;
        fds[1].events = POLLIN;
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (int i = 0; i < 2; i++) {
            int from = i == 0 ? a : b, to = i == 0 ? b : a;
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(from, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                shutdown(to, SHUT_WR);
                if (i == 0)
                    open_a = 0;
                else
                    open_b = 0;
                if (n < 0)
                    return;
                continue;
            }
            if (write_all(to, buf, n) < 0)
                return;
        }
    }
}

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    struct sockaddr_in listen_at, target;
    int one = 1, server;

    if (argc != 4) {
        fprintf(stderr, "usage: mux-relay LISTEN_PORT TARGET_IPV4 TARGET_PORT\n");
        return 2;
    }
    memset(&listen_at, 0, sizeof listen_at);
    listen_at.sin_family = AF_INET;
    listen_at.sin_port = htons((unsigned short)atoi(argv[1]));
    listen_at.sin_addr.s_addr = htonl(INADDR_ANY);
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((unsigned short)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) {
        fprintf(stderr, "mux-relay: %s is not an IPv4 address\n", argv[2]);
        return 2;
    }
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, stop);  /* as PID 1, nothing else would end it */
    signal(SIGINT, stop);
    server = socket(AF_INET, SOCK_STREAM, 0);
    if (server < 0 || setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(server, (struct sockaddr *)&listen_at, sizeof listen_at) < 0 || listen(server, 128) < 0) {
        fprintf(stderr, "mux-relay: cannot listen on port %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fprintf(stderr, "mux-relay: port %s -> %s:%s\n", argv[1], argv[2], argv[3]);
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "mux-relay: accept: %s\n", strerror(errno));
            sleep(1);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            int up = socket(AF_INET, SOCK_STREAM, 0);
            close(server);
            if (up < 0 || connect(up, (struct sockaddr *)&target, sizeof target) < 0) {
                fprintf(stderr, "mux-relay: cannot reach the proxy at %s:%s: %s\n", argv[2], argv[3],
                        strerror(errno));
                _exit(1);
            }
            setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            pump(client, up);
            _exit(0);
        }
        close(client);
    }
}
