/* The floor for dispatch: N runs of a command, P at a time, with nothing but
 * spawn and wait. No log, no bookkeeping: what any pool must pay.
 *   floor [--cgroup DIR] [--logs DIR] N P COMMAND [ARG...]
 * Each run gets its cluster token "i/N" as its last argument, as under runner:
 * the command does the same work under both (coreutils' true, for one, sets
 * up its locale when it has an argument and not otherwise).
 *
 * Plain, it is posix_spawn + wait. With --cgroup, it is what any tool pays to
 * put each child in a memory cgroup of its own: P cgroups made once below DIR
 * (a v1 or v2 memory cgroup the caller owns), each child joining its slot's
 * between vfork and exec, the way runner does by default: on v1 by writing
 * "0" (itself) to the slot's tasks file, on v2 to its cgroup.procs.
 * posix_spawn cannot join a cgroup on this glibc.
 *
 * With --logs, each run's output goes to a file of its own, DIR/i.1.log,
 * created for it: the file work runner does per attempt, without the rest. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

struct slot {
  pid_t pid;    /* running there now, or 0 */
  int join_fd; /* its tasks (v1) or cgroup.procs (v2), or -1 */
  char dir[4096];
};

static pid_t start(const struct slot* s, char** args, int log_fd) {
  pid_t pid;
  if (s->join_fd < 0) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (log_fd >= 0) {
      posix_spawn_file_actions_adddup2(&actions, log_fd, STDOUT_FILENO);
      posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
    }
    int err = posix_spawn(&pid, args[0], &actions, NULL, args, environ);
    posix_spawn_file_actions_destroy(&actions);
    return err == 0 ? pid : -1;
  }
  pid = vfork();
  if (pid == 0) {
    if (write(s->join_fd, "0", 1) != 1) _exit(126);
    if (log_fd >= 0 && (dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0))
      _exit(126);
    execve(args[0], args, environ);
    _exit(127);
  }
  return pid;
}

int main(int argc, char** argv) {
  const char* cgroup = NULL;
  const char* logs = NULL;
  while (argc > 2 && (strcmp(argv[1], "--cgroup") == 0 || strcmp(argv[1], "--logs") == 0)) {
    if (strcmp(argv[1], "--cgroup") == 0)
      cgroup = argv[2];
    else
      logs = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (argc < 4) {
    fprintf(stderr, "usage: floor [--cgroup DIR] [--logs DIR] N P COMMAND [ARG...]\n");
    return 2;
  }
  long n = atol(argv[1]), p = atol(argv[2]), started = 0, running = 0, failed = 0;
  int fixed = argc - 3, status = 0;
  char** args = calloc((size_t)fixed + 2, sizeof *args);
  struct slot* slots = calloc((size_t)p, sizeof *slots);
  char token[48];
  if (!args || !slots || p < 1) return 2;
  memcpy(args, argv + 3, (size_t)fixed * sizeof *args);
  args[fixed] = token;
  for (long i = 0; i < p; ++i) {
    slots[i].join_fd = -1;
    if (!cgroup) continue;
    char join[4200];
    snprintf(slots[i].dir, sizeof slots[i].dir, "%s/floor-%d-%ld", cgroup, (int)getpid(), i);
    /* v1 has a tasks file in every cgroup; v2 has none. */
    snprintf(join, sizeof join, "%s/tasks", slots[i].dir);
    if (mkdir(slots[i].dir, 0755) != 0) {
      perror(slots[i].dir);
      status = 1;
      goto out;
    }
    if (access(join, W_OK) != 0) snprintf(join, sizeof join, "%s/cgroup.procs", slots[i].dir);
    if ((slots[i].join_fd = open(join, O_WRONLY)) < 0) {
      perror(slots[i].dir);
      status = 1;
      goto out;
    }
  }
  while (started < n || running > 0) {
    for (long i = 0; i < p && started < n; ++i) {
      if (slots[i].pid) continue;
      snprintf(token, sizeof token, "%ld/%ld", started + 1, n);
      int log_fd = -1;
      if (logs) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%ld.1.log", logs, started + 1);
        if ((log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
          perror(path);
          status = 1;
          goto out;
        }
      }
      slots[i].pid = start(&slots[i], args, log_fd);
      if (log_fd >= 0) close(log_fd);
      if (slots[i].pid <= 0) {
        status = 1;
        goto out;
      }
      ++started;
      ++running;
    }
    int wstatus;
    pid_t pid = wait(&wstatus);
    if (pid < 0) {
      status = 1;
      goto out;
    }
    for (long i = 0; i < p; ++i)
      if (slots[i].pid == pid) slots[i].pid = 0;
    --running;
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) ++failed;
  }
  status = failed ? 1 : 0;
out:
  while (wait(NULL) > 0) {
  }
  for (long i = 0; i < p; ++i) {
    if (slots[i].join_fd >= 0) close(slots[i].join_fd);
    if (cgroup && slots[i].dir[0]) rmdir(slots[i].dir);
  }
  return status;
}
