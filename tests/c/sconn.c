/* sconn IP PORT [IP PORT...]: connects to each (IPv4), prints "ok" and sends a GET, or the errno.
 * Built static by the supervise tests: a program LD_PRELOAD cannot enter. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin; memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET; sin.sin_port = htons(atoi(argv[i + 1]));
        inet_pton(AF_INET, argv[i], &sin.sin_addr);
        if (connect(s, (struct sockaddr *)&sin, sizeof sin) != 0) { printf("%d\n", errno); close(s); continue; }
        const char *req = "GET / HTTP/1.0\r\n\r\n"; write(s, req, strlen(req));
        char buf[4096]; int n, total = 0; while ((n = read(s, buf + total, sizeof buf - 1 - total)) > 0) total += n;
        buf[total] = 0; char *last = strrchr(buf, '\n'); printf("ok %s\n", last ? last + 1 : buf);
        close(s);
    }
    return 0;
}
