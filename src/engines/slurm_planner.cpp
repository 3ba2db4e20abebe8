#include "runner/slurm_planner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <system_error>

#include "runner/error.h"
#include "runner/fd.h"
#include "runner/plan.h"

namespace bp = boost::process;

namespace runner {
namespace {

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// The node names of a Slurm host list ("n[1-3],gpu01"), as Slurm expands them.
std::vector<std::string> expand_host_list(const std::string& list) {
  bp::ipstream out;
  std::error_code ec;
  bp::child scontrol(bp::search_path("scontrol"), "show", "hostnames", list, bp::std_out > out,
                     bp::std_err > bp::null, ec);
  if (ec) throw Error(fmt::format("--on slurm: cannot run scontrol: {}", ec.message()));
  std::vector<std::string> names;
  for (std::string line; std::getline(out, line);)
    if (!line.empty()) names.push_back(line);
  scontrol.wait();
  if (scontrol.exit_code() != 0 || names.empty())
    throw Error(fmt::format("--on slurm: scontrol cannot expand the node list '{}'", list));
  return names;
}

}  // namespace

std::vector<std::uint32_t> parse_cpus_per_node(const std::string& text) {
  std::vector<std::uint32_t> out;
  auto bad = [&] {
    return Error(
        fmt::format("--on slurm: SLURM_JOB_CPUS_PER_NODE '{}' is not a list like 4(x2),2", text));
  };
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    auto part = text.substr(at, end - at);
    std::uint64_t count = 0, times = 1;
    auto paren = part.find('(');
    try {
      std::size_t used = 0;
      count = std::stoull(part.substr(0, paren), &used);
      if (used != (paren == std::string::npos ? part.size() : paren)) throw bad();
      if (paren != std::string::npos) {
        if (!part.ends_with(")") || part.compare(paren, 2, "(x") != 0) throw bad();
        auto inner = part.substr(paren + 2, part.size() - paren - 3);
        times = std::stoull(inner, &used);
        if (used != inner.size()) throw bad();
      }
    } catch (const std::logic_error&) {
      throw bad();
    }
    if (count == 0 || times == 0 || count > 1'000'000 || times > 1'000'000) throw bad();
    out.insert(out.end(), times, static_cast<std::uint32_t>(count));
    at = end + 1;
  }
  if (out.empty()) throw bad();
  return out;
}

std::optional<SlurmAllocation> slurm_allocation() {
  auto job = env_or_empty("SLURM_JOB_ID");
  if (job.empty()) return std::nullopt;
  auto list = env_or_empty("SLURM_JOB_NODELIST");
  if (list.empty())
    throw Error(
        fmt::format("--on slurm: SLURM_JOB_ID is {} but SLURM_JOB_NODELIST is not set", job));
  auto names = expand_host_list(list);
  auto cpus_text = env_or_empty("SLURM_JOB_CPUS_PER_NODE");
  auto cpus = cpus_text.empty() ? std::vector<std::uint32_t>(names.size(), 1)
                                : parse_cpus_per_node(cpus_text);
  if (cpus.size() != names.size())
    throw Error(
        fmt::format("--on slurm: SLURM_JOB_CPUS_PER_NODE '{}' names {} node(s), the node "
                    "list '{}' {}",
                    cpus_text, cpus.size(), list, names.size()));
  SlurmAllocation a{job, {}};
  for (std::size_t i = 0; i < names.size(); ++i) a.nodes.push_back({names[i], cpus[i]});
  return a;
}

std::vector<std::pair<std::string, std::uint64_t>> parse_node_memory(const std::string& text) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string nodes;
    std::optional<std::uint64_t> mb;
    for (std::string word; words >> word;) {
      if (word.starts_with("Nodes=")) nodes = word.substr(6);
      if (word.starts_with("Mem=")) {
        auto digits = word.substr(4);
        if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos)
          mb = std::stoull(digits);
      }
    }
    // "NumNodes=3" and the job's own "Nodes" summary carry no Mem=.
    if (!nodes.empty() && mb) out.emplace_back(nodes, *mb * 1024 * 1024);
  }
  return out;
}

