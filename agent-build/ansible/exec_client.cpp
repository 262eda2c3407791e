#include "agent-build/ansible/exec_client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "agent-build/ansible/exec_wire.h"
#include "common/error.h"
#include "common/net/unix_address.h"
#include "common/unique_fd.h"

namespace imgpipe::build {

int ansibleExecMain(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: imgpipe-agent-build ansible-exec SOCKET ROOT COMMAND...\n");
    return 255;
  }
  try {
    const std::string path = argv[1];
    const sockaddr_un addr = unixAddress(path);
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock) throwErrno("socket");
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
      throwErrno("cannot reach the build agent at " + path);
    sendExecRequest(sock.get(), std::vector<std::string>(argv + 3, argv + argc), {0, 1, 2});
    return receiveExitStatus(sock.get());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "imgpipe ansible-exec: %s\n", e.what());
    return 255;
  }
}

}  // namespace imgpipe::build
