#pragma once

// The one grammar of every identifier that crosses a trust boundary: artifact and delta ids,
// digests, job and task ids, image names and versions, agent names, CurveZMQ keys, and the
// filesystem UUIDs and labels a base image carries (they become /dev/disk/by-* link names).
// Identifiers are data, never paths: each grammar admits no '/', no "..", no NUL and no control
// character, and has a length bound, so a value that passed its check can name a file, a Glance
// property or a log field without further escaping. Checked where a value enters (decode of every
// control and transfer message, the coordinator before it stores or forwards what an agent
// reported, the artifact store) and nowhere re-derived.

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace imgpipe::ids {

enum class Kind {
  imageId,       // 64 lowercase hex: the sha256 of an image
  deltaId,       // delta-<imageId basis>-<imageId target>
  artifactId,    // an imageId or a deltaId
  digest,        // 64 lowercase hex (a manifest digest, a definition digest)
  sha512,        // 128 lowercase hex
  jobId,         // decimal, 1..18 digits, no leading zero
  taskId,        // <jobId>.<step index>.<attempt>
  imageName,     // [a-z0-9._-], 1..128, not "." or ".."
  imageVersion,  // [A-Za-z0-9._+~-], 1..64, starting alphanumeric
  agentName,     // [A-Za-z0-9._-], 1..64, starting alphanumeric
  curveKey,      // a Z85 CurveZMQ public key: 40 characters
  buildId,       // <digest coordinator id>/<jobId>/<imageId>: the Glance image's stable name
  bundlePath,    // a relative path of names of [A-Za-z0-9._+@=-] (none "." or ".."), <= 255
                 // characters and 16 levels: a file travelling with a definition
  fsUuid,        // a filesystem UUID as blkid reports it: [A-Za-z0-9-], 1..64, alphanumeric first
  fsLabel,       // a filesystem label: [A-Za-z0-9._-], 1..64, alphanumeric first
  dataEndpoint,  // where an agent's artifact server is reached: tcp://<host>:<port>, the host a
                 // DNS name (as gethostname() gives it) or IPv4 address ([A-Za-z0-9._-], <= 253) or
                 // [IPv6], port 1..65535
};

std::string_view toString(Kind kind);

// True when `value` is a well-formed identifier of that kind.
bool valid(Kind kind, std::string_view value);

// Why `value` is not a `kind`, naming `field` and showing the value escaped and clipped (a
// hostile id may hold control characters or megabytes); nullopt when it is valid.
std::optional<std::string> problem(std::string_view field, Kind kind, std::string_view value);

// A malformed identifier: what names the field, the kind and the (escaped) value.
class InvalidId : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Throws InvalidId unless `value` is a valid `kind`; returns it otherwise.
const std::string& require(std::string_view field, Kind kind, const std::string& value);

// For a deltaId: its basis and target image ids (nullopt for anything else).
struct DeltaParts {
  std::string_view basis;
  std::string_view target;
};
std::optional<DeltaParts> splitDelta(std::string_view deltaId);
std::string deltaId(std::string_view basisImageId, std::string_view targetImageId);

// `value` with control and non-ASCII bytes escaped and clipped to `max` characters: safe to put
// in a log line or an error message.
std::string printable(std::string_view value, std::size_t max = 80);

// An artifact, delta or manifest id as a log line shows it: its first 16 characters (64 bits of
// a digest tell the artifacts of any one store apart).
std::string shortForm(std::string_view id);

}  // namespace imgpipe::ids
