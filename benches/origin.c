/* The local origin for `scripts/bench.sh`: three listeners on 127.0.0.1 (and one AF_UNIX path),
 * fast enough that the client, the interposer and the gateway are what gets measured.
 *
 *   origin UNIX_PATH
 *
 * prints one line, "sink=PORT echo=PORT hold=PORT http=PORT", once every listener is up, then
 * serves until killed:
 *
 *   sink (TCP) and UNIX_PATH: accept, close. For pass-through connect(): the client connects
 *       and resets; nothing is read or written.
 *   http: minimal HTTP/1.x on one epoll thread. "GET /bytes/N" streams N bytes (on a thread of
 *       its own, so a 1 GiB transfer does not hold up other clients); any other request gets a
 *       3-byte body. Every response closes the connection.
 *   echo: a thread per connection sends back whatever it reads (TCP_NODELAY), until EOF. For
 *       the round-trip time of an established connection through a gateway.
 *   hold: a gateway that hangs: accepts, reads and discards, never answers, closes when the
 *       peer does. For handshakes kept in flight. (A listener that never accepts would do for
 *       one run, but its queue keeps every connection, closed or not, until the backlog is full
 *       and later rounds would see their SYNs dropped instead.)
 *
 * It never connects anywhere and never resolves a name. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 65536
#define REQ_MAX 2048

static char *req_buf[MAX_FDS];
static int req_len[MAX_FDS];

static int listen_tcp(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    if (bind(fd, (struct sockaddr *)&sin, len) != 0 || listen(fd, 4096) != 0) {
        perror("origin: tcp listener");
        exit(1);
    }
    getsockname(fd, (struct sockaddr *)&sin, &len);
    *port = ntohs(sin.sin_port);
    return fd;
}

static int listen_unix(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(fd, 4096) != 0) {
        perror("origin: unix listener");
        exit(1);
    }
    return fd;
}

/* accept + close, forever: the pass-through connect target. */
static void *sink(void *arg) {
    int listener = (int)(long)arg;
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c >= 0) close(c);
    }
    return NULL;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Closes after the peer has seen everything: FIN first, then wait for the peer's close, so that
 * no RST can overtake data still in flight. */
static void finish(int fd) {
    char drain[4096];
    shutdown(fd, SHUT_WR);
    while (read(fd, drain, sizeof drain) > 0) {
    }
    close(fd);
}

/* One echo connection: whatever arrives goes back, until the peer closes. */
static void *echo_conn(void *arg) {
    int fd = (int)(long)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[65536];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        if (write_all(fd, buf, (size_t)r) != 0) break;
    close(fd);
    return NULL;
}

static void *echo(void *arg) {
    int listener = (int)(long)arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c < 0) continue;
        pthread_t t;
        if (pthread_create(&t, &attr, echo_conn, (void *)(long)c) != 0) close(c);
    }
    return NULL;
}

static void *hold(void *arg) {
    int listener = (int)(long)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    struct epoll_event events[256];
    char buf[4096];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) continue;
                struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
            }
        }
    }
    return NULL;
}

struct stream_job {
    int fd;
    unsigned long long bytes;
};

static char payload[256 * 1024];

static void *stream(void *arg) {
    struct stream_job job = *(struct stream_job *)arg;
    free(arg);
    char head[160];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\nConnection: close\r\n\r\n",
                     job.bytes);
    if (write_all(job.fd, head, (size_t)n) == 0) {
        unsigned long long left = job.bytes;
        while (left > 0) {
            size_t chunk = left < sizeof payload ? (size_t)left : sizeof payload;
            if (write_all(job.fd, payload, chunk) != 0) break;
            left -= chunk;
        }
    }
    finish(job.fd);
    return NULL;
}

static const char small_reply[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    free(req_buf[fd]);
    req_buf[fd] = NULL;
    req_len[fd] = 0;
}

/* The request head is complete: answer it. */
static void answer(int ep, int fd) {
    unsigned long long bytes = 0;
    int streamed = sscanf(req_buf[fd], "GET /bytes/%llu", &bytes) == 1;
    drop(ep, fd);
    if (streamed) {
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        struct stream_job *job = malloc(sizeof *job);
        job->fd = fd;
        job->bytes = bytes;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, stream, job) != 0) {
            free(job);
            close(fd);
        }
        pthread_attr_destroy(&attr);
        return;
    }
    /* A 60-byte reply fits any socket buffer: one write, then FIN. The client may reset as soon
     * as it has its first byte, so errors here are expected and ignored. */
    (void)!write(fd, small_reply, sizeof small_reply - 1);
    close(fd);
}

static void serve_http(int listener) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    fcntl(listener, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c;
                while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    req_buf[c] = malloc(REQ_MAX + 1);
                    req_len[c] = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t r = read(fd, req_buf[fd] + req_len[fd], REQ_MAX - req_len[fd]);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) {
                drop(ep, fd);
                close(fd);
                continue;
            }
            req_len[fd] += (int)r;
            req_buf[fd][req_len[fd]] = 0;
            if (strstr(req_buf[fd], "\r\n\r\n") || req_len[fd] >= REQ_MAX) answer(ep, fd);
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: origin UNIX_PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(payload, 'x', sizeof payload);
    int sink_port, echo_port, hold_port, http_port;
    int sink_fd = listen_tcp(&sink_port);
    int unix_fd = listen_unix(argv[1]);
    int echo_fd = listen_tcp(&echo_port);
    int hold_fd = listen_tcp(&hold_port);
    int http_fd = listen_tcp(&http_port);
    pthread_t t1, t2, t3, t4;
    pthread_create(&t1, NULL, sink, (void *)(long)sink_fd);
    pthread_create(&t2, NULL, sink, (void *)(long)unix_fd);
    pthread_create(&t3, NULL, echo, (void *)(long)echo_fd);
    pthread_create(&t4, NULL, hold, (void *)(long)hold_fd);
    printf("sink=%d echo=%d hold=%d http=%d\n", sink_port, echo_port, hold_port, http_port);
    fflush(stdout);
    serve_http(http_fd);
    return 0;
}
