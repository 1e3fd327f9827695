/* mux-forward: the in-container end of `mux forward`.
 *
 * `mux-forward -m`   Every connection of a `mux forward` over one stream: mux
 *                    starts it once with `docker exec -i`, and speaks frames on
 *                    its stdin/stdout (below). Each connection is opened to a
 *                    port on the container's own loopback (127.0.0.1, then ::1:
 *                    dev servers often listen on one of them only).
 * `mux-forward -z PORT`  Only check that something listens (exit 0) or not (1).
 *
 * Frame: u32 connection id, u8 type, u32 payload length (big-endian), payload.
 *   OPEN  (mux -> here)  payload: u16 port. Connects; a failure is a CLOSE back.
 *   DATA  (both ways)    bytes of the connection.
 *   EOF   (both ways)    the sender's side is done sending (a half-close).
 *   CLOSE (both ways)    the connection is gone; payload: why, as text (may be empty).
 *   ACK   (both ways)    payload: u32 count of DATA bytes delivered to the socket.
 * Flow control: neither side has more than WINDOW bytes of a connection
 * unacknowledged, so a slow reader holds back only its own connection and no
 * buffer grows past WINDOW.
 *
 * Static (musl), no dependency on the image: it runs in busybox, distroless or
 * scratch images alike. Built by helper/build.sh into mux/session/forward_bin/.
 */
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

#define WINDOW (4 * 1024 * 1024)
#define CHUNK (256 * 1024)
#define HDR 9
#define MAXCONN 4096
enum { T_OPEN = 1, T_DATA = 2, T_EOF = 3, T_CLOSE = 4, T_ACK = 5 };

struct conn {
    uint32_t id;
    int fd;
    int port;
    int connecting;       /* 4: to 127.0.0.1, 6: to ::1, 0: connected */
    int v4_errno;
    char *out;            /* bytes from mux not yet written to the socket */
    size_t out_len;
    size_t unacked;       /* bytes sent to mux, not yet acknowledged */
    int host_eof, shut, read_eof;
};

static struct conn *conns[MAXCONN];
static int nconns;
static unsigned char frame[HDR + CHUNK];
static unsigned char inbuf[4 * (HDR + CHUNK)];
static size_t in_len;

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

/* Start a connect without waiting: a server whose backlog is full drops the SYN,
 * and a blocking connect would hold every other connection for the retry. */
