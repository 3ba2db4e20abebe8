// Inside the local engine: an attempt's log file (its process: spawn.h).
#pragma once

#include <string>

#include "runner/spawn.h"  // and how its process is made

namespace runner {

// Creates an attempt's log in its folder, new: never through a symbolic link
// and never over a file that exists, whoever made it (an earlier DB that
// shared this log folder, a link planted there). A taken name gets a fresh
// one beside it: 3.1.log, then 3.1-2.log, 3.1-3.log, ... `name` is updated.
// Returns the fd, or -1 with errno set.
int create_log(int dir_fd, std::string& name);

}  // namespace runner
