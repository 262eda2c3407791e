#include "agent-glance/registration/image_id.h"

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "common/error.h"
#include "common/hash.h"

namespace imgpipe::glance {

std::string uuid5(std::string_view namespaceUuid, std::string_view name) {
  std::string hex;
  for (char c : namespaceUuid)
    if (c != '-') hex.push_back(c);
  if (hex.size() != 32 || namespaceUuid.size() != 36)
    throw Error("not a UUID: '" + std::string(namespaceUuid) + "'");
  const std::string nsBytes = fromHex(hex);

  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx) throw std::bad_alloc();
  const bool ok = EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx.get(), nsBytes.data(), nsBytes.size()) == 1 &&
                  EVP_DigestUpdate(ctx.get(), name.data(), name.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx.get(), digest.data(), &len) == 1;
  if (!ok || len < 16) throw std::runtime_error("SHA-1 failed");

  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);  // version 5
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string h = toHex(std::string_view(reinterpret_cast<const char*>(digest.data()), 16));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::string imageIdFor(std::string_view buildId, unsigned generation,
                       definition::OutputKind output) {
  std::string name(buildId);
  if (output != definition::OutputKind::qcow2)
    name += "/" + std::string(definition::toString(output));
  if (generation > 0) name += "/" + std::to_string(generation);
  return uuid5(kImageIdNamespace, name);
}

}  // namespace imgpipe::glance
