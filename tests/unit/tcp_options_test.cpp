#include "common/net/tcp_options.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "common/unique_fd.h"

using namespace imgpipe;
using namespace imgpipe::net;

TEST(TcpOptions, NamesAreCheckedBeforeTheKernelSeesThem) {
  EXPECT_TRUE(validCongestionControlName("bbr"));
  EXPECT_TRUE(validCongestionControlName("system"));
  EXPECT_FALSE(validCongestionControlName(""));
  EXPECT_FALSE(validCongestionControlName("BBR"));
  EXPECT_FALSE(validCongestionControlName("a/b"));
  EXPECT_FALSE(validCongestionControlName("sixteen_chars_xx"));
}

TEST(TcpOptions, AChoiceTheKernelRefusesIsReportedOnceNotPerConnection) {
  CongestionChoice choice("nosuchcc");
  UniqueFd a(::socket(AF_INET, SOCK_STREAM, 0));
  UniqueFd b(::socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_TRUE(a && b);
  const auto before = congestionControlOf(a.get());
  EXPECT_NE(choice.apply(a.get()).find("nosuchcc"), std::string::npos);
  EXPECT_EQ(choice.apply(b.get()), "");  // the same reason: said already
  EXPECT_EQ(congestionControlOf(a.get()), before);
  // "system" leaves the socket alone; a socket that is not TCP is left alone.
  CongestionChoice system("system");
  EXPECT_EQ(system.apply(a.get()), "");
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM, 0));
  EXPECT_EQ(setCongestionControl(udp.get(), "bbr"), "");
  EXPECT_EQ(congestionControlOf(udp.get()), "");
}
