#include "agent-build/boot/nocloud_seed.h"

#include <fstream>

#include "agent-build/boot/guest_checks_py.h"
#include "common/file_util.h"
#include "common/hash.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

std::string base64(std::string_view in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    for (int s : {18, 12, 6, 0})
      out += tbl[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

NoCloudSeed makeSeed(const std::string& instanceId, const std::string& hostname,
                     const nlohmann::json& guestConfig) {
  const std::string dir = kGuestCheckDir;
  // JSON is YAML: the documents are emitted with nlohmann (ASCII only), nothing to escape by
  // hand.
  nlohmann::json meta = {{"instance-id", instanceId}, {"local-hostname", hostname}};
  // bootcmd runs early in every boot, before any module that could fail; the unit waits for
  // cloud-final (After=) and, should that never be queued, for the files write_files writes.
  const std::string wait = "while [ ! -e " + dir + "/config.json ]; do sleep 1; done; exec " +
                           "python3 " + dir + "/checks.py " + dir + "/config.json";
  auto file = [](const std::string& path, const char* mode, std::string_view content) {
    return nlohmann::json::object(
        {{"path", path}, {"permissions", mode}, {"encoding", "b64"}, {"content", base64(content)}});
  };
  nlohmann::json user = nlohmann::json::object();
  user["write_files"] =
      nlohmann::json::array({file(dir + "/checks.py", "0700", kGuestChecksPy),
                             file(dir + "/config.json", "0600", guestConfig.dump())});
  user["bootcmd"] = nlohmann::json::array({nlohmann::json::array(
      {"systemd-run", "--no-block", std::string("--unit=") + kGuestCheckUnit,
       "--property=After=cloud-final.service", "--property=StandardOutput=journal+console",
       "--property=StandardError=journal+console", "/bin/sh", "-c", wait})});
  return {meta.dump(2, ' ', true) + "\n", "#cloud-config\n" + user.dump(2, ' ', true) + "\n"};
}

void writeSeedImage(const NoCloudSeed& seed, const fs::path& image, const ExecContext& exec) {
  const fs::path dir = image.parent_path() / "seed-files";
  writeSeedDir(seed, dir);
  fs::remove(image);
  run(exec, {"mkfs.fat", "-n", "CIDATA", "-C", image.string(), "2048"});
  auto o = commandOptions(exec, {"mcopy", "-i", image.string(), (dir / "meta-data").string(),
                                 (dir / "user-data").string(), "::"});
  o.env["MTOOLS_SKIP_CHECK"] = "1";
  run(exec, std::move(o));
}

void writeSeedDir(const NoCloudSeed& seed, const fs::path& dir) {
  fs::create_directories(dir);
  writeFileAtomic(dir / "meta-data", seed.metaData);
  writeFileAtomic(dir / "user-data", seed.userData);
}

}  // namespace imgpipe::build
