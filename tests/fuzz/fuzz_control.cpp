// libFuzzer: the control plane's decoder and its identifier check. Every byte string either
// decodes or is rejected with a reason; a decoded message can be read in full and checked for
// ids without throwing: what the coordinator's and agents' handlers rely on.
#include <capnp/pretty-print.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "protocol/codec.h"
#include "protocol/id_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  imgpipe::proto::DecodeLimits limits;
  limits.maxFrameBytes = 1 << 20;
  auto result = imgpipe::proto::decodeAs<imgpipe::proto::Envelope>(data, size, limits);
  if (result.index() != 0) return 0;
  auto& msg = std::get<0>(result);
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] {
                 (void)capnp::prettyPrint(msg->root()).flatten();
                 (void)imgpipe::proto::checkIds(msg->root());
               })) {
    fprintf(stderr, "read after decode threw: %s\n", e->getDescription().cStr());
    abort();
  }
  return 0;
}
