/* Writes `count` log lines of about 100 bytes to stdout as fast as it can, then prints the
 * seconds it took to stderr. Used to compare log ingest against writing to /dev/null. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  long count = argc > 1 ? atol(argv[1]) : 1000000;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < count; ++i) {
    printf("level=info msg=\"processed item\" item=%ld queue=ingest latency_ms=%ld status=ok pad=xxxxxxxxxxxx\n",
           i, i % 97);
  }
  fflush(stdout);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "elapsed %.3f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
