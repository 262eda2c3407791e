#include "common/net/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cstdio>

#include "common/error.h"
#include "common/file_util.h"
#include "common/unique_fd.h"
#include "common/yaml_reader.h"

namespace imgpipe::net {

bool isValidZ85Key(std::string_view key) {
  if (key.size() != 40) return false;
  uint8_t raw[32];
  std::string copy(key);
  return zmq_z85_decode(raw, copy.c_str()) != nullptr;
}

CurveKeyPair generateKeyPair(std::string name) {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    throw Error("cannot generate a CurveZMQ key pair: libzmq was built without CURVE support");
  return CurveKeyPair{std::move(name), pub, sec};
}

void writeKeyPair(const CurveKeyPair& keys, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const auto secretPath = dir / (keys.name + ".key");
  const auto publicPath = dir / (keys.name + ".pub");
  UniqueFd fd(::open(secretPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == EEXIST)
      throw Error("secret key " + secretPath.string() +
                  " already exists; remove it first if you mean to replace it");
    throwErrno("cannot create " + secretPath.string());
  }
  std::string secret = "# imgpipe CurveZMQ key pair '" + keys.name +
                       "'. Keep this file secret (mode 0600).\n"
                       "name: \"" +
                       keys.name + "\"\npublic: \"" + keys.publicKey + "\"\nsecret: \"" +
                       keys.secretKey + "\"\n";
  if (::write(fd.get(), secret.data(), secret.size()) != static_cast<ssize_t>(secret.size()) ||
      ::fsync(fd.get()) != 0)
    throwErrno("cannot write " + secretPath.string());
  writeFileAtomic(publicPath,
                  "# imgpipe CurveZMQ public key '" + keys.name + "'\nname: \"" + keys.name +
                      "\"\npublic: \"" + keys.publicKey + "\"\n",
                  0644);
}

CurveKeyPair loadSecretKey(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throwErrno("cannot read secret key " + path.string());
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    throw Error("secret key " + path.string() + " is accessible by other users (mode " + mode +
                "); refusing to use it. Fix: chmod 600 " + path.string());
  }
  auto doc = YamlReader::fromFile(path);
  CurveKeyPair keys{doc.required<std::string>("name"), doc.required<std::string>("public"),
                    doc.required<std::string>("secret")};
  doc.rejectUnknownKeys();
  if (!isValidZ85Key(keys.publicKey)) doc.at("public").fail("not a 40-character Z85 CurveZMQ key");
  if (!isValidZ85Key(keys.secretKey)) doc.at("secret").fail("not a 40-character Z85 CurveZMQ key");
  char derived[41];
  if (zmq_curve_public(derived, keys.secretKey.c_str()) != 0 || keys.publicKey != derived)
    doc.at("public").fail("does not belong to the secret key in the same file");
  return keys;
}

std::string loadPublicKey(const std::filesystem::path& path) {
  if (isValidZ85Key(path.string()) && !std::filesystem::exists(path)) return path.string();
  auto doc = YamlReader::fromFile(path);
  auto key = doc.required<std::string>("public");
  doc.at("name");
  doc.at("secret");  // a full key pair file also carries a public key
  doc.rejectUnknownKeys();
  if (!isValidZ85Key(key)) doc.at("public").fail("not a 40-character Z85 CurveZMQ key");
  return key;
}

}  // namespace imgpipe::net