static int start_connect(struct conn *c, int family) {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    int one = 1;

    c->fd = socket(family, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->connecting = family == AF_INET ? 4 : 6;
    if (family == AF_INET) {
        memset(&v4, 0, sizeof v4);
        v4.sin_family = AF_INET;
        v4.sin_port = htons((unsigned short)c->port);
        v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(c->fd, (struct sockaddr *)&v4, sizeof v4) == 0)
            c->connecting = 0;
    } else {
        memset(&v6, 0, sizeof v6);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons((unsigned short)c->port);
        v6.sin6_addr = in6addr_loopback;
        if (connect(c->fd, (struct sockaddr *)&v6, sizeof v6) == 0)
            c->connecting = 0;
    }
    if (c->connecting && errno != EINPROGRESS) {
        int err = errno;
        close(c->fd);
        c->fd = -1;
        errno = err;
        return -1;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A frame to mux; the payload, if any, is already at frame + HDR. mux gone: exit. */
static void send_frame(uint32_t id, int type, size_t len) {
    put32(frame, id);
    frame[4] = (unsigned char)type;
    put32(frame + 5, (uint32_t)len);
    if (write_all(1, frame, HDR + len) < 0)
        exit(0);
}

static void send_close(uint32_t id, const char *why) {
    size_t len = strlen(why);
    memcpy(frame + HDR, why, len);
    send_frame(id, T_CLOSE, len);
}

static struct conn *find(uint32_t id) {
    for (int i = 0; i < nconns; i++)
        if (conns[i]->id == id)
            return conns[i];
    return NULL;
}

static void drop(struct conn *c) {
    for (int i = 0; i < nconns; i++)
        if (conns[i] == c) {
            conns[i] = conns[--nconns];
            break;
        }
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    free(c);
}

/* Neither address took the connection. */
static void fail(struct conn *c) {
    char why[160];
    snprintf(why, sizeof why, "nothing listens on port %d in the container (%s)", c->port, strerror(c->v4_errno));
    send_close(c->id, why);
    drop(c);
}

/* A connect failed with err: from 127.0.0.1 go on to ::1, else give up. */
static void next_address(struct conn *c, int err) {
    if (c->connecting == 4) {
        c->v4_errno = err;
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        if (start_connect(c, AF_INET6) == 0)
            return;
    }
    fail(c);
}

static void open_conn(uint32_t id, int port) {
    struct conn *c;

    if (nconns == MAXCONN) {
        send_close(id, "too many connections through one mux forward");
        return;
    }
    c = calloc(1, sizeof *c);
    if (c)
        c->out = malloc(WINDOW);
    if (!c || !c->out) {
        if (c)
            free(c);
        send_close(id, "out of memory in the container");
        return;
    }
    c->id = id;
    c->port = port;
    c->fd = -1;
    conns[nconns++] = c;
    c->connecting = 4;
    if (start_connect(c, AF_INET) < 0)
        next_address(c, errno);
}

static void maybe_shut(struct conn *c) {
    if (c->host_eof && !c->out_len && !c->shut && !c->connecting) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
        if (c->read_eof)
            drop(c);
    }
}

/* One whole frame from mux. */
static void handle(uint32_t id, int type, const unsigned char *p, uint32_t len) {
    struct conn *c = type == T_OPEN ? NULL : find(id);
    if (type == T_OPEN) {
        if (len == 2)
            open_conn(id, p[0] << 8 | p[1]);
        return;
    }
    if (!c)
        return; /* already gone here: what mux sent meanwhile has nowhere to go */
    switch (type) {
    case T_DATA:
        if (c->host_eof || c->out_len + len > WINDOW) {
            fputs("mux-forward: protocol error: data past the window\n", stderr);
            exit(3);
        }
        memcpy(c->out + c->out_len, p, len);
        c->out_len += len;
        break;
    case T_EOF:
        c->host_eof = 1;
        break;
    case T_ACK:
        if (len == 4)
            c->unacked -= get32(p) <= c->unacked ? get32(p) : c->unacked;
        break;
    case T_CLOSE:
        drop(c);
        return;
    }
    maybe_shut(c);
}

static int read_stdin(void) {
    ssize_t n = read(0, inbuf + in_len, sizeof inbuf - in_len);
    size_t at = 0;
    if (n <= 0)
        return n < 0 && errno == EINTR ? 0 : -1;
    in_len += (size_t)n;
    while (in_len - at >= HDR) {
        uint32_t len = get32(inbuf + at + 5);
        if (len > CHUNK) {
            fputs("mux-forward: protocol error: frame too long\n", stderr);
            exit(3);
        }
        if (in_len - at < HDR + len)
            break;
        handle(get32(inbuf + at), inbuf[at + 4], inbuf + at + HDR, len);
        at += HDR + len;
    }
    memmove(inbuf, inbuf + at, in_len - at);
    in_len -= at;
    return 0;
}

/* The socket is readable: its bytes go to mux, within the window, as few
 * frames as the socket allows (every frame is work for docker on both ends). */
static void from_socket(struct conn *c) {
    size_t room = WINDOW - c->unacked, cap = room < CHUNK ? room : CHUNK, got = 0;
    ssize_t n = 0;
    while (got < cap) {
        n = read(c->fd, frame + HDR + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got) {
        c->unacked += got;
        send_frame(c->id, T_DATA, got);
    }
    if (n == 0 && got < cap) {
        c->read_eof = 1;
        send_frame(c->id, T_EOF, 0);
        if (c->shut)
            drop(c);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        send_close(c->id, "");
        drop(c);
    }
}

/* The socket is writable: bytes from mux go out, and mux learns they did. */
static void to_socket(struct conn *c) {
    ssize_t n = write(c->fd, c->out, c->out_len);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            send_close(c->id, "");
            drop(c);
        }
        return;
    }
    memmove(c->out, c->out + n, c->out_len - (size_t)n);
    c->out_len -= (size_t)n;
    put32(frame + HDR, (uint32_t)n);
    send_frame(c->id, T_ACK, 4);
    maybe_shut(c);
}

/* A connect in progress finished, one way or the other. */
static void connected(struct conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        next_address(c, err);
        return;
    }
    c->connecting = 0;
    maybe_shut(c);
}

static int tunnel(void) {
    static struct pollfd fds[MAXCONN + 1];
    static uint32_t ids[MAXCONN + 1];
    for (;;) {
        int n = 1;
        fds[0].fd = 0;
        fds[0].events = POLLIN;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = conns[i];
            short ev = 0;
            if (c->connecting)
                ev = POLLOUT;
            else if (!c->read_eof && c->unacked < WINDOW)
                ev |= POLLIN;
            if (c->out_len)
                ev |= POLLOUT;
            if (!ev)
                continue;
            fds[n].fd = c->fd;
            fds[n].events = ev;
            ids[n++] = c->id;
        }
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        /* Sockets first (by id: a frame from mux may drop a connection meanwhile). */
        for (int i = 1; i < n; i++) {
            struct conn *c = find(ids[i]);
            if (c && c->connecting) {
                if (fds[i].revents)
                    connected(c);
                continue;
            }
            if (c && fds[i].revents & (POLLOUT | POLLERR) && c->out_len)
                to_socket(c);
            c = find(ids[i]);
            if (c && fds[i].revents & (POLLIN | POLLHUP | POLLERR) && !c->read_eof)
                from_socket(c);
        }
        if (fds[0].revents && read_stdin() < 0)
            return 0; /* mux is gone: so are its connections */
    }
}

int main(int argc, char **argv) {
    char *end;
    long port;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "-m") == 0)
        return tunnel();
    if (argc != 3 || strcmp(argv[1], "-z") != 0 || !argv[2][0]) {
        fputs("usage: mux-forward -m | -z PORT\n", stderr);
        return 2;
    }
    port = strtol(argv[2], &end, 10);
    if (*end || port < 1 || port > 65535) {
        fprintf(stderr, "mux-forward: invalid port %s\n", argv[2]);
        return 2;
    }
    fd = dial((int)port);
    if (fd < 0) {
        fprintf(stderr, "mux-forward: nothing listens on port %ld in the container (%s)\n", port, strerror(errno));
        return 1;
    }
    return 0;
}
