#include "protocol/ids.h"

#include <algorithm>

namespace imgpipe::ids {
namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isLowerHex(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f');
}
bool isAlnum(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool allOf(std::string_view s, auto pred) {
  return std::all_of(s.begin(), s.end(), pred);
}

bool hexOf(std::string_view s, std::size_t n) {
  return s.size() == n && allOf(s, isLowerHex);
}

bool decimal(std::string_view s, std::size_t maxDigits) {
  return !s.empty() && s.size() <= maxDigits && allOf(s, isDigit) && (s == "0" || s[0] != '0');
}

// [A-Za-z0-9._-]{1,max}, alphanumeric first: a file name that cannot be "." or "..".
bool simpleName(std::string_view s, std::size_t max) {
  return !s.empty() && s.size() <= max && isAlnum(s[0]) &&
         allOf(s, [](char c) { return isAlnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool z85(std::string_view s) {
  static constexpr std::string_view kAlphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  return s.size() == 40 && allOf(s, [](char c) { return kAlphabet.find(c) != kAlphabet.npos; });
}

bool taskId(std::string_view s) {
  auto a = s.find('.');
  if (a == s.npos) return false;
  auto b = s.find('.', a + 1);
  if (b == s.npos) return false;
  return decimal(s.substr(0, a), 18) && decimal(s.substr(a + 1, b - a - 1), 6) &&
         decimal(s.substr(b + 1), 6);
}

bool buildId(std::string_view s) {
  if (s.empty() || s.size() > 200) return false;
  while (true) {
    auto slash = s.find('/');
    if (!simpleName(s.substr(0, slash), 200)) return false;
    if (slash == s.npos) return true;
    s.remove_prefix(slash + 1);
  }
}

// tcp://host:port, nothing else: no other transport (ipc:// names a path on the fetcher's host),
// no interface name, no wildcard, no user or path part.
bool dataEndpoint(std::string_view s) {
  constexpr std::string_view scheme = "tcp://";
  if (!s.starts_with(scheme)) return false;
  s.remove_prefix(scheme.size());
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  const auto host = s.substr(0, colon), port = s.substr(colon + 1);
  if (!decimal(port, 5) || port.size() > 5) return false;
  unsigned n = 0;
  for (char c : port)
    n = n * 10 + static_cast<unsigned>(c - '0');
  if (n == 0 || n > 65535) return false;
  if (host.starts_with("[") && host.ends_with("]") && host.size() > 2)
    return host.size() <= 47 && allOf(host.substr(1, host.size() - 2), [](char c) {
             return isLowerHex(c) || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
           });
  return !host.empty() && host.size() <= 253 && isAlnum(host.front()) &&
         allOf(host, [](char c) { return isAlnum(c) || c == '.' || c == '-' || c == '_'; });
}

bool bundlePath(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  int depth = 0;
  while (true) {
    auto slash = s.find('/');
    auto part = s.substr(0, slash);
    if (part.empty() || part == "." || part == ".." || ++depth > 16 || !allOf(part, [](char c) {
          return isAlnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '@' || c == '=';
        }))
      return false;
    if (slash == s.npos) return true;
    s.remove_prefix(slash + 1);
  }
}

}  // namespace

std::string_view toString(Kind kind) {
  switch (kind) {
    case Kind::imageId:
      return "image id (64 lowercase hex digits)";
    case Kind::deltaId:
      return "delta id (delta-<64 hex>-<64 hex>)";
    case Kind::artifactId:
      return "artifact id (64 lowercase hex digits, or delta-<64 hex>-<64 hex>)";
    case Kind::digest:
      return "sha256 digest (64 lowercase hex digits)";
    case Kind::sha512:
      return "sha512 digest (128 lowercase hex digits)";
    case Kind::jobId:
      return "job id (a decimal number)";
    case Kind::taskId:
      return "task id (<job>.<step>.<attempt>)";
    case Kind::imageName:
      return "image name ([a-z0-9._-], at most 128 characters)";
    case Kind::imageVersion:
      return "image version ([A-Za-z0-9._+~-], at most 64 characters, alphanumeric first)";
    case Kind::agentName:
      return "agent name ([A-Za-z0-9._-], at most 64 characters, alphanumeric first)";
    case Kind::curveKey:
      return "CurveZMQ public key (40 Z85 characters)";
    case Kind::buildId:
      return "build id ('/'-separated names of [A-Za-z0-9._-])";
    case Kind::bundlePath:
      return "bundle path (a relative path of plain names, no '..')";
    case Kind::fsUuid:
      return "filesystem UUID ([A-Za-z0-9-], at most 64 characters, alphanumeric first)";
    case Kind::fsLabel:
      return "filesystem label ([A-Za-z0-9._-], at most 64 characters, alphanumeric first)";
    case Kind::dataEndpoint:
      return "data endpoint (tcp://<host>:<port>)";
  }
  return "identifier";
}

bool valid(Kind kind, std::string_view v) {
  switch (kind) {
    case Kind::imageId:
    case Kind::digest:
      return hexOf(v, 64);
    case Kind::deltaId:
      return splitDelta(v).has_value();
    case Kind::artifactId:
      return hexOf(v, 64) || splitDelta(v).has_value();
    case Kind::sha512:
      return hexOf(v, 128);
    case Kind::jobId:
      return decimal(v, 18);
    case Kind::taskId:
      return taskId(v);
    case Kind::imageName:
      return !v.empty() && v.size() <= 128 && v != "." && v != ".." && allOf(v, [](char c) {
        return isDigit(c) || (c >= 'a' && c <= 'z') || c == '.' || c == '_' || c == '-';
      });
    case Kind::imageVersion:
      return !v.empty() && v.size() <= 64 && isAlnum(v[0]) && allOf(v, [](char c) {
        return isAlnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '~';
      });
    case Kind::agentName:
      return simpleName(v, 64);
    case Kind::curveKey:
      return z85(v);
    case Kind::buildId:
      return buildId(v);
    case Kind::bundlePath:
      return bundlePath(v);
    case Kind::fsUuid:
      // ext4/xfs/btrfs/LUKS 8-4-4-4-12 hex, vfat XXXX-XXXX, NTFS 16 hex: never '/', '.' or ' '.
      return !v.empty() && v.size() <= 64 && isAlnum(v[0]) &&
             allOf(v, [](char c) { return isAlnum(c) || c == '-'; });
    case Kind::fsLabel:
      return simpleName(v, 64);
    case Kind::dataEndpoint:
      return dataEndpoint(v);
  }
  return false;
}

std::optional<DeltaParts> splitDelta(std::string_view v) {
  constexpr std::string_view kPrefix = "delta-";
  if (v.size() != kPrefix.size() + 64 + 1 + 64 || !v.starts_with(kPrefix)) return std::nullopt;
  auto basis = v.substr(kPrefix.size(), 64);
  auto target = v.substr(kPrefix.size() + 65, 64);
  if (v[kPrefix.size() + 64] != '-' || !hexOf(basis, 64) || !hexOf(target, 64)) return std::nullopt;
  return DeltaParts{basis, target};
}

std::string deltaId(std::string_view basis, std::string_view target) {
  return "delta-" + std::string(basis) + "-" + std::string(target);
}

std::string printable(std::string_view v, std::size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : v) {
    if (out.size() >= max) {
      out += "...(" + std::to_string(v.size()) + " bytes)";
      break;
    }
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> problem(std::string_view field, Kind kind, std::string_view value) {
  if (valid(kind, value)) return std::nullopt;
  return std::string(field) + ": '" + printable(value) + "' is not a valid " +
         std::string(toString(kind));
}

const std::string& require(std::string_view field, Kind kind, const std::string& value) {
  if (auto why = problem(field, kind, value)) throw InvalidId(*why);
  return value;
}

std::string shortForm(std::string_view id) {
  return std::string(id.substr(0, 16));
}

}  // namespace imgpipe::ids
