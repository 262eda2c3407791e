#include "definition/bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/beneath.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "definition/parse_definition.h"
#include "protocol/ids.h"

namespace imgpipe::definition {
namespace {

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

void writeAll(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("cannot write " + what);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::optional<std::string> normaliseBundlePath(std::string_view path) {
  // "./a//b" -> "a/b"; the grammar itself (protocol/ids.h) has no "." or empty names.
  if (path.empty() || path.front() == '/') return std::nullopt;
  std::string out;
  for (auto part : components(path)) {
    if (part.empty() || part == ".") continue;
    if (!out.empty()) out += '/';
    out += part;
  }
  if (!ids::valid(ids::Kind::bundlePath, out)) return std::nullopt;
  return out;
}

std::vector<LocalReference> localReferences(const ImageDefinition& def) {
  std::vector<LocalReference> refs;
  auto add = [&](const ContentSource& c, std::string field) {
    if (c.kind == ContentSource::Kind::file) refs.push_back({std::move(field), c.text});
  };
  for (std::size_t i = 0; i < def.files.size(); ++i)
    add(def.files[i].content, "files[" + std::to_string(i) + "].source");
  for (std::size_t i = 0; i < def.scripts.size(); ++i)
    add(def.scripts[i].content, "scripts[" + std::to_string(i) + "].source");
  for (std::size_t i = 0; i < def.repositories.size(); ++i)
    add(def.repositories[i].key, "repositories[" + std::to_string(i) + "].key_file");
  return refs;
}

const std::string& Bundle::rootText() const {
  auto it = files.find(rootPath);
  if (it == files.end())
    throw Error("the definition bundle does not hold its definition '" + rootPath + "'");
  return it->second;
}

const std::string* Bundle::find(std::string_view path) const {
  auto it = files.find(std::string(path));
  return it == files.end() ? nullptr : &it->second;
}

std::string Bundle::digest() const {
  // Length-prefixed, so no two different bundles encode alike.
  Hasher h(HashAlgo::sha256);
  h.update(std::string_view("imgpipe-bundle-1\n"));
  h.update(rootPath + "\n");
  for (const auto& [path, data] : files) {
    h.update(path + "\n" + std::to_string(data.size()) + "\n");
    h.update(data);
  }
  return toHex(h.finish());
}

std::size_t Bundle::totalBytes() const {
  std::size_t n = 0;
  for (const auto& [path, data] : files)
    n += data.size();
  return n;
}

void checkBundle(const Bundle& bundle, const ImageDefinition& def, const BundleLimits& limits) {
  if (bundle.files.size() > limits.files)
    throw Error("the definition bundle holds " + std::to_string(bundle.files.size()) +
                " files, more than the limit of " + std::to_string(limits.files));
  for (const auto& [path, data] : bundle.files) {
    auto norm = normaliseBundlePath(path);
    if (!norm || *norm != path)
      throw Error("the definition bundle holds a file named '" + path +
                  "', which is not a relative path of plain names");
    if (data.size() > limits.fileBytes)
      throw Error("bundle file '" + path + "' is " + std::to_string(data.size()) +
                  " bytes, more than the limit of " + std::to_string(limits.fileBytes));
  }
  if (bundle.totalBytes() > limits.totalBytes)
    throw Error("the definition bundle is " + std::to_string(bundle.totalBytes()) +
                " bytes, more than the limit of " + std::to_string(limits.totalBytes) +
                "; put large files in the build agent's sources_dir or fetch them by url:");
  (void)bundle.rootText();
  for (const auto& ref : localReferences(def))
    if (!bundle.find(ref.path))
      throw Error(def.sourceName + ": " + ref.field + ": '" + ref.path +
                  "' is not in the definition's bundle (it is read from beside the definition "
                  "when you submit)");
}

Bundle loadBundle(const std::filesystem::path& definitionFile, const BundleLimits& limits) {
  const auto dir = std::filesystem::absolute(definitionFile).parent_path();
  Bundle b;
  b.rootPath = definitionFile.filename().string();
  if (!normaliseBundlePath(b.rootPath))
    throw Error("definition file name '" + b.rootPath + "' is not a plain file name");
  b.files[b.rootPath] = readFileBeneath(dir, b.rootPath, limits.fileBytes);
  auto def = parseDefinition(b.rootText(), definitionFile.string());
  for (const auto& ref : localReferences(def)) {
    if (b.find(ref.path)) continue;
    try {
      b.files[ref.path] = readFileBeneath(dir, ref.path, limits.fileBytes);
    } catch (const Error& e) {
      throw Error(definitionFile.string() + ": " + ref.field + ": " + e.what());
    }
  }
  checkBundle(b, def, limits);
  return b;
}

Bundle bundleOf(std::string rootPath, std::string text) {
  Bundle b;
  b.rootPath = std::move(rootPath);
  b.files[b.rootPath] = std::move(text);
  return b;
}

void writeBundle(const Bundle& bundle, const std::filesystem::path& dir) {
  UniqueFd root = openDirectory(dir);
  for (const auto& [path, data] : bundle.files) {
    auto parts = components(path);
    std::string prefix;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      prefix += (prefix.empty() ? "" : "/") + std::string(parts[i]);
      // Each level is created in a descriptor of its parent, itself opened beneath the root.
      const auto slash = prefix.rfind('/');
      UniqueFd parentFd;
      int parent = root.get();
      if (slash != std::string::npos) {
        parentFd = openBeneath(root.get(), prefix.substr(0, slash), O_PATH | O_DIRECTORY, 0, dir);
        parent = parentFd.get();
      }
      if (::mkdirat(parent, std::string(parts[i]).c_str(), 0755) != 0 && errno != EEXIST)
        throwErrno("cannot create " + (dir / prefix).string());
    }
    UniqueFd fd =
        openBeneath(root.get(), path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644, dir);
    writeAll(fd.get(), data, (dir / path).string());
  }
}

}  // namespace imgpipe::definition
