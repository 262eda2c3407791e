#include "common/hash.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <stdexcept>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace imgpipe {

struct Hasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
  const EVP_MD* md = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Hasher::Hasher(HashAlgo algo) : impl_(std::make_unique<Impl>()) {
  impl_->md = algo == HashAlgo::sha256 ? EVP_sha256() : EVP_sha512();
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, impl_->md, nullptr) != 1)
    throw std::runtime_error("OpenSSL digest initialisation failed");
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(std::span<const std::byte> data) {
  if (EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1)
    throw std::runtime_error("OpenSSL digest update failed");
}

std::string Hasher::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, out, &len) != 1 ||
      EVP_DigestInit_ex(impl_->ctx, impl_->md, nullptr) != 1)
    throw std::runtime_error("OpenSSL digest final failed");
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string sha256(std::string_view data) {
  Hasher h(HashAlgo::sha256);
  h.update(data);
  return h.finish();
}

std::string sha512(std::string_view data) {
  Hasher h(HashAlgo::sha512);
  h.update(data);
  return h.finish();
}

std::string toHex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

std::string fromHex(std::string_view hex) {
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw Error("not a hex digit '" + std::string(1, c) + "' in '" + std::string(hex) + "'");
  };
  if (hex.size() % 2 != 0) throw Error("odd-length hex string '" + std::string(hex) + "'");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

FileDigests hashFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open " + path.string());
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  Hasher h256(HashAlgo::sha256), h512(HashAlgo::sha512);
  std::vector<std::byte> buf(1 << 20);
  FileDigests d;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("cannot read " + path.string());
    }
    if (n == 0) break;
    std::span<const std::byte> part(buf.data(), static_cast<size_t>(n));
    h256.update(part);
    h512.update(part);
    d.size += static_cast<std::uint64_t>(n);
  }
  d.sha256 = h256.finish();
  d.sha512 = h512.finish();
  return d;
}

}  // namespace imgpipe
