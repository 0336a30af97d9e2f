/* Per-call cost of the hooked functions, in nanoseconds, for `scripts/microbench.sh`.
 *
 *   hotpath connect-inet N   connect()+close() to a loopback listener (accepted by a thread)
 *   hotpath connect-unix N   the same over AF_UNIX (must be untouched by the library)
 *   hotpath resolve HOST N   getaddrinfo(HOST, "443") + freeaddrinfo
 *
 * Prints one number: nanoseconds per operation. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int listener;

static void *acceptor(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c < 0) return NULL;
        close(c);
    }
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long n = atol(argv[argc - 1]);
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
    memset(&ss, 0, sizeof ss);
    if (strcmp(argv[1], "resolve") == 0) {
        struct addrinfo hints, *res;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            if (getaddrinfo(argv[2], "443", &hints, &res) != 0) return 3;
            freeaddrinfo(res);
        }
        printf("%.0f\n", (now_ns() - t0) / n);
        return 0;
    }
    if (strcmp(argv[1], "connect-inet") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        family = AF_INET;
        len = sizeof *sin;
    } else {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof sun->sun_path, "/tmp/mcp-redirect-bench-%d.sock", getpid());
        unlink(sun->sun_path);
        family = AF_UNIX;
        len = sizeof *sun;
    }
    listener = socket(family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&ss, len) != 0 || listen(listener, 4096) != 0) return 4;
    getsockname(listener, (struct sockaddr *)&ss, &len);
    pthread_t t;
    pthread_create(&t, NULL, acceptor, NULL);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int s = socket(family, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&ss, len) != 0) return 5;
        /* Reset rather than close gracefully: no TIME_WAIT pile-up to skew later runs. */
        struct linger lg = {1, 0};
        setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(s);
    }
    printf("%.0f\n", (now_ns() - t0) / n);
    if (family == AF_UNIX) unlink(((struct sockaddr_un *)&ss)->sun_path);
    return 0;
}
