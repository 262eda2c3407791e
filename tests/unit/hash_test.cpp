#include "common/hash.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/temp_dir.h"

using namespace imgpipe;

TEST(Hash, KnownVectors) {
  EXPECT_EQ(toHex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(toHex(sha512("")).substr(0, 16), "cf83e1357eefb8bd");
}

TEST(Hash, HexRoundTripAndRejectsGarbage) {
  EXPECT_EQ(fromHex(toHex("\x01\xff")), "\x01\xff");
  EXPECT_THROW(fromHex("zz"), Error);
  EXPECT_THROW(fromHex("abc"), Error);
}

TEST(Hash, FileDigestsMatchInMemory) {
  TempDir dir;
  std::string data(3 << 20, 'x');
  data[12345] = 'y';
  std::ofstream(dir.path() / "f", std::ios::binary) << data;
  auto d = hashFile(dir.path() / "f");
  EXPECT_EQ(d.size, data.size());
  EXPECT_EQ(d.sha256, sha256(data));
  EXPECT_EQ(d.sha512, sha512(data));
}

TEST(TempDir, RemovedUnlessKept) {
  std::filesystem::path p, kept;
  {
    TempDir a;
    p = a.path();
    std::ofstream(p / "x") << "1";
    TempDir b;
    kept = b.path();
    b.keep();
  }
  EXPECT_FALSE(std::filesystem::exists(p));
  EXPECT_TRUE(std::filesystem::exists(kept));
  std::filesystem::remove_all(kept);
}
