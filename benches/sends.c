/* sends MODE N PORT: N sends to 127.0.0.1:PORT, prints nanoseconds per call.
 *   tcp-send     send() on a connected TCP socket (never reaches the supervisor)
 *   tcp-sendmsg  sendmsg() on a connected TCP socket (reaches it, let through)
 *   udp-sendto   sendto() a datagram to an address (reaches it, checked and sent by it)
 * Built static by scripts/microbench.sh for the supervisor rows; needs a TCP listener that
 * drains on PORT for the tcp modes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
int main(int argc,char**argv){
  const char*mode=argv[1]; long n=atol(argv[2]);
  struct sockaddr_in a={.sin_family=AF_INET,.sin_port=htons(atoi(argv[3]))}; inet_pton(AF_INET,"127.0.0.1",&a.sin_addr);
  int s; char buf[64]={0};
  if(!strcmp(mode,"udp-sendto")){ s=socket(AF_INET,SOCK_DGRAM,0); double t=now(); for(long i=0;i<n;i++) sendto(s,buf,16,0,(void*)&a,sizeof a); printf("%.0f\n",(now()-t)/n); return 0;}
  s=socket(AF_INET,SOCK_STREAM,0); if(connect(s,(void*)&a,sizeof a)) {perror("connect");return 1;}
  struct iovec v={buf,16}; struct msghdr m={.msg_iov=&v,.msg_iovlen=1};
  double t=now();
  for(long i=0;i<n;i++){ if(!strcmp(mode,"tcp-send")) send(s,buf,16,0); else sendmsg(s,&m,0);}
  printf("%.0f\n",(now()-t)/n); return 0;}
