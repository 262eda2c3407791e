#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "definition/outputs.h"

namespace imgpipe::transfer {

enum class ArtifactKind { image, delta };
enum class DeltaFormat { none, rdiffXz, qcow2Clusters };

std::string_view toString(DeltaFormat format);

// Everything a receiver needs to know about an artifact before the first chunk: the trust anchor
// of a transfer. Value type; the wire form is protocol/schema/transfer.capnp's Manifest.
struct Manifest {
  ArtifactKind kind = ArtifactKind::image;
  std::string imageName;
  std::string imageVersion;
  std::uint64_t size = 0;
  std::string sha256;  // raw 32 bytes
  std::string sha512;  // raw 64 bytes
  std::uint32_t chunkSize = 0;
  std::string chunkHashes;  // raw sha256 of each chunk, concatenated
  std::string basisId;      // delta only
  std::string targetId;     // delta only
  std::uint64_t virtualSize = 0;
  std::string metadata;  // build manifest (JSON)
  DeltaFormat deltaFormat = DeltaFormat::none;
  std::uint32_t deltaBlockSize = 0;
  // The output the image is: versions of one image name and output are each other's delta bases.
  definition::OutputKind output = definition::OutputKind::qcow2;

  // The artifact's id: sha256 hex of an image; for a delta, a name derived from basis and target,
  // so every hop that asks for the same delta finds the same artifact.
  std::string id() const;
  std::uint32_t chunkCount() const;
  std::uint32_t chunkLength(std::uint32_t index) const;
  std::uint64_t chunkOffset(std::uint32_t index) const {
    return static_cast<std::uint64_t>(index) * chunkSize;
  }
  std::string_view chunkHash(std::uint32_t index) const {
    return std::string_view(chunkHashes).substr(static_cast<size_t>(index) * 32, 32);
  }
};

// The wire bytes of a manifest. Encode once, at the origin; everyone else keeps the bytes as
// received, because the digest is over these exact bytes.
std::string encodeManifest(const Manifest& manifest);
// sha256 hex of the encoded bytes.
std::string manifestDigest(std::string_view encoded);

// Never throws: a malformed or inconsistent manifest (hash lengths, chunk count vs size, a
// chunk size out of range) yields nullopt and the reason in *error.
std::optional<Manifest> decodeManifest(std::string_view encoded, std::string* error);

struct ManifestOptions {
  std::string imageName;
  std::string imageVersion;
  std::string metadata;
  std::uint32_t chunkSize = 1 << 20;
  ArtifactKind kind = ArtifactKind::image;
  std::string basisId, targetId;
  DeltaFormat deltaFormat = DeltaFormat::none;
  std::uint32_t deltaBlockSize = 0;
  definition::OutputKind output = definition::OutputKind::qcow2;
};

// Reads the file once: chunk hashes, whole-file SHA-256 and SHA-512, and the virtual size when it
// is a qcow2 (from its header; the file size otherwise).
Manifest buildManifest(const std::filesystem::path& file, const ManifestOptions& options);
// The same from an open file (read from where it is); `file` only names it in errors.
Manifest buildManifest(int fd, const std::filesystem::path& file, const ManifestOptions& options);

constexpr std::uint32_t kMinChunkSize = 64 << 10;
constexpr std::uint32_t kMaxChunkSize = 16 << 20;

}  // namespace imgpipe::transfer
