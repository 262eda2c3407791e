#include "common/net/authorized_keys.h"

#include <spdlog/spdlog.h>

#include <sstream>

#include "common/error.h"
#include "common/file_util.h"
#include "common/net/curve_keys.h"

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

AuthorizedKeysFile::AuthorizedKeysFile(std::filesystem::path path) : path_(std::move(path)) {
  std::error_code ec;
  mtime_ = std::filesystem::last_write_time(path_, ec);
  keys_ = AuthorizedKeys::load(path_);
}

const AuthorizedKeys& AuthorizedKeysFile::current() {
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(path_, ec);
  if (ec || mtime == mtime_) return keys_;
  mtime_ = mtime;
  try {
    keys_ = AuthorizedKeys::load(path_);
    spdlog::info("reloaded {}: {} keys", path_.string(), keys_.all().size());
  } catch (const std::exception& e) {
    spdlog::error("keeping the previous authorized keys: {}", e.what());
  }
  return keys_;
}

}  // namespace imgpipe::net
