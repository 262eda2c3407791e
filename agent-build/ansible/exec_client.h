#pragma once

namespace imgpipe::build {

// `imgpipe-agent-build ansible-exec SOCKET ROOT COMMAND...`: the controller's chroot_exe. ROOT
// (the chroot connection's path) is ignored: the agent runs COMMAND in the image it is building,
// and no other. Exits with COMMAND's status, or 255 with a message when the agent cannot be
// reached.
int ansibleExecMain(int argc, char** argv);

}  // namespace imgpipe::build
