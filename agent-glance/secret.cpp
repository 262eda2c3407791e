#include "agent-glance/secret.h"

#include <cstdlib>

#include "common/error.h"
#include "common/file_util.h"

namespace imgpipe::glance {

std::string SecretSource::describe() const {
  if (!file.empty()) return "file " + file.string();
  if (!env.empty()) return "environment variable " + env;
  return "(none)";
}

void SecretSource::takeFromEnvironment() {
  if (env.empty() || taken_) return;
  const char* v = std::getenv(env.c_str());
  taken_ = std::make_shared<const std::string>(v ? v : "");
  ::unsetenv(env.c_str());
}

std::string SecretSource::read() const {
  std::string value;
  if (!file.empty()) {
    value = readFile(file);
    auto nl = value.find_first_of("\r\n");
    if (nl != std::string::npos) value.resize(nl);
  } else if (taken_) {
    value = *taken_;
  } else if (!env.empty()) {
    const char* v = std::getenv(env.c_str());
    if (v != nullptr) value = v;
  }
  if (value.empty()) throw Error("secret from " + describe() + " is missing or empty");
  return value;
}

}  // namespace imgpipe::glance
