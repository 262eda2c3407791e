#include "common/net/curve_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/net/authorized_keys.h"
#include "common/temp_dir.h"

using namespace imgpipe;
using namespace imgpipe::net;

TEST(CurveKeys, WrittenWithMode0600AndLoadable) {
  TempDir dir;
  auto keys = generateKeyPair("build-1");
  writeKeyPair(keys, dir.path());
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "build-1.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = loadSecretKey(dir.path() / "build-1.key");
  EXPECT_EQ(loaded.publicKey, keys.publicKey);
  EXPECT_EQ(loaded.secretKey, keys.secretKey);
  EXPECT_EQ(loadPublicKey(dir.path() / "build-1.pub"), keys.publicKey);
  EXPECT_THROW(writeKeyPair(keys, dir.path()), Error);  // never overwrites a secret
}

TEST(CurveKeys, RefusesSecretReadableByOthers) {
  TempDir dir;
  writeKeyPair(generateKeyPair("k"), dir.path());
  ::chmod((dir.path() / "k.key").c_str(), 0644);
  try {
    loadSecretKey(dir.path() / "k.key");
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("mode 0644"), std::string::npos) << msg;
    EXPECT_NE(msg.find("chmod 600"), std::string::npos) << msg;
  }
}

TEST(AuthorizedKeys, ParsesAndRejectsMistakes) {
  auto a = generateKeyPair("a"), b = generateKeyPair("b");
  auto keys = AuthorizedKeys::parse(
      "# comment\nbuild-1 build " + a.publicKey + "\n\nops operator " + b.publicKey + "\n",
      "authorized_keys");
  ASSERT_EQ(keys.all().size(), 2u);
  EXPECT_EQ(keys.findByKey(b.publicKey)->name, "ops");
  EXPECT_EQ(keys.findByName("build-1")->role, Role::build);

  auto errorOf = [](const std::string& text) -> std::string {
    try {
      AuthorizedKeys::parse(text, "ak");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(errorOf("x wizard " + a.publicKey).find("ak:1: unknown role 'wizard'"),
            std::string::npos);
  EXPECT_NE(errorOf("x build shortkey").find("not a 40-character Z85 key"), std::string::npos);
  EXPECT_NE(errorOf("x build " + a.publicKey + "\ny relay " + a.publicKey).find("already listed"),
            std::string::npos);
}
