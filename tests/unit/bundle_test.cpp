// The definition's bundle: the files it refers to travel with it, read from beneath the
// definition's directory; nothing a definition names can reach another file on the host.
#include "definition/bundle.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/beneath.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "common/yaml_reader.h"
#include "definition/parse_definition.h"
#include "tests/support/error_of.h"

using namespace imgpipe;
using namespace imgpipe::definition;
namespace fs = std::filesystem;

namespace {

const std::string kHead = "name: tiny\nbase: {path: base.qcow2}\n";

std::string parseError(const std::string& yaml) {
  try {
    parseDefinition(yaml, "def.yaml");
  } catch (const YamlError& e) {
    return e.what();
  }
  return "(no error)";
}

using imgpipe::test::errorOf;

}  // namespace

TEST(Bundle, PathsAreNormalisedAndNeverLeaveTheBundle) {
  EXPECT_EQ(normaliseBundlePath("./files//x.sh").value_or("?"), "files/x.sh");
  EXPECT_EQ(normaliseBundlePath("roles/docker/tasks/main.yml").value_or("?"),
            "roles/docker/tasks/main.yml");
  for (const char* bad : {"/etc/shadow", "../x", "a/../../b", "a/..", ".", "", "a\nb", "a b",
                          "/proc/1/root/etc/shadow"})
    EXPECT_FALSE(normaliseBundlePath(bad)) << bad;
}

TEST(Bundle, DefinitionsCannotNameHostFiles) {
  EXPECT_NE(parseError(kHead + "files:\n  - {path: /etc/x, source: /etc/shadow}\n")
                .find("files[0].source: '/etc/shadow' must be a relative path beside the "
                      "definition"),
            std::string::npos);
  EXPECT_NE(parseError(kHead + "scripts:\n  - {name: s, source: ../../root/.ssh/id_rsa}\n")
                .find("scripts[0].source"),
            std::string::npos);
  EXPECT_NE(
      parseError("name: tiny\nbase: {path: ../../etc/shadow}\n").find("must not contain '..'"),
      std::string::npos);
  auto def = parseDefinition(kHead + "files:\n  - {path: /etc/x, source: ./files//x}\n", "d");
  EXPECT_EQ(def.files[0].content.text, "files/x");
}

TEST(Bundle, LoadReadsEveryReferenceFromBesideTheDefinition) {
  TempDir dir;
  fs::create_directories(dir.path() / "files");
  writeFileAtomic(dir.path() / "files/motd", "hello\n");
  writeFileAtomic(dir.path() / "key.gpg", std::string("\0\1\2binary", 9));
  writeFileAtomic(dir.path() / "def.yaml",
                  kHead +
                      "files:\n  - {path: /etc/motd, source: files/motd}\n"
                      "repositories:\n  - {name: r, uris: [http://x/], suites: [s], "
                      "components: [main], key_file: key.gpg}\n");
  auto b = loadBundle(dir.path() / "def.yaml");
  EXPECT_EQ(b.rootPath, "def.yaml");
  ASSERT_EQ(b.files.size(), 3u);
  EXPECT_EQ(*b.find("files/motd"), "hello\n");
  EXPECT_EQ(*b.find("key.gpg"), std::string("\0\1\2binary", 9));

  // The digest covers every file: one changed byte is another definition.
  auto other = b;
  other.files["files/motd"] = "hellp\n";
  EXPECT_NE(b.digest(), other.digest());
  EXPECT_EQ(b.digest(), loadBundle(dir.path() / "def.yaml").digest());

  // Written out for a build, read back beneath its directory.
  TempDir out;
  writeBundle(b, out.path());
  EXPECT_EQ(readFileBeneath(out.path(), "files/motd", 100), "hello\n");
  EXPECT_EQ(readFileBeneath(out.path(), "key.gpg", 100), std::string("\0\1\2binary", 9));
}

TEST(Bundle, ASymlinkOutOfTheDefinitionsDirectoryIsRefused) {
  TempDir dir;
  fs::create_directories(dir.path() / "files");
  fs::create_symlink("/etc/passwd", dir.path() / "files/motd");
  writeFileAtomic(dir.path() / "def.yaml",
                  kHead + "files:\n  - {path: /etc/motd, source: files/motd}\n");
  const auto e = errorOf([&] { loadBundle(dir.path() / "def.yaml"); });
  EXPECT_NE(e.find("files[0].source"), std::string::npos) << e;
  EXPECT_NE(e.find("leads outside"), std::string::npos) << e;
}

TEST(Bundle, CheckNamesMissingFilesBadPathsAndLimits) {
  const std::string text = kHead + "files:\n  - {path: /etc/motd, source: files/motd}\n";
  auto def = parseDefinition(text, "def.yaml");
  auto b = bundleOf("def.yaml", text);
  auto e = errorOf([&] { checkBundle(b, def); });
  EXPECT_NE(e.find("files[0].source: 'files/motd' is not in the definition's bundle"),
            std::string::npos)
      << e;

  b.files["files/motd"] = "x";
  EXPECT_EQ(errorOf([&] { checkBundle(b, def); }), "(no error)");

  auto hostile = b;
  hostile.files["../../etc/cron.d/x"] = "* * * * * root sh -c ...";
  EXPECT_NE(errorOf([&] { checkBundle(hostile, def); }).find("not a relative path of plain names"),
            std::string::npos);

  auto big = b;
  big.files["files/motd"] = std::string((1u << 20) + 1, 'x');
  EXPECT_NE(errorOf([&] { checkBundle(big, def); }).find("more than the limit of 1048576"),
            std::string::npos);

  auto many = b;
  for (int i = 0; i < 4; ++i)
    many.files["f" + std::to_string(i)] = std::string(1u << 20, 'x');
  EXPECT_NE(errorOf([&] { checkBundle(many, def); }).find("more than the limit of 3145728"),
            std::string::npos);

  // A file the definition does not name is refused, naming it (issue 23: it was carried along).
  auto extra = b;
  extra.files["files/unnamed.sh"] = "#!/bin/sh\n";
  EXPECT_NE(errorOf([&] {
              checkBundle(extra, def);
            }).find("holds 'files/unnamed.sh', which def.yaml neither extends nor refers to"),
            std::string::npos)
      << errorOf([&] { checkBundle(extra, def); });
}

TEST(Beneath, NothingOutsideTheRootIsOpened) {
  TempDir dir;
  writeFileAtomic(dir.path() / "inside", "ok");
  fs::create_symlink("/etc/passwd", dir.path() / "link");
  fs::create_directory(dir.path() / "sub");
  fs::create_directory_symlink("/etc", dir.path() / "sub/etc");
  EXPECT_EQ(readFileBeneath(dir.path(), "inside", 10), "ok");
  for (const char* bad : {"../inside", "/etc/passwd", "link", "sub/etc/passwd", "sub/../../x"})
    EXPECT_NE(errorOf([&] { readFileBeneath(dir.path(), bad, 1 << 20); }).find("refused"),
              std::string::npos)
        << bad;
  EXPECT_NE(errorOf([&] { readFileBeneath(dir.path(), "inside", 1); }).find("more than the limit"),
            std::string::npos);
}
