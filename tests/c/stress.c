/* Concurrency and process lifecycle under the library.
 *
 *   stress threads N M HOST PORT   N threads x M connects to HOST:PORT (resolved once per
 *                                  thread); prints the number that succeeded.
 *   stress forks K HOST PORT       4 threads loop (resolve + connect) while the main thread
 *                                  forks K children, each of which must resolve and connect
 *                                  within 10 s (a deadlock would hang it); prints the number of
 *                                  children that exited 0.
 */
#define _GNU_SOURCE
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *host, *port;
static long per_thread;
static atomic_long ok;
static atomic_int stop;

static int one_connect(void) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) return 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int good = connect(s, res->ai_addr, res->ai_addrlen) == 0;
    close(s);
    freeaddrinfo(res);
    return good;
}

static void *connector(void *arg) {
    (void)arg;
    for (long i = 0; i < per_thread; i++) ok += one_connect();
    return NULL;
}

static void *churn(void *arg) {
    (void)arg;
    while (!stop) one_connect();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc >= 6 && strcmp(argv[1], "threads") == 0) {
        int n = atoi(argv[2]);
        per_thread = atol(argv[3]);
        host = argv[4];
        port = argv[5];
        pthread_t t[256];
        for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, connector, NULL);
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
        printf("%ld\n", (long)ok);
        return 0;
    }
    if (argc >= 5 && strcmp(argv[1], "forks") == 0) {
        int k = atoi(argv[2]);
        host = argv[3];
        port = argv[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
        int good = 0;
        for (int i = 0; i < k; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                alarm(10); /* a deadlocked child dies of SIGALRM instead of hanging */
                _exit(one_connect() ? 0 : 1);
            }
            int status = 0;
            waitpid(pid, &status, 0);
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) good++;
        }
        stop = 1;
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        printf("%d\n", good);
        return 0;
    }
    return 2;
}