void read_node_memory(SlurmAllocation& allocation) {
  bp::ipstream out;
  std::error_code ec;
  bp::child scontrol(bp::search_path("scontrol"), "show", "job", "-d", allocation.job_id,
                     bp::std_out > out, bp::std_err > bp::null, ec);
  if (ec) throw Error(fmt::format("--on slurm: cannot run scontrol: {}", ec.message()));
  std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  scontrol.wait();
  if (scontrol.exit_code() != 0)
    throw Error(fmt::format("--on slurm: scontrol cannot show Slurm job {}", allocation.job_id));
  for (const auto& [list, bytes] : parse_node_memory(text))
    for (const auto& name : expand_host_list(list))
      for (auto& node : allocation.nodes)
        if (node.name == name) node.memory = bytes;
}

void check_nodes(const SlurmAllocation& allocation, const std::vector<std::uint32_t>& slots,
                 const std::string& runner, const WorkerArgs& check) {
  std::vector<std::string> nodes;
  for (std::size_t i = 0; i < allocation.nodes.size(); ++i)
    if (slots[i] > 0) nodes.push_back(allocation.nodes[i].name);
  std::vector<std::string> args = {"--nodes=" + std::to_string(nodes.size()),
                                   "--ntasks=" + std::to_string(nodes.size()),
                                   "--ntasks-per-node=1",
                                   "--nodelist=" + fmt::format("{}", fmt::join(nodes, ",")),
                                   "--overlap",
                                   "--quiet",
                                   runner,
                                   "worker"};
  for (const auto& [option, value] : {std::pair{"--check-dir", check.check_dir},
                                      {"--check", check.check_program},
                                      {"--check-shared", check.check_shared},
                                      {"--check-allocation", check.check_allocation},
                                      {"--check-db", check.check_db},
                                      {"--check-job", check.check_job}})
    if (value) {
      args.emplace_back(option);
      args.push_back(*value);
    }
  bp::ipstream out, err;
  std::error_code ec;
  bp::child srun(bp::search_path("srun"), args, bp::std_in<bp::null, bp::std_out> out,
                 bp::std_err > err, ec);
  if (ec) throw Error(fmt::format("--on slurm: cannot run srun: {}", ec.message()));
  std::vector<std::string> ok, wrong, errors;
  for (std::string line; std::getline(out, line);) {
    if (line.rfind("ok ", 0) == 0)
      ok.push_back(line.substr(3));
    else if (!line.empty())
      wrong.push_back(line);
  }
  for (std::string line; std::getline(err, line);)
    if (line.find("error") != std::string::npos) errors.push_back(line);
  srun.wait();
  if (!wrong.empty()) throw Error(fmt::format("--on slurm: on node {}", wrong.front()));
  if (ok.size() != nodes.size())
    throw Error(fmt::format(
        "--on slurm: runner ({}) cannot run on every node of the allocation: {}", runner,
        errors.empty() ? fmt::format("srun exited with code {}", srun.exit_code())
                       : errors.front()));
}

namespace {

namespace fs = std::filesystem;

// Under --mem-budget, what each node's clusters may use together: the size
// given, or (auto) what Slurm allocated to the job there.
std::vector<std::uint64_t> node_budgets(const RunArgs& args, SlurmAllocation& allocation,
                                        const std::vector<std::uint32_t>& slots) {
  if (!args.mem_budget && !args.mem_budget_auto) return {};
  if (args.mem_budget) return std::vector<std::uint64_t>(slots.size(), *args.mem_budget);
  read_node_memory(allocation);
  std::vector<std::uint64_t> budgets;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const auto& node = allocation.nodes[i];
    if (slots[i] > 0 && node.memory.value_or(0) == 0)
      throw Error(fmt::format(
          "--mem-budget auto: Slurm job {} has no memory of its own on node {}; ask for some "
          "(salloc --mem=SIZE) or pass --mem-budget SIZE, per node",
          allocation.job_id, node.name));
    budgets.push_back(node.memory.value_or(0));
  }
  return budgets;
}

