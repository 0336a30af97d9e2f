/* ssend: the sends that carry an address, from a static program (LD_PRELOAD cannot enter it).
 *   ssend tfo IP PORT          TCP Fast Open: sendto(MSG_FASTOPEN) a GET; "ok <last line>" or errno
 *   ssend udp IP PORT          sendto a datagram; "sent N" or errno
 *   ssend msg IP PORT          sendmsg a datagram; "sent N" or errno
 *   ssend mmsg IP PORT IP PORT sendmmsg two datagrams; "sent K lens A B" or errno
 *   ssend dns NAME             a DNS query for NAME sent to 127.0.0.1:53 on an unconnected
 *                              socket, as musl's resolver does; "sent N" or errno
 * Built static by the supervise tests. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

static struct sockaddr_in addr(const char *ip, const char *port) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(atoi(port));
    inet_pton(AF_INET, ip, &sin.sin_addr);
    return sin;
}

static int report(long n) {
    if (n < 0) printf("%d\n", errno); else printf("sent %ld\n", n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1];
    if (!strcmp(mode, "tfo") && argc == 4) {
        struct sockaddr_in to = addr(argv[2], argv[3]);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        const char *req = "GET / HTTP/1.0\r\n\r\n";
        if (sendto(s, req, strlen(req), MSG_FASTOPEN, (struct sockaddr *)&to, sizeof to) < 0) {
            printf("%d\n", errno);
            return 0;
        }
        char buf[4096]; int n, total = 0;
        while ((n = read(s, buf + total, sizeof buf - 1 - total)) > 0) total += n;
        buf[total] = 0; char *last = strrchr(buf, '\n'); printf("ok %s\n", last ? last + 1 : buf);
        return 0;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (!strcmp(mode, "udp") && argc == 4) {
        struct sockaddr_in to = addr(argv[2], argv[3]);
        return report(sendto(s, "ping", 4, 0, (struct sockaddr *)&to, sizeof to));
    }
    if (!strcmp(mode, "msg") && argc == 4) {
        struct sockaddr_in to = addr(argv[2], argv[3]);
        struct iovec iov[2] = {{"pi", 2}, {"ng", 2}};
        struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = iov, .msg_iovlen = 2};
        return report(sendmsg(s, &m, 0));
    }
    if (!strcmp(mode, "mmsg") && argc == 6) {
        struct sockaddr_in to[2] = {addr(argv[2], argv[3]), addr(argv[4], argv[5])};
        struct iovec iov[2] = {{"first", 5}, {"second", 6}};
        struct mmsghdr v[2];
        memset(v, 0, sizeof v);
        for (int i = 0; i < 2; i++) {
            v[i].msg_hdr.msg_name = &to[i]; v[i].msg_hdr.msg_namelen = sizeof to[i];
            v[i].msg_hdr.msg_iov = &iov[i]; v[i].msg_hdr.msg_iovlen = 1;
        }
        int k = sendmmsg(s, v, 2, 0);
        if (k < 0) { printf("%d\n", errno); return 0; }
        printf("sent %d lens %u %u\n", k, v[0].msg_len, v[1].msg_len);
        return 0;
    }
    if (!strcmp(mode, "dns")) {
        unsigned char q[512] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
        size_t len = 12;
        for (const char *label = argv[2]; *label;) {
            const char *dot = strchr(label, '.');
            size_t n = dot ? (size_t)(dot - label) : strlen(label);
            q[len++] = (unsigned char)n; memcpy(q + len, label, n); len += n;
            label += n + (dot ? 1 : 0);
        }
        q[len++] = 0; q[len++] = 0; q[len++] = 1; q[len++] = 0; q[len++] = 1;
        struct sockaddr_in to = addr("127.0.0.1", "53");
        return report(sendto(s, q, len, 0, (struct sockaddr *)&to, sizeof to));
    }
    return 2;
}
