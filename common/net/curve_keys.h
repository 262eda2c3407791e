#pragma once

#include <filesystem>
#include <string>

namespace imgpipe::net {

// A CurveZMQ key pair, both halves Z85-encoded (40 characters). Value type.
struct CurveKeyPair {
  std::string name;
  std::string publicKey;
  std::string secretKey;
};

CurveKeyPair generateKeyPair(std::string name);

// Writes <dir>/<name>.key (secret, mode 0600, created that way: never briefly readable) and
// <dir>/<name>.pub (public, 0644). Refuses to overwrite an existing secret key.
void writeKeyPair(const CurveKeyPair& keys, const std::filesystem::path& dir);

// Loads a secret key file. Refuses (Error naming the file, its mode and the fix) a file that is
// readable or writable by group or others, and a malformed one.
CurveKeyPair loadSecretKey(const std::filesystem::path& path);

// Loads a .pub file, or accepts a bare 40-character Z85 key as a string.
std::string loadPublicKey(const std::filesystem::path& path);

bool isValidZ85Key(std::string_view key);

}  // namespace imgpipe::net
