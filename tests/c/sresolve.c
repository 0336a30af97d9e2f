/* sresolve NAME PORT [NAME PORT...]: getaddrinfo (AF_INET) and connect to the first address,
 * then a GET; prints "ok <last line>", "connect <errno>" or "lookup <gai error>" for each.
 * Built static by the supervise tests: static glibc has its own resolver (it loads the NSS
 * modules itself and sends DNS to the nameserver from /etc/resolv.conf). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        struct addrinfo hints, *res;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(argv[i], argv[i + 1], &hints, &res);
        if (rc != 0) { printf("lookup %d\n", rc); continue; }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, res->ai_addr, res->ai_addrlen) != 0) {
            printf("connect %d\n", errno);
        } else {
            const char *req = "GET / HTTP/1.0\r\n\r\n";
            write(s, req, strlen(req));
            char buf[4096]; int n, total = 0;
            while ((n = read(s, buf + total, sizeof buf - 1 - total)) > 0) total += n;
            buf[total] = 0; char *last = strrchr(buf, '\n'); printf("ok %s\n", last ? last + 1 : buf);
        }
        close(s);
        freeaddrinfo(res);
    }
    return 0;
}
