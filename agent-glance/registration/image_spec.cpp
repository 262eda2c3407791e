#include "agent-glance/registration/image_spec.h"

#include <cctype>

namespace imgpipe::glance {
std::map<std::string, std::string> glanceProperties(const definition::ResolvedGlance& spec,
                                                    const Provenance& provenance) {
  auto props = spec.properties;
  props["imgpipe_build_id"] = provenance.buildId;
  props["imgpipe_image"] = spec.name;
  if (!spec.version.empty()) props["imgpipe_version"] = spec.version;
  if (!provenance.sha256.empty()) props["imgpipe_sha256"] = provenance.sha256;
  if (!provenance.manifestDigest.empty())
    props["imgpipe_manifest_digest"] = provenance.manifestDigest;
  props["imgpipe_output"] = definition::toString(provenance.output);
  return props;
}

int compareVersions(std::string_view a, std::string_view b) {
  auto isDigit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isDigit(a[i]) && isDigit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && isDigit(a[ie]))
        ++ie;
      while (je < b.size() && isDigit(b[je]))
        ++je;
      // Compare as numbers without overflow: skip leading zeros, then length, then digits.
      auto na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      while (na.size() > 1 && na.front() == '0')
        na.remove_prefix(1);
      while (nb.size() > 1 && nb.front() == '0')
        nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
      if (int c = na.compare(nb); c != 0) return c < 0 ? -1 : 1;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j] ? -1 : 1;
      ++i;
      ++j;
    }
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return 0;
}

}  // namespace imgpipe::glance
