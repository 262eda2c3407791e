// libFuzzer: the transfer plane's message decoder (ids checked at decode) and the manifest
// decoder (the trust anchor every hop stores). Either decodes or says why; never throws.
#include <cstdint>
#include <string_view>

#include "transfer/manifest.h"
#include "transfer/transfer_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)imgpipe::transfer::wire::decode(data, size);
  std::string why;
  if (auto m = imgpipe::transfer::decodeManifest(
          std::string_view(reinterpret_cast<const char*>(data), size), &why)) {
    // A manifest that decoded is consistent: every chunk has a hash and a length.
    for (std::uint32_t i = 0; i < m->chunkCount() && i < 64; ++i)
      if (m->chunkHash(i).size() != 32 || m->chunkLength(i) == 0) __builtin_trap();
    (void)m->id();
  }
  return 0;
}
