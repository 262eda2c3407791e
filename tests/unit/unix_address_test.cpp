#include "common/net/unix_address.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"

using namespace imgpipe;

TEST(UnixAddress, APathThatFitsIsUsedWholeAndConnects) {
  TempDir dir(std::filesystem::temp_directory_path(), "unix-address-");
  const auto path = dir.path() / "s.sock";
  const sockaddr_un addr = unixAddress(path);
  EXPECT_EQ(std::string(addr.sun_path), path.string());
  UniqueFd server(::socket(AF_UNIX, SOCK_STREAM, 0));
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(server.get(), 1), 0);
  UniqueFd client(::socket(AF_UNIX, SOCK_STREAM, 0));
  EXPECT_EQ(::connect(client.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
}

TEST(UnixAddress, APathTooLongIsRefusedNotTruncated) {
  const std::string longest(sizeof(sockaddr_un::sun_path) - 1, 'a');
  EXPECT_NO_THROW(unixAddress(longest));
  try {
    unixAddress(longest + "b");
    FAIL() << "a 108-byte path was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too long (108 bytes; at most 107)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(unixAddress(""), Error);
}
