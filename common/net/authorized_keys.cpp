#include "common/net/authorized_keys.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <sstream>
#include <tuple>

#include "common/error.h"
#include "common/file_util.h"
#include "common/net/curve_keys.h"
#include "protocol/ids.h"

namespace imgpipe::net {

AuthorizedKeys AuthorizedKeys::load(const std::filesystem::path& path) {
  return parse(readFile(path), path.string());
}

AuthorizedKeys AuthorizedKeys::parse(std::string_view text, const std::string& sourceName) {
  AuthorizedKeys out;
  std::istringstream in{std::string(text)};
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    auto first = line.find_first_not_of(" \t\r");
    // Z85 may contain '#', so only a '#' that starts the line begins a comment.
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line);
    std::string name, role, key, extra;
    fields >> name >> role >> key >> extra;
    const std::string where = sourceName + ":" + std::to_string(lineNo) + ": ";
    if (key.empty() || !extra.empty())
      throw Error(where + "expected 'NAME ROLE PUBLIC-KEY', got '" + line + "'");
    auto parsedRole = parseRole(role);
    if (!parsedRole)
      throw Error(where + "unknown role '" + role + "' (use build, relay, glance or operator)");
    if (auto why = ids::problem("name", ids::Kind::agentName, name)) throw Error(where + *why);
    if (!isValidZ85Key(key)) throw Error(where + "'" + key + "' is not a 40-character Z85 key");
    if (out.findByName(name)) throw Error(where + "name '" + name + "' is listed twice");
    if (auto* other = out.findByKey(key))
      throw Error(where + "key of '" + name + "' is already listed for '" + other->name + "'");
    out.keys_.push_back({name, *parsedRole, key});
  }
  return out;
}

const AuthorizedKey* AuthorizedKeys::findByKey(std::string_view publicKey) const {
  for (const auto& k : keys_)
    if (k.publicKey == publicKey) return &k;
  return nullptr;
}

const AuthorizedKey* AuthorizedKeys::findByName(std::string_view name) const {
  for (const auto& k : keys_)
    if (k.name == name) return &k;
  return nullptr;
}

namespace {
// What tells an edit apart: mtime alone can miss two writes within its granularity, or a file
// replaced by rename with an older mtime.
std::tuple<std::filesystem::file_time_type, std::uintmax_t, ino_t> stamp(
    const std::filesystem::path& path) {
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(path, ec);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {mtime, 0, 0};
  return {mtime, static_cast<std::uintmax_t>(st.st_size), st.st_ino};
}
}  // namespace

AuthorizedKeysFile::AuthorizedKeysFile(std::filesystem::path path) : path_(std::move(path)) {
  stamp_ = stamp(path_);
  keys_ = AuthorizedKeys::load(path_);
}

const AuthorizedKeys& AuthorizedKeysFile::current() {
  if (stamp(path_) != stamp_) reload();
  return keys_;
}

bool AuthorizedKeysFile::reload() {
  stamp_ = stamp(path_);
  try {
    auto fresh = AuthorizedKeys::load(path_);
    const bool changed = fresh.all() != keys_.all();
    keys_ = std::move(fresh);
    if (changed) {
      ++generation_;
      spdlog::info("reloaded {}: {} keys", path_.string(), keys_.all().size());
    }
    return changed;
  } catch (const std::exception& e) {
    spdlog::error("keeping the previous authorized keys: {}", e.what());
    return false;
  }
}

}  // namespace imgpipe::net
