// libFuzzer target: every byte string fed to the decoders either decodes or is rejected with a
// reason — never a crash, a hang or an exception. After a successful decode, the whole message
// is read again field by field (stringified), which must not throw either: that is the
// guarantee the coordinator's and agents' handlers rely on.
#include <capnp/pretty-print.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol/codec.h"
#include "protocol/schema/transfer.capnp.h"

namespace {

template <typename Root>
void check(const uint8_t* data, size_t size) {
  imgpipe::proto::DecodeLimits limits;
  limits.maxFrameBytes = 1 << 20;
  auto result = imgpipe::proto::decodeAs<Root>(data, size, limits);
  if (result.index() != 0) return;
  auto& msg = std::get<0>(result);
  KJ_IF_MAYBE (e, kj::runCatchingExceptions(
                      [&] { (void)capnp::prettyPrint(msg->root()).flatten(); })) {
    // A message that passed decode must be readable in full.
    fprintf(stderr, "read after decode threw: %s\n", e->getDescription().cStr());
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check<imgpipe::proto::Envelope>(data, size);
  check<imgpipe::proto::TransferMessage>(data, size);
  check<imgpipe::proto::Manifest>(data, size);
  return 0;
}
