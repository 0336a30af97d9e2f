/* What a program sees of the relay (docs/nonblocking.md), for `scripts/bench.sh`: one measurement
 * per run, one JSON object printed at the end. HOST is looked up once with getaddrinfo (IPv4), so
 * that under the library a routed name gives its fake address, as it would to any program.
 *
 *   relay connect-time [-n N] [-w WARMUP] HOST PORT
 *       N times: socket(SOCK_NONBLOCK), connect() timed alone (clock_gettime around the call),
 *       then poll() until the socket is writable (the connection is up, or failed: SO_ERROR must
 *       be 0), then a reset. Waiting for each connection before the next keeps one handshake in
 *       flight at a time, so that the relay's work for earlier connects does not land inside
 *       later connect() calls. Prints the distribution of both times in µs:
 *       {"n", "einprogress", "return_us": {p50, p99, mean, max}, "ready_us": {...}}
 *
 *   relay pingpong [-n N] [-s SIZE] [-w WARMUP] HOST PORT
 *       One connection (non-blocking connect, as an event loop makes it, then blocking I/O and
 *       TCP_NODELAY) to an echo server; N round trips of SIZE bytes, each timed:
 *       {"n", "size", "rtt_us": {p50, p99, mean, max}, "wall_s"}
 *
 *   relay inflight [-n N] HOST PORT
 *       HOST:PORT goes through a gateway that never answers. One connect first (the relay's
 *       thread and listener are made on the first one), then the process's descriptors
 *       (/proc/self/fd), VmRSS (/proc/self/status) and the kernel's TCP memory (/proc/net/sockstat,
 *       the whole machine's), then N more connects, each expected to return EINPROGRESS; once
 *       the relay has taken them all (descriptors stop growing), the same counts again:
 *       {"n", "einprogress", "pending", "fds_per_conn", "rss_bytes_per_conn",
 *        "kernel_tcp_bytes_per_conn", "connect_us_mean", "settle_s"}
 *       "pending" counts the sockets still neither writable nor in error (handshakes in flight).
 *
 * It never listens and connects only where it is told (127.0.0.1 or a routed name). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what) {
    fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
    exit(5);
}

static struct sockaddr_in target;

static void lookup(const char *host, const char *port) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "relay: getaddrinfo %s: %s\n", host, gai_strerror(rc));
        exit(5);
    }
    memcpy(&target, res->ai_addr, sizeof target);
    freeaddrinfo(res);
}

/* A non-blocking connect to the target: 0 (connected at once), 1 (EINPROGRESS), or dies. */
static int start_connect(int *out) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0) die("socket");
    *out = s;
    if (connect(s, (struct sockaddr *)&target, sizeof target) == 0) return 0;
    if (errno == EINPROGRESS) return 1;
    die("connect");
    return -1;
}

static void wait_connected(int s) {
    struct pollfd p = {.fd = s, .events = POLLOUT};
    int rc;
    do rc = poll(&p, 1, 20000);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0) {
        errno = rc == 0 ? ETIMEDOUT : errno;
        die("waiting for the connection");
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) die("SO_ERROR");
    if (err) {
        errno = err;
        die("connect (SO_ERROR)");
    }
}

static void reset_close(int s) {
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(s);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* {"p50":..,"p99":..,"mean":..,"max":..} of v[0..n), sorted in place. */
static void dist(const char *name, double *v, long n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (long i = 0; i < n; i++) sum += v[i];
    printf("\"%s\":{\"p50\":%.3f,\"p99\":%.3f,\"mean\":%.3f,\"max\":%.3f}", name, v[n / 2],
           v[(long)(0.99 * (double)(n - 1))], sum / (double)n, v[n - 1]);
}

static int connect_time(long n, long warmup) {
    double *ret = calloc((size_t)n, sizeof *ret), *ready = calloc((size_t)n, sizeof *ready);
    long inprogress = 0;
    for (long i = -warmup; i < n; i++) {
        int s;
        double t0 = now_us();
        int pending = start_connect(&s);
        double t1 = now_us();
        wait_connected(s);
        double t2 = now_us();
        reset_close(s);
        if (i < 0) continue;
        ret[i] = t1 - t0;
        ready[i] = t2 - t0;
        inprogress += pending;
    }
    printf("{\"n\":%ld,\"einprogress\":%ld,", n, inprogress);
    dist("return_us", ret, n);
    printf(",");
    dist("ready_us", ready, n);
    printf("}\n");
    return 0;
}

static void send_all(int s, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(s, p, n, MSG_NOSIGNAL);
        if (w < 0) die("send");
        p += w;
        n -= (size_t)w;
    }
}

