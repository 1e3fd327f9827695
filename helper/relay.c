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
 * One process, one poll loop, a fixed table of connections: a flood of
 * connections from one session costs a bounded amount of memory and no process
 * (a fork per connection got OOM-killed by the hundred in a 64 MiB container).
 * At most MAX_CONNS at once, and at most PER_CLIENT from one address: past
 * either, a new connection is accepted and closed at once, so the others go on.
 *
 * With MUX_RELAY_KEY set (32 hex digits, from mux's env-file), each connection
 * to the proxy starts with one line naming the session it comes from:
 *   MUX-RELAY <key> <client IPv4> <client port>\r\n
 * so the proxy's per-address limits apply per session, not to the relay's one
 * address (mux/proxy/front.py; only a line with the key is believed there).
 *
 * Static (musl), no dependency on the image it runs in. Built by
 * helper/build.sh (NAME relay) into mux/egress/relay_bin/.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 16384
#define MAX_CONNS 1024
#define PER_CLIENT 256

/* One relayed connection: side 0 is the session (client), side 1 the proxy.
 * buf[d] holds bytes read from side d, not yet written to side !d. */
struct conn {
    int fd[2];
    int connecting;      /* the proxy side's non-blocking connect is under way */
    int eof[2];          /* side d said it will send no more */
    int shut[2];         /* side d was told (SHUT_WR) that no more comes */
    size_t len[2], off[2];
    uint32_t client;     /* the session's address, for PER_CLIENT */
    char buf[2][BUF];
};

static char key[33]; /* "" when none: no line is sent */
static struct conn *conns[MAX_CONNS];
static int nconns;
static struct pollfd fds[1 + 2 * MAX_CONNS];

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static int from_client(uint32_t addr) {
    int n = 0;
    for (int i = 0; i < nconns; i++)
        n += conns[i]->client == addr;
    return n;
}

static void drop(int i) {
    close(conns[i]->fd[0]);
    close(conns[i]->fd[1]);
    free(conns[i]);
    conns[i] = conns[--nconns];
}

/* Accept one connection (1), or none was waiting (0). */
static int accept_one(int server, const struct sockaddr_in *target) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int one = 1;
    int client = accept4(server, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS)
            usleep(10000); /* load, not a reason to stop: the loop tries again */
        return 0;
    }
    if (nconns >= MAX_CONNS || from_client(peer.sin_addr.s_addr) >= PER_CLIENT) {
        close(client);
        return 1;
    }
    int up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct conn *c = up < 0 ? NULL : calloc(1, sizeof *c);
    if (c == NULL) {
        if (up >= 0)
            close(up);
        close(client);
        return 1;
    }
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd[0] = client;
    c->fd[1] = up;
    c->client = peer.sin_addr.s_addr;
    if (key[0]) { /* the first bytes the proxy gets, before any of the session's */
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        int n = snprintf(c->buf[0], BUF, "MUX-RELAY %s %s %u\r\n", key, ip, (unsigned)ntohs(peer.sin_port));
        c->len[0] = n > 0 ? (size_t)n : 0;
    }
    if (connect(up, (const struct sockaddr *)target, sizeof *target) < 0) {
        if (errno != EINPROGRESS) {
            close(up);
            close(client);
            free(c);
            return 1;
        }
        c->connecting = 1;
    }
    conns[nconns++] = c;
    return 1;
}

/* Move what can move on connection c; 0 when it is finished or broken. */
static int service(struct conn *c, const short revents[2]) {
    if (c->connecting) {
        if (!(revents[1] & (POLLOUT | POLLERR | POLLHUP)))
            return 1;
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0)
            return 0; /* the proxy is not there: the session sees its connection closed */
        c->connecting = 0;
    }
    for (int d = 0; d < 2; d++)
        if ((revents[d] & POLLERR) || ((revents[d] & POLLHUP) && c->eof[d]))
            return 0; /* that side is gone both ways: nothing more can reach it */
    for (int d = 0; d < 2; d++) {
        int from = c->fd[d], to = c->fd[!d];
        if (c->len[d] == 0 && !c->eof[d] && (revents[d] & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(from, c->buf[d], BUF);
            if (n > 0) {
                c->len[d] = (size_t)n;
                c->off[d] = 0;
            } else if (n == 0) {
                c->eof[d] = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                return 0;
            }
        }
        if (c->len[d] > 0) {
            ssize_t w = send(to, c->buf[d] + c->off[d], c->len[d], MSG_NOSIGNAL);
            if (w > 0) {
                c->off[d] += (size_t)w;
                c->len[d] -= (size_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                return 0;
            }
        }
        if (c->eof[d] && c->len[d] == 0 && !c->shut[d]) {
            shutdown(to, SHUT_WR); /* half-closes pass on */
            c->shut[d] = 1;
        }
    }
    return !(c->shut[0] && c->shut[1]);
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
    const char *given = getenv("MUX_RELAY_KEY");
    if (given != NULL && strlen(given) == 32 && strspn(given, "0123456789abcdef") == 32)
        memcpy(key, given, 33);
    else if (given != NULL && given[0])
        fprintf(stderr, "mux-relay: MUX_RELAY_KEY is not 32 hex digits: sending no client line\n");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, stop); /* as PID 1, nothing else would end it */
    signal(SIGINT, stop);
    server = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (server < 0 || setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(server, (struct sockaddr *)&listen_at, sizeof listen_at) < 0 || listen(server, 512) < 0) {
        fprintf(stderr, "mux-relay: cannot listen on port %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fprintf(stderr, "mux-relay: port %s -> %s:%s (at most %d connections, %d from one address%s)\n", argv[1],
            argv[2], argv[3], MAX_CONNS, PER_CLIENT, key[0] ? "; names each client" : "");
    for (;;) {
        fds[0].fd = server;
        fds[0].events = POLLIN;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = conns[i];
            for (int d = 0; d < 2; d++) {
                struct pollfd *p = &fds[1 + 2 * i + d];
                p->fd = c->fd[d];
                p->events = 0;
                if (c->connecting) {
                    if (d == 1)
                        p->events = POLLOUT;
                    continue;
                }
                if (c->len[d] == 0 && !c->eof[d])
                    p->events |= POLLIN;
                if (c->len[!d] > 0)
                    p->events |= POLLOUT;
            }
        }
        int polled = nconns;
        if (poll(fds, (nfds_t)(1 + 2 * polled), -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "mux-relay: poll: %s\n", strerror(errno));
            sleep(1);
            continue;
        }
        /* From the last: drop() moves the table's last entry into the hole. */
        for (int i = polled - 1; i >= 0; i--) {
            short revents[2] = {fds[1 + 2 * i].revents, fds[2 + 2 * i].revents};
            if ((revents[0] | revents[1]) && !service(conns[i], revents))
                drop(i);
        }
        if (fds[0].revents & POLLIN)
            for (int k = 0; k < 64 && accept_one(server, &target); k++) /* a burst, not one a loop */
                ;
    }
}
