#include "runner/json_text.h"

#include "runner/units.h"

namespace runner {
namespace {

void make_valid(nlohmann::json& j) {
  if (j.is_string()) {
    j = valid_utf8(j.get_ref<const std::string&>());
  } else if (j.is_array()) {
    for (auto& item : j) make_valid(item);
  } else if (j.is_object()) {
    nlohmann::json fixed = nlohmann::json::object();
    for (auto& [key, item] : j.items()) {
      make_valid(item);
      fixed[valid_utf8(key)] = std::move(item);
    }
    j = std::move(fixed);
  }
}

}  // namespace

std::string json_text(nlohmann::json value, int indent) {
  make_valid(value);
  return value.dump(indent);
}

}  // namespace runner
