#include "protocol/ids.h"

#include <gtest/gtest.h>

#include <string>

using namespace imgpipe::ids;

namespace {
const std::string kA(64, 'a');
const std::string kB = std::string(63, '0') + "f";
}  // namespace

TEST(Ids, ImageAndDeltaIds) {
  EXPECT_TRUE(valid(Kind::imageId, kA));
  EXPECT_FALSE(valid(Kind::imageId, std::string(64, 'A'))) << "upper case is another id";
  EXPECT_FALSE(valid(Kind::imageId, std::string(63, 'a')));
  EXPECT_FALSE(valid(Kind::imageId, std::string(65, 'a')));
  EXPECT_FALSE(valid(Kind::imageId, ""));

  const std::string d = deltaId(kA, kB);
  EXPECT_TRUE(valid(Kind::deltaId, d));
  EXPECT_TRUE(valid(Kind::artifactId, d));
  EXPECT_TRUE(valid(Kind::artifactId, kA));
  auto parts = splitDelta(d);
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->basis, kA);
  EXPECT_EQ(parts->target, kB);
  EXPECT_FALSE(valid(Kind::imageId, d));
  EXPECT_FALSE(valid(Kind::deltaId, kA));
}

TEST(Ids, HostileFormsAreRefused) {
  // The forms a hostile build agent reported to the coordinator (issue 9).
  for (const std::string& bad : {std::string("delta-a-b/../../../victim"),
                                 std::string("q/../../../vic|B"), "delta-" + kA + "-" + kB + "/..",
                                 "../" + kA, kA + "\n", kA.substr(0, 32) + '\0' + kA.substr(33),
                                 std::string(100000, 'a'), std::string("delta-") + kA + "+" + kB}) {
    EXPECT_FALSE(valid(Kind::artifactId, bad)) << printable(bad);
    EXPECT_FALSE(valid(Kind::imageName, bad)) << printable(bad);
    EXPECT_FALSE(valid(Kind::imageVersion, bad)) << printable(bad);
    EXPECT_FALSE(valid(Kind::jobId, bad)) << printable(bad);
    EXPECT_FALSE(valid(Kind::agentName, bad)) << printable(bad);
  }
  EXPECT_FALSE(valid(Kind::imageName, ".."));
  EXPECT_FALSE(valid(Kind::imageName, "."));
  EXPECT_FALSE(valid(Kind::imageVersion, "-1"));
  EXPECT_FALSE(valid(Kind::imageVersion, ".."));
  EXPECT_FALSE(valid(Kind::agentName, ".hidden"));
}

TEST(Ids, OtherKinds) {
  EXPECT_TRUE(valid(Kind::jobId, "1"));
  EXPECT_TRUE(valid(Kind::jobId, "123456789012345678"));
  EXPECT_FALSE(valid(Kind::jobId, "0123"));
  EXPECT_FALSE(valid(Kind::jobId, "1234567890123456789"));
  EXPECT_TRUE(valid(Kind::taskId, "12.0.1"));
  EXPECT_FALSE(valid(Kind::taskId, "12.0"));
  EXPECT_FALSE(valid(Kind::taskId, "12.0.1.2"));
  EXPECT_TRUE(valid(Kind::imageName, "debian-12-docker"));
  EXPECT_TRUE(valid(Kind::imageVersion, "2026.11.22-031500"));
  EXPECT_TRUE(valid(Kind::imageVersion, "1.0+git~1"));
  EXPECT_TRUE(valid(Kind::agentName, "ctrl-a"));
  EXPECT_TRUE(valid(Kind::sha512, std::string(128, '0')));
  EXPECT_TRUE(valid(Kind::curveKey, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"));
  EXPECT_FALSE(valid(Kind::curveKey, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf"));
  EXPECT_FALSE(valid(Kind::curveKey, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y\""));
  EXPECT_TRUE(valid(Kind::buildId, "0123abcd0123abcd/12/" + kA));
  EXPECT_FALSE(valid(Kind::buildId, "a//b"));
  EXPECT_FALSE(valid(Kind::buildId, "a/../b"));
}

TEST(Ids, RequireNamesTheFieldAndEscapesTheValue) {
  try {
    require("result.artifact.id", Kind::artifactId, std::string("x\n/..\x01"));
    FAIL() << "no throw";
  } catch (const InvalidId& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("result.artifact.id"), std::string::npos) << what;
    EXPECT_NE(what.find("x\\x0a/..\\x01"), std::string::npos) << what;
  }
  EXPECT_EQ(printable(std::string(200, 'a'), 10), std::string(10, 'a') + "...(200 bytes)");
}

TEST(Ids, FilesystemUuidsAndLabelsFromABaseImage) {
  // What blkid reports for real filesystems.
  for (const char* uuid : {"0b0f4c1e-5f2a-4a57-9c1d-6a8e2b3c4d5e", "1234-ABCD", "0123456789ABCDEF"})
    EXPECT_TRUE(valid(Kind::fsUuid, uuid)) << uuid;
  for (const char* label : {"cloudimg-rootfs", "UEFI", "BOOT", "root_fs.1"})
    EXPECT_TRUE(valid(Kind::fsLabel, label)) << label;
  // A LUKS header or an ext4 superblock carries whatever bytes its author wrote; these would name
  // files outside /dev/disk/by-uuid or by-label.
  for (const std::string& bad :
       {std::string("../../tmp/x"), std::string(".."), std::string("."), std::string("a/b"),
        std::string("-rf"), std::string("my disk"), std::string("a\nb"), std::string("a\0b", 3),
        std::string(65, 'a'), std::string()}) {
    EXPECT_FALSE(valid(Kind::fsUuid, bad)) << printable(bad);
    EXPECT_FALSE(valid(Kind::fsLabel, bad)) << printable(bad);
  }
  auto why = problem("partition 2 UUID", Kind::fsUuid, "../../tmp/x");
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("partition 2 UUID: '../../tmp/x' is not a valid filesystem UUID"),
            std::string::npos)
      << *why;
}

// Issue 23: an agent's advertised artifact server was never checked; peers connect to it.
TEST(Ids, DataEndpointsAreTcpHostPortOnly) {
  for (const char* ok : {"tcp://10.80.0.2:7701", "tcp://build-1.example.org:7701",
                         "tcp://[fd00::2]:7701", "tcp://127.0.0.1:1", "tcp://h:65535"})
    EXPECT_TRUE(valid(Kind::dataEndpoint, ok)) << ok;
  for (const char* bad :
       {"", "ipc:///var/lib/imgpipe/coordinator.sock", "tcp://*:7701", "tcp://eth0;10.0.0.1:7701",
        "tcp://10.0.0.1", "tcp://10.0.0.1:0", "tcp://10.0.0.1:65536", "tcp://10.0.0.1:77a",
        "tcp://user@host:7701", "tcp://host:7701/path", "inproc://x", "tcp://-h:7701",
        "tcp://[::1:7701", "TCP://h:1"})
    EXPECT_FALSE(valid(Kind::dataEndpoint, bad)) << bad;
  EXPECT_NE(problem("hello.dataEndpoint", Kind::dataEndpoint, "ipc:///x")->find("tcp://"),
            std::string::npos);
}
