#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/role.h"

namespace imgpipe::net {

struct AuthorizedKey {
  std::string name;
  Role role;
  std::string publicKey;  // Z85
  bool operator==(const AuthorizedKey&) const = default;
};

// The coordinator's list of who may connect, one key a line:
//
//     # name      role      public key (Z85)
//     build-1     build     rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
//
// Names and keys are unique. Malformed lines are errors naming the file and line.
class AuthorizedKeys {
 public:
  static AuthorizedKeys load(const std::filesystem::path& path);
  static AuthorizedKeys parse(std::string_view text, const std::string& sourceName);

  const AuthorizedKey* findByKey(std::string_view publicKey) const;
  const AuthorizedKey* findByName(std::string_view name) const;
  const std::vector<AuthorizedKey>& all() const { return keys_; }

 private:
  std::vector<AuthorizedKey> keys_;
};

// authorized_keys as a file that operators edit while the coordinator runs: reread whenever it
// changes (and on SIGHUP, through reload()), so adding a site's agent needs no restart and
// removing or replacing a key takes effect at once. An edit that does not parse keeps the last
// good list (and says why in the log) rather than locking everyone out.
class AuthorizedKeysFile {
 public:
  explicit AuthorizedKeysFile(std::filesystem::path path);  // throws on a first load that fails
  const AuthorizedKeys& current();
  // Reads the file again now; true when the list changed.
  bool reload();
  // Grows by one each time the list changes: what holders of sessions compare against.
  std::uint64_t generation() const { return generation_; }

 private:
  std::filesystem::path path_;
  AuthorizedKeys keys_;
  std::tuple<std::filesystem::file_time_type, std::uintmax_t, ino_t> stamp_{};
  std::uint64_t generation_ = 0;
};

}  // namespace imgpipe::net
