// JSON for people's programs (status --json, report --json): what runner
// recorded is bytes (paths, command lines), JSON is Unicode. Every string
// and key goes through valid_utf8 before it is written, so no recorded byte
// can make the output fail or be invalid JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace runner {

std::string json_text(nlohmann::json value, int indent = 2);

}  // namespace runner
