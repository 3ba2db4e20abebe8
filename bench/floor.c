/* The floor for dispatch: N runs of a command, P at a time, with nothing but
 * posix_spawn and waitpid. No log, no bookkeeping: what any pool must pay.
 *   floor N P COMMAND [ARG...]                                              */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: floor N P COMMAND [ARG...]\n");
    return 2;
  }
  long n = atol(argv[1]), p = atol(argv[2]), started = 0, running = 0, failed = 0;
  while (started < n || running > 0) {
    while (running < p && started < n) {
      pid_t pid;
      if (posix_spawn(&pid, argv[3], NULL, NULL, argv + 3, environ) != 0) return 1;
      ++started;
      ++running;
    }
    int status;
    if (wait(&status) < 0) return 1;
    --running;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  return failed ? 1 : 0;
}
