#include "agent-build/sandbox/network_namespace.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "common/unique_fd.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

// A new namespace has its loopback down.
void loopbackUp() {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) throwErrno("network namespace: socket for lo");
  ifreq r{};
  std::strncpy(r.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &r) != 0) throwErrno("network namespace: SIOCGIFFLAGS lo");
  r.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(s.get(), SIOCSIFFLAGS, &r) != 0) throwErrno("network namespace: SIOCSIFFLAGS lo");
}

}  // namespace

NetworkNamespace::NetworkNamespace(fs::path file, const std::function<void()>& setup)
    : file_(std::move(file)) {
  {
    UniqueFd touch(::open(file_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!touch) throwErrno("network namespace: creating " + file_.string());
  }
  // Made by a thread of its own: unshare() moves only the calling thread, and that thread ends
  // there, leaving the namespace held by the bind mount (and whatever `setup` made in it).
  std::exception_ptr failure;
  bool mounted = false;
  std::thread maker([&] {
    try {
      if (::unshare(CLONE_NEWNET) != 0) throwErrno("network namespace: unshare(CLONE_NEWNET)");
      loopbackUp();
      if (setup) setup();
      if (::mount("/proc/thread-self/ns/net", file_.c_str(), nullptr, MS_BIND, nullptr) != 0)
        throwErrno("network namespace: bind-mounting it on " + file_.string());
      mounted = true;
    } catch (...) {
      failure = std::current_exception();
    }
  });
  maker.join();
  if (failure) {
    if (mounted) ::umount2(file_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove(file_, ec);
    std::rethrow_exception(failure);
  }
}

NetworkNamespace::~NetworkNamespace() {
  if (::umount2(file_.c_str(), MNT_DETACH) != 0)
    log::named("netns")->warn("cannot unmount {}: {}", file_.string(), std::strerror(errno));
  std::error_code ec;
  fs::remove(file_, ec);
}

}  // namespace imgpipe::build
