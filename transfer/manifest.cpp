#include "transfer/manifest.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/fd_io.h"
#include "common/hash.h"
#include "common/unique_fd.h"
#include "protocol/codec.h"
#include "protocol/ids.h"
#include "protocol/schema/transfer.capnp.h"
#include "transfer/transfer_wire.h"

namespace imgpipe::transfer {
namespace {

constexpr std::uint16_t kFormatVersion = 1;

proto::DeltaFormat toProto(DeltaFormat f) {
  switch (f) {
    case DeltaFormat::rdiffXz:
      return proto::DeltaFormat::RDIFF_XZ;
    case DeltaFormat::qcow2Clusters:
      return proto::DeltaFormat::QCOW2_CLUSTERS;
    case DeltaFormat::none:
      break;
  }
  return proto::DeltaFormat::NONE;
}

// The virtual disk size recorded in a qcow2 header (big-endian u64 at offset 24), or 0.
std::uint64_t qcow2VirtualSize(const unsigned char* header, size_t n) {
  if (n < 32 || std::memcmp(header, "QFI\xfb", 4) != 0) return 0;
  std::uint64_t v = 0;
  for (int i = 24; i < 32; ++i)
    v = v << 8 | header[i];
  return v;
}

}  // namespace

proto::DeltaFormat deltaFormatToProto(DeltaFormat f) {
  return toProto(f);
}

DeltaFormat deltaFormatFromProto(proto::DeltaFormat f) {
  switch (f) {
    case proto::DeltaFormat::RDIFF_XZ:
      return DeltaFormat::rdiffXz;
    case proto::DeltaFormat::QCOW2_CLUSTERS:
      return DeltaFormat::qcow2Clusters;
    default:
      return DeltaFormat::none;
  }
}

std::string_view toString(DeltaFormat format) {
  switch (format) {
    case DeltaFormat::rdiffXz:
      return "rdiff+xz";
    case DeltaFormat::qcow2Clusters:
      return "qcow2-clusters";
    case DeltaFormat::none:
      break;
  }
  return "none";
}

std::string Manifest::id() const {
  if (kind == ArtifactKind::delta) return ids::deltaId(basisId, targetId);
  return toHex(sha256);
}

std::uint32_t Manifest::chunkCount() const {
  if (chunkSize == 0) return 0;
  return static_cast<std::uint32_t>((size + chunkSize - 1) / chunkSize);
}

std::uint32_t Manifest::chunkLength(std::uint32_t index) const {
  const std::uint64_t offset = chunkOffset(index);
  if (offset >= size) return 0;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(chunkSize, size - offset));
}

std::string encodeManifest(const Manifest& m) {
  capnp::MallocMessageBuilder message;
  auto b = message.initRoot<proto::Manifest>();
  b.setFormatVersion(kFormatVersion);
  b.setKind(m.kind == ArtifactKind::delta ? proto::ArtifactKind::DELTA
                                          : proto::ArtifactKind::IMAGE);
  // Every byte, a NUL too: what is encoded is exactly what the receiver's checks see.
  auto text = [](const std::string& s) { return capnp::Text::Reader(s.data(), s.size()); };
  b.setImageName(text(m.imageName));
  b.setImageVersion(text(m.imageVersion));
  b.setSize(m.size);
  auto bytes = [](const std::string& s) {
    return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
  };
  b.setSha256(bytes(m.sha256));
  b.setSha512(bytes(m.sha512));
  b.setChunkSize(m.chunkSize);
  b.setChunkHashes(bytes(m.chunkHashes));
  b.setBasisId(text(m.basisId));
  b.setTargetId(text(m.targetId));
  b.setVirtualSize(m.virtualSize);
  b.setMetadata(text(m.metadata));
  b.setDeltaFormat(toProto(m.deltaFormat));
  b.setDeltaBlockSize(m.deltaBlockSize);
  b.setOutput(std::string(definition::toString(m.output)));
  auto words = capnp::messageToFlatArray(message);
  auto out = words.asBytes();
  return std::string(reinterpret_cast<const char*>(out.begin()), out.size());
}

std::string manifestDigest(std::string_view encoded) {
  return toHex(imgpipe::sha256(encoded));
}

