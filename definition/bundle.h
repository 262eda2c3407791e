#pragma once

// A definition and the files it brings with it: the definition's bundle. `source:` files,
// scripts and repository keys travel inside the job, read by `imgpipe submit` on the operator's
// machine from beneath the definition's directory, so a definition never names a path on the
// build host (the agent's secret key, /etc/shadow, another job's work dir). Value type; the same
// rules (path grammar, limits, digest) at the CLI, in the coordinator and at the build agent.

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "definition/image_definition.h"
#include "definition/layers.h"

namespace imgpipe::definition {

struct BundleLimits {
  std::size_t fileBytes = 1u << 20;   // one file
  std::size_t totalBytes = 3u << 20;  // all files with the definition: the job fits one frame
  std::size_t files = 256;
};

// A path inside a bundle (ids::Kind::bundlePath) after `./a//b` is normalised to `a/b`.
std::optional<std::string> normaliseBundlePath(std::string_view path);

// A file a definition refers to: the field that names it and its bundle path.
struct LocalReference {
  std::string field;  // "files[2].source"
  std::string path;   // normalised bundle path
  bool tree = false;  // a directory: every file beneath it travels (or a file, taken as one)
};
std::vector<LocalReference> localReferences(const ImageDefinition& def);

struct Bundle {
  std::string rootPath;                      // the definition itself, e.g. "docker.yaml"
  std::map<std::string, std::string> files;  // bundle path -> bytes; holds rootPath too

  const std::string& rootText() const;
  const std::string* find(std::string_view path) const;
  // sha256 hex over every path and content, in path order: the job's definition digest.
  std::string digest() const;
  std::size_t totalBytes() const;
};

// The bundle's definition with the layers it extends (all in the bundle), merged; and parsed.
// Every reader of a bundle's definition goes through these, so a layer cannot be skipped.
// `displayName` stands for the root in messages (the path the operator gave).
MergedDefinition mergedDefinition(const Bundle& bundle, const std::string& displayName = "");
ImageDefinition parseBundle(const Bundle& bundle);

// One definition of a bundle that holds several (a base and the layers of its sites):
// `rootPath`, the layers it extends and the files it refers to, nothing else. Throws as
// mergedDefinition and checkBundle do, naming the definition.
Bundle definitionBundle(const Bundle& whole, const std::string& rootPath);

// What a build of a definitionBundle depends on, as sha256 hex: the merged fields (not how they
// were split into layers, nor comments) and the content of every file it refers to. Sites whose
// definitions have one identity get one image, built once.
std::string mergedIdentity(const Bundle& bundle);

// Throws Error naming the offending path when a bundle breaks the grammar or the limits, or when
// the definition refers to a file the bundle does not hold, or the bundle holds a file the
// definition neither extends nor refers to. Used wherever a bundle enters.
// Throws when the bundle's files together exceed limits.totalBytes (what a job may carry).
void checkBundleSize(const Bundle& bundle, const BundleLimits& limits = {});
void checkBundle(const Bundle& bundle, const ImageDefinition& def, const BundleLimits& limits = {});

// The operator's side: reads `definitionFile`, parses it and reads every file it refers to from
// beneath the definition's directory (no '..', no symlinks out of it), within the limits.
Bundle loadBundle(const std::filesystem::path& definitionFile, const BundleLimits& limits = {});

// A bundle of one definition text that refers to no files (tests, the inline submit path).
Bundle bundleOf(std::string rootPath, std::string text);

// Writes the bundle's files beneath `dir` (which must exist and be empty), for a build to read.
void writeBundle(const Bundle& bundle, const std::filesystem::path& dir);

}  // namespace imgpipe::definition