// The allocation runner runs in, which --on slurm needs.
SlurmAllocation allocation_or_refuse(const RunArgs& args) {
  auto allocation = slurm_allocation();
  if (!allocation)
    throw Error(fmt::format(
        "--on slurm: runner is not inside a Slurm allocation (SLURM_JOB_ID is not set); run it "
        "as salloc -N 4 --ntasks-per-node={} runner --on slurm ..., or put that runner line in "
        "an sbatch script",
        std::max<std::uint32_t>(1, args.parallel / 4)));
  if (!args.worker)
    throw Error("--on slurm runs a worker on every node: --worker off is for --on local");
  return *allocation;
}

// A file of a name no other run would choose, in the log folder, for the
// nodes to look for; gone again when the check is over.
class SharedMarker {
 public:
  explicit SharedMarker(const fs::path& folder) {
    std::random_device random;
    path_ = folder / fmt::format(".runner-shared-{}-{:08x}", ::getpid(), random());
    Fd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd)
      throw Error(fmt::format("cannot create a file in log folder {}: {}", folder.string(),
                              std::strerror(errno)));
  }
  SharedMarker(const SharedMarker&) = delete;
  SharedMarker& operator=(const SharedMarker&) = delete;
  ~SharedMarker() { ::unlink(path_.c_str()); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// How a node's worker starts: one step per node for the whole run. It may
// share the node's CPUs and memory with the job's other steps, and its
// worker alone decides what runs there. What a worker that died there left
// is killed by a step of its own.
WorkerLaunch node_launch(const std::string& node, const std::string& runner) {
  WorkerLaunch launch;
  launch.argv = {"srun",      "--nodes=1", "--ntasks=1", "--nodelist=" + node,
                 "--overlap", "--mem=0",   "--quiet",    "--job-name=runner-worker",
                 runner};
  launch.site = node;
  launch.most_starts = 1;
  launch.leftovers_here = false;
  launch.kill_leftovers = {"srun",      "--nodes=1", "--ntasks=1", "--nodelist=" + node,
                           "--overlap", "--quiet",   runner};
  return launch;
}

}  // namespace

Plan plan_slurm(const PlanRequest& request) {
  const auto& args = request.args;
  auto allocation = allocation_or_refuse(args);
  std::vector<std::uint32_t> cpus;
  std::uint64_t all_cpus = 0;
  for (const auto& node : allocation.nodes) {
    cpus.push_back(node.cpus);
    all_cpus += node.cpus;
  }
  auto slots = spread_slots(args.parallel, cpus);
  auto budgets = node_budgets(args, allocation, slots);
  Plan plan{.on = "slurm",
            .budgets_per_site = !budgets.empty(),
            .allocation = allocation.job_id,
            .site_word = "node",
            .none_left = "no node of the allocation is left to run it"};
  auto runner = own_binary("slurm");
  for (std::size_t i = 0; i < allocation.nodes.size(); ++i) {
    if (slots[i] == 0) continue;
    const auto& name = allocation.nodes[i].name;
    std::optional<std::uint64_t> budget;
    if (!budgets.empty()) budget = budgets[i];
    plan.sites.push_back({name, node_launch(name, runner), slots[i], budget, cpus[i]});
    plan.parallel += slots[i];
  }
  if (plan.parallel < args.parallel) {
    auto nodes = allocation.nodes.size();
    spdlog::warn(
        "P is {} but Slurm job {} has {} CPU(s) on {} node(s): at most {} cluster(s) run at once; "
        "for {}, ask for salloc -N {} --ntasks-per-node={}",
        args.parallel, allocation.job_id, all_cpus, nodes, plan.parallel, args.parallel, nodes,
        (args.parallel + nodes - 1) / nodes);
  }
  // The nodes run the binary at the path this one has, and write the logs
  // and journals the head reads: they must see its log folder.
  const auto& command = request.command;
  bool templated = command.render(1, 1).front() != command.program();
  SharedMarker marker(request.logs_folder);
  WorkerArgs check;
  check.check_dir = fs::current_path().string();
  if (!templated) check.check_program = command.program();
  check.check_shared = marker.path().string();
  // And that no other runner's job has the allocation's nodes.
  check.check_allocation = plan.allocation;
  check.check_db = claim_db_path(request.args.db);
  check.check_job = request.job;
  check_nodes(allocation, slots, runner, check);
  return plan;
}

}  // namespace runner
