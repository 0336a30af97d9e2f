/* A program closes fd 2, opens a data file (which becomes fd 2), then connects: the library's
 * stderr log line must not land in the data file. Prints the file's contents. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    close(2);
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd != 2) return 3;
    write(fd, "PRECIOUS", 8);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
    int rc = connect(s, (struct sockaddr *)&sin, sizeof sin);
    char buf[4096] = {0};
    lseek(fd, 0, SEEK_SET);
    read(fd, buf, sizeof buf - 1);
    printf("rc=%d file=%s\n", rc, buf);
    return 0;
}
