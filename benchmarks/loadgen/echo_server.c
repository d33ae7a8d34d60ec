/* echo_server: the ceiling for tcp_echo, a C epoll echo server (one thread, level-triggered).
 * Prints its port, then echoes until killed:  .build/echo_server & .build/echo_client 127.0.0.1 PORT 32 1024 0.3 2
 * Not run by run.py: build by hand with  cc -O2 -o .build/echo_server loadgen/echo_server.c  */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
int main(void){int l=socket(AF_INET,SOCK_STREAM,0),one=1;setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,4);
struct sockaddr_in a={.sin_family=AF_INET};inet_pton(AF_INET,"127.0.0.1",&a.sin_addr);bind(l,(void*)&a,sizeof a);listen(l,128);
socklen_t sl=sizeof a;getsockname(l,(void*)&a,&sl);printf("%d\n",ntohs(a.sin_port));fflush(stdout);
int ep=epoll_create1(0);struct epoll_event ev={.events=EPOLLIN,.data.fd=l};epoll_ctl(ep,EPOLL_CTL_ADD,l,&ev);
static char buf[65536];struct epoll_event evs[256];
for(;;){int n=epoll_wait(ep,evs,256,-1);for(int i=0;i<n;i++){int fd=evs[i].data.fd;if(fd==l){int c=accept(l,0,0);setsockopt(c,6,1,&one,4);ev.data.fd=c;epoll_ctl(ep,EPOLL_CTL_ADD,c,&ev);continue;}
ssize_t r=recv(fd,buf,sizeof buf,0);if(r<=0){close(fd);continue;}send(fd,buf,r,0);}}}
