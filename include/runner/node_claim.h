// One runner to a node of an allocation. Two runners started in the same
// Slurm allocation would each spread their P over the nodes' CPUs and run
// twice as many clusters as the job has CPUs there. So each worker claims
// its node of the allocation for its job, and a worker (or the check before
// a run) that finds another job's live claim there refuses, naming it. The
// same job's claim is an earlier run of it, whose leftovers runner settles.
//
// A claim is a file in /tmp, locked while its worker lives:
// runner-claim-<uid>-<allocation>-<node>-<pid>, holding when it was made,
// the DB and the job. A file whose lock is free is a dead worker's, and
// goes. Two workers that start at the same moment both write theirs before
// they look, so each sees the other: the older claim stands, and the other
// refuses.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "runner/fd.h"

namespace runner {

struct Claimant {
  std::string db;   // the DB's absolute path, as the head has it
  std::string job;  // the job's name
  pid_t pid = 0;    // the worker's
  std::uint64_t made_ns = 0;
};

class NodeClaim {
 public:
  // Claims `node` of `allocation` for `me`; throws Error naming the job
  // that runs there already.
  NodeClaim(const std::string& allocation, const std::string& node, const Claimant& me);
  ~NodeClaim();
  NodeClaim(const NodeClaim&) = delete;
  NodeClaim& operator=(const NodeClaim&) = delete;

 private:
  std::filesystem::path path_;
  Fd fd_;
};

// Another job's live claim on that node, if any (the oldest); the dead
// workers' claims found on the way are removed.
std::optional<Claimant> other_claim(const std::string& allocation, const std::string& node,
                                    const Claimant& me);

// Why a job cannot run where `other` holds the node: one line.
std::string claimed_by(const std::string& allocation, const std::string& node,
                       const Claimant& other);

}  // namespace runner