std::optional<Manifest> decodeManifest(std::string_view encoded, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<Manifest> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  proto::DecodeLimits limits;
  limits.maxFrameBytes = wire::kMaxReplyFrame;  // 32 bytes per chunk: 1 TiB at 1 MiB chunks
  limits.traversalLimitWords = (128u << 20) / 8;
  auto decoded = proto::decodeAs<proto::Manifest>(encoded.data(), encoded.size(), limits);
  if (auto* why = std::get_if<std::string>(&decoded)) return fail("manifest: " + *why);
  auto r = std::get<0>(decoded)->root();
  if (r.getFormatVersion() != kFormatVersion)
    return fail("manifest format " + std::to_string(r.getFormatVersion()) +
                " is not supported (this side reads format " + std::to_string(kFormatVersion) +
                ")");
  Manifest m;
  m.kind = r.getKind() == proto::ArtifactKind::DELTA ? ArtifactKind::delta : ArtifactKind::image;
  // Texts with their full size: a NUL inside must reach the checks below, not cut the value.
  m.imageName = wire::toString(r.getImageName());
  m.imageVersion = wire::toString(r.getImageVersion());
  m.size = r.getSize();
  auto str = [](capnp::Data::Reader d) {
    return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
  };
  m.sha256 = str(r.getSha256());
  m.sha512 = str(r.getSha512());
  m.chunkSize = r.getChunkSize();
  m.chunkHashes = str(r.getChunkHashes());
  m.basisId = wire::toString(r.getBasisId());
  m.targetId = wire::toString(r.getTargetId());
  m.virtualSize = r.getVirtualSize();
  m.metadata = wire::toString(r.getMetadata());
  m.deltaFormat = deltaFormatFromProto(r.getDeltaFormat());
  m.deltaBlockSize = r.getDeltaBlockSize();
  const std::string output = wire::toString(r.getOutput());
  const auto kind = definition::parseOutputField(output);
  if (!kind || definition::carrierOf(*kind) != *kind)
    return fail("manifest: output '" + output.substr(0, 16) +
                "' is not a file this version carries");
  m.output = *kind;

  if (m.sha256.size() != 32 || m.sha512.size() != 64)
    return fail("manifest: whole-file digests have the wrong length");
  if (m.chunkSize < kMinChunkSize || m.chunkSize > kMaxChunkSize)
    return fail("manifest: chunk size " + std::to_string(m.chunkSize) + " is out of range");
  if (m.chunkHashes.size() != static_cast<size_t>(m.chunkCount()) * 32)
    return fail("manifest: " + std::to_string(m.chunkHashes.size() / 32) + " chunk hashes for " +
                std::to_string(m.chunkCount()) + " chunks");
  // Identifiers are data, never paths: what a manifest names may later name a file or a Glance
  // property, so each follows its grammar before anything else looks at it.
  auto check = [&](std::string_view field, ids::Kind kind, const std::string& value) {
    auto why = ids::problem(field, kind, value);
    if (why && error) *error = "manifest " + *why;
    return !why;
  };
  if (!check("imageName", ids::Kind::imageName, m.imageName) ||
      !check("imageVersion", ids::Kind::imageVersion, m.imageVersion))
    return std::nullopt;
  if (m.kind == ArtifactKind::delta) {
    if (!check("basisId", ids::Kind::imageId, m.basisId) ||
        !check("targetId", ids::Kind::imageId, m.targetId))
      return std::nullopt;
  } else if (!m.basisId.empty() || !m.targetId.empty()) {
    return fail("manifest: an image with a basisId or targetId (only deltas have them)");
  }
  return m;
}

Manifest buildManifest(const std::filesystem::path& file, const ManifestOptions& options) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("cannot open " + file.string());
  return buildManifest(fd.get(), file, options);
}

Manifest buildManifest(int fd, const std::filesystem::path& file, const ManifestOptions& options) {
  if (options.chunkSize < kMinChunkSize || options.chunkSize > kMaxChunkSize)
    throw Error("chunk size " + std::to_string(options.chunkSize) + " is out of range (" +
                std::to_string(kMinChunkSize) + ".." + std::to_string(kMaxChunkSize) + ")");
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Manifest m;
  m.kind = options.kind;
  m.imageName = options.imageName;
  m.imageVersion = options.imageVersion;
  m.metadata = options.metadata;
  m.chunkSize = options.chunkSize;
  m.basisId = options.basisId;
  m.targetId = options.targetId;
  m.deltaFormat = options.deltaFormat;
  m.deltaBlockSize = options.deltaBlockSize;
  m.output = options.output;
  Hasher whole256(HashAlgo::sha256), whole512(HashAlgo::sha512), chunk(HashAlgo::sha256);
  std::vector<std::byte> buf(options.chunkSize);
  for (;;) {
    const ssize_t got = readFully(fd, buf.data(), buf.size());
    if (got < 0) throwErrno("cannot read " + file.string());
    const auto filled = static_cast<size_t>(got);
    if (filled == 0) break;
    std::span<const std::byte> part(buf.data(), filled);
    if (m.size == 0)
      m.virtualSize = qcow2VirtualSize(reinterpret_cast<const unsigned char*>(buf.data()), filled);
    whole256.update(part);
    whole512.update(part);
    chunk.update(part);
    m.chunkHashes += chunk.finish();
    m.size += filled;
    if (filled < buf.size()) break;
  }
  m.sha256 = whole256.finish();
  m.sha512 = whole512.finish();
  if (m.virtualSize == 0) m.virtualSize = m.size;
  return m;
}

}  // namespace imgpipe::transfer
