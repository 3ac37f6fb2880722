/* A trivial HTTP server for runtime benchmarks: answers every request on $HOST:$PORT with
 * "200 ok", one connection at a time. Starts in about a millisecond. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  const char* host = getenv("HOST");
  const char* port = getenv("PORT");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(port ? port : "8080"));
  inet_pton(AF_INET, host ? host : "127.0.0.1", &a.sin_addr);
  if (bind(fd, (struct sockaddr*)&a, sizeof(a)) != 0 || listen(fd, 64) != 0) {
    perror("bind");
    return 1;
  }
  static const char resp[] =
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  char buf[4096];
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    if (read(c, buf, sizeof(buf)) > 0) {
      (void)!write(c, resp, sizeof(resp) - 1);
    }
    close(c);
  }
}
