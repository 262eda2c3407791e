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

bool holdsTree(const Bundle& bundle, const std::string& dir) {
  auto it = bundle.files.lower_bound(dir + "/");
  return it != bundle.files.end() && it->first.starts_with(dir + "/");
}

// Every regular file beneath `dir`/`tree`, by bundle path. Symlinks are read through
// readFileBeneath, so one that leads out of the definition's directory is refused.
std::vector<std::string> filesOfTree(const std::filesystem::path& dir, const std::string& tree,
                                     std::size_t maxFiles) {
  std::vector<std::string> out;
  std::error_code ec;
  const auto top = dir / tree;
  if (!std::filesystem::is_directory(std::filesystem::symlink_status(top, ec)))
    return {tree};  // a single file (or missing: reading it says so)
  for (auto it = std::filesystem::recursive_directory_iterator(top, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const auto st = it->symlink_status(ec);
    if (std::filesystem::is_directory(st)) continue;
    if (!std::filesystem::is_regular_file(st) && !std::filesystem::is_symlink(st)) continue;
    out.push_back(tree + "/" + std::filesystem::relative(it->path(), top).generic_string());
    if (out.size() > maxFiles)
      throw Error("'" + tree + "' holds more than " + std::to_string(maxFiles) +
                  " files, the limit of a definition's bundle");
  }
  if (ec) throw Error("cannot list '" + tree + "': " + ec.message());
  return out;
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
  if (def.ansible) {
    refs.push_back({"ansible.playbook", def.ansible->playbook});
    for (std::size_t i = 0; i < def.ansible->include.size(); ++i)
      refs.push_back({"ansible.include[" + std::to_string(i) + "]", def.ansible->include[i], true});
    for (std::size_t i = 0; i < def.ansible->rolesPath.size(); ++i)
      refs.push_back(
          {"ansible.roles_path[" + std::to_string(i) + "]", def.ansible->rolesPath[i], true});
  }
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

void checkBundleSize(const Bundle& bundle, const BundleLimits& limits) {
  if (bundle.totalBytes() > limits.totalBytes)
    throw Error("the definition bundle is " + std::to_string(bundle.totalBytes()) +
                " bytes, more than the limit of " + std::to_string(limits.totalBytes) +
                "; put large files in the build agent's sources_dir or fetch them by url:");
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
  checkBundleSize(bundle, limits);
  (void)bundle.rootText();
  const auto refs = localReferences(def);
  for (const auto& ref : refs)
    if (!bundle.find(ref.path) && !(ref.tree && holdsTree(bundle, ref.path)))
      throw Error(def.sourceName + ": " + ref.field + ": '" + ref.path +
                  "' is not in the definition's bundle (it is read from beside the definition "
                  "when you submit)");
  // What the definition does not name has no business in its build: refused, not carried along
  // unchecked (the layers are the ones the merge reads from this very bundle).
  const auto layers = mergedDefinition(bundle).layers();
  for (const auto& entry : bundle.files) {
    const std::string& path = entry.first;  // a name of its own: clang 14 captures no binding
    if (std::find(layers.begin(), layers.end(), path) != layers.end()) continue;
    const bool named = std::any_of(refs.begin(), refs.end(), [&](const LocalReference& r) {
      return r.path == path || (r.tree && path.starts_with(r.path + "/"));
    });
    if (!named)
      throw Error("the definition bundle holds '" + path + "', which " + def.sourceName +
                  " neither extends nor refers to; a bundle carries only what its definition "
                  "names");
  }
}

MergedDefinition mergedDefinition(const Bundle& bundle, const std::string& displayName) {
  (void)bundle.rootText();
  return MergedDefinition::merge(
      bundle.rootPath,
      [&](const std::string& path) {
        const auto* text = bundle.find(path);
        return text ? std::optional<std::string>(*text) : std::nullopt;
      },
      displayName);
}

ImageDefinition parseBundle(const Bundle& bundle) {
  return parseDefinition(mergedDefinition(bundle).reader());
}

Bundle definitionBundle(const Bundle& whole, const std::string& rootPath) {
  Bundle b;
  b.rootPath = rootPath;
  const auto merged = MergedDefinition::merge(rootPath, [&](const std::string& path) {
    const auto* text = whole.find(path);
    if (!text) return std::optional<std::string>();
    b.files[path] = *text;
    return std::optional<std::string>(*text);
  });
  const auto def = parseDefinition(merged.reader());
  for (const auto& ref : localReferences(def)) {
    if (const auto* data = whole.find(ref.path)) {
      b.files[ref.path] = *data;
    } else if (ref.tree) {
      const std::string prefix = ref.path + "/";
      for (auto it = whole.files.lower_bound(prefix);
           it != whole.files.end() && it->first.starts_with(prefix); ++it)
        b.files.insert(*it);
    }
  }
  checkBundle(b, def);
  return b;
}

std::string mergedIdentity(const Bundle& bundle) {
  const auto merged = mergedDefinition(bundle);
  const auto& layers = merged.layers();
  Hasher h(HashAlgo::sha256);
  h.update(std::string_view("imgpipe-merged-1\n"));
  const std::string fields = merged.canonicalText();
  h.update(std::to_string(fields.size()) + "\n");
  h.update(fields);
  for (const auto& [path, data] : bundle.files) {
    if (std::find(layers.begin(), layers.end(), path) != layers.end()) continue;
    h.update(path + "\n" + std::to_string(data.size()) + "\n");
    h.update(data);
  }
  return toHex(h.finish());
}

Bundle loadBundle(const std::filesystem::path& definitionFile, const BundleLimits& limits) {
  const auto dir = std::filesystem::absolute(definitionFile).parent_path();
  Bundle b;
  b.rootPath = definitionFile.filename().string();
  if (!normaliseBundlePath(b.rootPath))
    throw Error("definition file name '" + b.rootPath + "' is not a plain file name");
  // The definition and every layer it extends, each into the bundle as it is read.
  const auto fromDisk = layersBeneath(dir, limits.fileBytes);
  auto merged = MergedDefinition::merge(
      b.rootPath,
      [&](const std::string& path) {
        auto text = fromDisk(path);
        if (text) b.files[path] = *text;
        return text;
      },
      definitionFile.string());
  auto def = parseDefinition(merged.reader());
  for (const auto& ref : localReferences(def)) {
    try {
      for (const auto& path :
           ref.tree ? filesOfTree(dir, ref.path, limits.files) : std::vector{ref.path}) {
        if (b.find(path)) continue;
        auto norm = normaliseBundlePath(path);
        if (!norm || *norm != path) throw Error("'" + path + "' is not a plain bundle path");
        b.files[path] = readFileBeneath(dir, path, limits.fileBytes);
      }
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
