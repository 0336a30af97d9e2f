// A program that cannot start threads (a seccomp filter refuses clone3 and clone with
// CLONE_THREAD, as a strict sandbox or a cgroup's pids.max would), making a routed connect on a
// non-blocking socket: the library must fall back to the handshake inside connect().
// Usage: no_threads HOST  (fetches http://HOST/ and prints each step and the body)
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *nothing(void *arg) { return arg; }

static const char *name(int code) {
    switch (code) {
    case 0: return "0";
    case EAGAIN: return "EAGAIN";
    case EINPROGRESS: return "EINPROGRESS";
    case ENOSYS: return "ENOSYS";
    default: return strerror(code);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program)) {
        perror("seccomp");
        return 1;
    }
    pthread_t thread;
    printf("pthread_create: %s\n", name(pthread_create(&thread, NULL, nothing, NULL)));

    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *found;
    if (getaddrinfo(argv[1], "80", &hints, &found)) return 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = connect(fd, found->ai_addr, found->ai_addrlen);
    printf("connect: %s\n", name(rc == 0 ? 0 : errno));
    struct pollfd pfd = {fd, POLLOUT, 0};
    poll(&pfd, 1, 10000);
    int error = -1;
    socklen_t len = sizeof error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    printf("SO_ERROR: %s\n", name(error));
    const char request[] = "GET / HTTP/1.0\r\n\r\n";
    send(fd, request, sizeof request - 1, 0);
    char reply[4096];
    size_t got = 0;
    for (;;) {
        struct pollfd in = {fd, POLLIN, 0};
        if (poll(&in, 1, 10000) <= 0) break;
        ssize_t n = recv(fd, reply + got, sizeof reply - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    reply[got] = 0;
    char *body = strstr(reply, "\r\n\r\n");
    printf("%s\n", body ? body + 4 : "(no reply)");
    fflush(stdout);
    return 0;
}
