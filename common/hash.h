#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace imgpipe {

enum class HashAlgo { sha256, sha512 };

// Incremental SHA-2 over OpenSSL's EVP interface. Resource type (owns an EVP context).
class Hasher {
 public:
  explicit Hasher(HashAlgo algo);
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(std::span<const std::byte> data);
  void update(std::string_view data) { update(std::as_bytes(std::span(data.data(), data.size()))); }
  // Returns the raw digest (32 or 64 bytes); the hasher is reset afterwards.
  std::string finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256(std::string_view data);  // raw digest
std::string sha512(std::string_view data);  // raw digest
std::string toHex(std::string_view bytes);
std::string fromHex(std::string_view hex);  // throws Error on malformed input

struct FileDigests {
  std::uint64_t size = 0;
  std::string sha256;  // raw
  std::string sha512;  // raw
};
// One pass over the file computing both digests.
FileDigests hashFile(const std::filesystem::path& path);

}  // namespace imgpipe
