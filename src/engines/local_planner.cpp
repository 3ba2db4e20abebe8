// --on local: this machine is the one site, its worker runner's own binary
// started again as `runner worker` (or, with --worker off, no worker: runner
// runs the clusters itself). The run's budget, if any, is the site's.
#include "runner/plan.h"

namespace runner {

Plan plan_local(const PlanRequest& request) {
  Plan plan{.on = "local", .parallel = request.args.parallel, .site_word = "machine"};
  if (!request.args.worker) return plan;
  WorkerLaunch launch{{"runner"}, "/proc/self/exe"};
  plan.sites.push_back(
      {"", std::move(launch), request.args.parallel, std::nullopt, request.args.parallel});
  return plan;
}

}  // namespace runner
