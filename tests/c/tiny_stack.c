/* The first hooked call of the process comes from a thread with a 16 KiB stack (microsocks
 * and other small servers use PTHREAD_STACK_MIN): loading the configuration must not overflow
 * it. Prints the first address "api.example.test" resolves to. */
#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void *lookup(void *arg) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo((const char *)arg, "443", &hints, &res);
    if (rc != 0) {
        printf("error %d\n", rc);
        return NULL;
    }
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text, sizeof text);
    printf("%s\n", text);
    freeaddrinfo(res);
    return NULL;
}

int main(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
    pthread_t thread;
    if (pthread_create(&thread, &attr, lookup, "api.example.test") != 0) {
        perror("pthread_create");
        return 2;
    }
    pthread_join(thread, NULL);
    return 0;
}