static void recv_exact(int s, char *p, size_t n) {
    while (n > 0) {
        ssize_t r = recv(s, p, n, 0);
        if (r <= 0) {
            if (r == 0) errno = ECONNRESET;
            die("recv");
        }
        p += r;
        n -= (size_t)r;
    }
}

static int pingpong(long n, long warmup, size_t size) {
    int s;
    if (start_connect(&s)) wait_connected(s);
    int flags = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char *out = malloc(size), *in = malloc(size);
    memset(out, 'p', size);
    double *rtt = calloc((size_t)n, sizeof *rtt);
    double start = 0;
    for (long i = -warmup; i < n; i++) {
        if (i == 0) start = now_us();
        double t0 = now_us();
        send_all(s, out, size);
        recv_exact(s, in, size);
        if (i >= 0) rtt[i] = now_us() - t0;
    }
    double wall = (now_us() - start) / 1e6;
    close(s);
    printf("{\"n\":%ld,\"size\":%zu,", n, size);
    dist("rtt_us", rtt, n);
    printf(",\"wall_s\":%.6f}\n", wall);
    return 0;
}

static long count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) die("/proc/self/fd");
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[512];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(f);
    return v;
}

/* /proc/net/sockstat's "TCP: ... mem PAGES": every TCP socket's buffers, machine-wide. */
static long tcp_mem_pages(void) {
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f) return -1;
    char line[512];
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        char *m = strstr(line, " mem ");
        if (strncmp(line, "TCP:", 4) == 0 && m) {
            v = atol(m + 5);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Waits until the descriptor count reaches `want` or has not moved for 300 ms (10 s at most). */
static double settle(long want) {
    double t0 = now_us();
    long last = -1;
    int still = 0;
    while (now_us() - t0 < 10e6) {
        long n = count_fds();
        if (want > 0 && n >= want) break;
        still = n == last ? still + 1 : 0;
        if (still >= 6) break;
        last = n;
        usleep(50000);
    }
    return (now_us() - t0) / 1e6;
}

static int inflight(long n) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)(3 * n + 64) > rl.rlim_cur) {
        fprintf(stderr, "relay: %ld connections need %ld descriptors; the limit is %lu\n", n,
                3 * n + 64, (unsigned long)rl.rlim_cur);
        return 5;
    }
    int *fds = calloc((size_t)n, sizeof *fds);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    int first;
    if (!start_connect(&first)) {
        fprintf(stderr, "relay: the first connect returned 0: not relayed\n");
        return 5;
    }
    settle(0);
    long fd0 = count_fds(), rss0 = rss_kb(), mem0 = tcp_mem_pages();
    long inprogress = 0;
    double t0 = now_us();
    for (long i = 0; i < n; i++) inprogress += start_connect(&fds[i]);
    double connect_us = (now_us() - t0) / (double)n;
    double settled = settle(fd0 + 3 * n);
    long fd1 = count_fds(), rss1 = rss_kb(), mem1 = tcp_mem_pages();
    for (long i = 0; i < n; i++) pf[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
    long ready = poll(pf, (nfds_t)n, 0);
    printf("{\"n\":%ld,\"einprogress\":%ld,\"pending\":%ld,\"fds_per_conn\":%.3f,"
           "\"rss_bytes_per_conn\":%.1f,\"kernel_tcp_bytes_per_conn\":%.1f,"
           "\"connect_us_mean\":%.3f,\"settle_s\":%.3f}\n",
           n, inprogress, n - (ready > 0 ? ready : 0), (double)(fd1 - fd0) / (double)n,
           (double)(rss1 - rss0) * 1024 / (double)n,
           (double)(mem1 - mem0) * (double)sysconf(_SC_PAGESIZE) / (double)n, connect_us,
           settled);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: relay connect-time|pingpong|inflight [-n N] [-w WARMUP] [-s SIZE] "
                    "HOST PORT\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *what = argv[1];
    long n = 1000, warmup = 20;
    size_t size = 64;
    int i = 2;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-n") == 0) n = atol(argv[i + 1]);
        else if (strcmp(argv[i], "-w") == 0) warmup = atol(argv[i + 1]);
        else if (strcmp(argv[i], "-s") == 0) size = (size_t)atol(argv[i + 1]);
        else return usage();
    }
    if (argc - i != 2 || n < 1 || size < 1) return usage();
    lookup(argv[i], argv[i + 1]);
    if (strcmp(what, "connect-time") == 0) return connect_time(n, warmup);
    if (strcmp(what, "pingpong") == 0) return pingpong(n, warmup, size);
    if (strcmp(what, "inflight") == 0) return inflight(n);
    return usage();
}
