#include "tests/support/local_openstack.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/hash.h"
#include "common/unique_fd.h"

namespace imgpipe::test {
namespace {

std::string run(std::vector<std::string> argv) {
  SubprocessOptions o;
  o.argv = std::move(argv);
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(3);
  return checkCommand(std::move(o));
}

bool portBindable(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

// Test binaries may start servers concurrently (ctest -j) and a server binds its port seconds
// after the port was chosen, so chosen ports are claimed in a shared directory (a file per
// port naming the claiming pid; claims of dead pids are stale) under a lock file.
const std::filesystem::path kClaims = "/tmp/imgpipe-openstack-ports";

int claimPort(int first) {
  std::filesystem::create_directories(kClaims);
  UniqueFd lock(::open((kClaims / ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
  if (!lock) throwErrno("open " + (kClaims / ".lock").string());
  while (::flock(lock.get(), LOCK_EX) != 0)
    if (errno != EINTR) throwErrno("flock");
  for (int port = first; port < first + 500; ++port) {
    const auto claim = kClaims / std::to_string(port);
    if (std::ifstream in(claim); in) {
      pid_t pid = 0;
      in >> pid;
      if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
    }
    if (!portBindable(port)) continue;
    std::ofstream(claim) << ::getpid() << "\n";
    return port;
  }
  throw Error("no free port in " + std::to_string(first) + ".." + std::to_string(first + 499));
}

void releasePort(int port) {
  if (port == 0) return;
  std::error_code ec;
  std::filesystem::remove(kClaims / std::to_string(port), ec);
}

}  // namespace

std::filesystem::path LocalOpenStack::script() {
  const char* src = std::getenv("IMGPIPE_SOURCE_DIR");
  std::filesystem::path root = src != nullptr ? src : IMGPIPE_TEST_SOURCE_DIR;
  return root / "tests/support/openstack-local.sh";
}

LocalOpenStack::LocalOpenStack(LocalOpenStackOptions options)
    : options_(options), dir_(std::filesystem::temp_directory_path(), "imgpipe-openstack-") {
  // The destructor does not run when the constructor throws: release what was claimed here.
  try {
    const std::string d = dir_.path().string();
    glancePort_ = claimPort(options_.firstPort);
    if (options_.keystone) {
      keystonePort_ = claimPort(glancePort_ + 1);
      run({script().string(), "keystone-prepare", d, std::to_string(keystonePort_),
           "--token-expiration", std::to_string(options_.tokenExpirationS), "--image-url",
           glanceUrl()});
      spawn(keystone_, "keystone-run", keystoneUrl());
      run({script().string(), "keystone-seed", d});
      std::ifstream in(dir_.path() / "keystone/ids.env");
      for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (eq != std::string::npos) ids_[line.substr(0, eq)] = line.substr(eq + 1);
      }
      run({script().string(), "glance-prepare", d, std::to_string(glancePort_), "--keystone",
           keystoneUrl()});
    } else {
      run({script().string(), "glance-prepare", d, std::to_string(glancePort_)});
    }
    spawn(glance_, "glance-run", glanceUrl() + "/healthcheck");
  } catch (...) {
    glance_.reset();
    keystone_.reset();
    releasePort(glancePort_);
    releasePort(keystonePort_);
    throw;
  }
}

LocalOpenStack::~LocalOpenStack() {
  glance_.reset();  // Subprocess: SIGTERM, SIGKILL after the grace, reaped
  keystone_.reset();
  releasePort(glancePort_);
  releasePort(keystonePort_);
}

std::string LocalOpenStack::glanceUrl() const {
  return "http://127.0.0.1:" + std::to_string(glancePort_);
}

std::string LocalOpenStack::keystoneUrl() const {
  return keystonePort_ == 0 ? std::string()
                            : "http://127.0.0.1:" + std::to_string(keystonePort_) + "/v3";
}

std::string LocalOpenStack::id(const std::string& key) const {
  auto it = ids_.find(key);
  if (it == ids_.end()) throw Error("no id " + key + " from the Keystone seed");
  return it->second;
}

void LocalOpenStack::spawn(std::optional<Subprocess>& slot, const std::string& command,
                           const std::string& healthUrl) {
  SubprocessOptions o;
  // The script execs the server: the child is the server itself, in its own process group.
  o.argv = options_.launchPrefix;
  for (auto a : {script().string(), command, dir_.path().string()})
    o.argv.push_back(a);
  o.killGrace = std::chrono::milliseconds(3000);
  slot.emplace(std::move(o));
  try {
    auto check = options_.launchPrefix;
    for (auto a : {script().string(), std::string("wait-http"), healthUrl, std::string("60")})
      check.push_back(a);
    run(check);
  } catch (const Error& e) {
    std::string log;
    for (auto f :
         {"glance/log/glance-api.log", "glance/log/stdout.log", "keystone/log/uwsgi.log"}) {
      std::ifstream in(dir_.path() / f);
      std::stringstream ss;
      ss << in.rdbuf();
      auto s = ss.str();
      if (!s.empty())
        log += std::string("\n--- ") + f + ":\n" + s.substr(s.size() > 3000 ? s.size() - 3000 : 0);
    }
    slot.reset();
    throw Error(std::string(e.what()) + log);
  }
}

void LocalOpenStack::killGlance() {
  if (!glance_) return;
  ::kill(-glance_->pid(), SIGKILL);
  glance_.reset();
}

void LocalOpenStack::startGlance() {
  if (glance_) return;
  spawn(glance_, "glance-run", glanceUrl() + "/healthcheck");
}

TestArtifact describeFile(const std::filesystem::path& path) {
  FileDigests d = hashFile(path);
  return {path, toHex(d.sha256), toHex(d.sha512), d.size};
}

TestArtifact makeQcow2(const std::filesystem::path& path, unsigned virtualMiB, unsigned dataMiB) {
  auto raw = path;
  raw += ".raw";
  run({"qemu-img", "create", "-q", "-f", "raw", raw.string(), std::to_string(virtualMiB) + "M"});
  if (dataMiB > 0)
    run({"dd", "if=/dev/urandom", "of=" + raw.string(), "bs=1M", "count=" + std::to_string(dataMiB),
         "conv=notrunc", "status=none"});
  run({"qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw.string(), path.string()});
  std::filesystem::remove(raw);
  return describeFile(path);
}

}  // namespace imgpipe::test
