/* stwo SLOW_IP SLOW_PORT FAST_IP FAST_PORT: one thread connects to SLOW; 200 ms later the main
 * thread connects to FAST. Each prints a line when its connect returns ("NAME ok" or
 * "NAME <errno>"), so the order of the lines says whether the slow one held the other up.
 * The first line is "pid N".
 * Built static by the supervise tests. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void attempt(const char *name, const char *ip, const char *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(atoi(port));
    inet_pton(AF_INET, ip, &sin.sin_addr);
    if (connect(s, (struct sockaddr *)&sin, sizeof sin) == 0) printf("%s ok\n", name);
    else printf("%s %d\n", name, errno);
    fflush(stdout);
    close(s);
}

static char **args;

static void *slow(void *unused) {
    (void)unused;
    attempt("slow", args[1], args[2]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    args = argv;
    printf("pid %d\n", (int)getpid());
    fflush(stdout);
    pthread_t thread;
    pthread_create(&thread, NULL, slow, NULL);
    usleep(200 * 1000);
    attempt("fast", argv[3], argv[4]);
    pthread_join(thread, NULL);
    return 0;
}
