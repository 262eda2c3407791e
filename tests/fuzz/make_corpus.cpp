// fuzz_make_corpus TARGET DIR SOURCE_DIR: writes a seed corpus of valid inputs (one file each)
// for one fuzz target to mutate.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "protocol/codec.h"
#include "transfer/manifest.h"
#include "transfer/transfer_wire.h"

namespace {

std::string dir;
int n = 0;

void writeBytes(const std::string& bytes) {
  std::ofstream(dir + "/seed-" + std::to_string(n++), std::ios::binary) << bytes;
}

void write(imgpipe::proto::EnvelopeBuilder& b) {
  auto f = b.frame();
  writeBytes(std::string(f.data<char>(), f.size()));
}

int controlSeeds();

int transferSeeds() {
  using namespace imgpipe::transfer;
  Manifest m;
  m.imageName = "debian-12-docker";
  m.imageVersion = "2026.12.01-1";
  m.size = 3 * 65536 + 5;
  m.sha256 = std::string(32, 'a');
  m.sha512 = std::string(64, 'b');
  m.chunkSize = 65536;
  m.chunkHashes = std::string(32 * 4, 'c');
  m.metadata = R"({"glance":{"display_name":"x"}})";
  const std::string encoded = encodeManifest(m);
  writeBytes(encoded);
  {
    wire::Message w;
    w.body().initGetChunks().setArtifactId(std::string(64, 'a'));
    writeBytes(w.bytes());
  }
  {
    wire::Message w;
    auto r = w.body().initManifest();
    r.setArtifactId(m.id());
    r.setEncoded(wire::asData(encoded));
    writeBytes(w.bytes());
  }
  {
    wire::Message w;
    auto d = w.body().initOpenDelta();
    d.setTargetId(std::string(64, 'a'));
    d.setBasisId(std::string(64, 'b'));
    writeBytes(w.bytes());
  }
  return 0;
}

int buildEventSeeds() {
  for (
      const char* line :
      {R"(@imgpipe {"event":"step","step":"packages","state":"started"})",
       R"(@imgpipe {"event":"step","step":"packages","state":"finished","duration_ms":41234,"message":"ok"})",
       R"(@imgpipe {"event":"progress","step":"compact","done":10,"total":100,"rate":5,"eta":3})",
       R"(@imgpipe {"event":"failed","step":"scripts","message":"x","exit_code":3,"tail":["a"],"retryable":false})",
       R"(@imgpipe {"event":"result","image":"/x.qcow2","manifest":"/x.json","name":"n","version":"1","reused":false})"})
    writeBytes(std::string(line) + "\n");
  return 0;
}

int textSeeds(const std::filesystem::path& source) {
  for (const auto& e : std::filesystem::directory_iterator(source / "deploy/examples"))
    if (e.path().extension() == ".yaml") {
      std::ifstream in(e.path(), std::ios::binary);
      writeBytes(std::string(std::istreambuf_iterator<char>(in), {}));
    }
  writeBytes("# name role key\nbuild-1 build rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n");
  writeBytes("files/./motd");
  // A layered definition for the merge (the site, a form feed, the layer it extends).
  writeBytes(
      "extends: base.yaml\nname: site\npackages: {install: [curl]}\n\f"
      "name: base\nbase: {path: b.qcow2}\npackages: {install: [jq]}\n"
      "files:\n  - {path: /etc/motd, content: x}\n");
  // Found by this target: yaml-cpp's document loop never ended on a stray flow token.
  writeBytes(",/");
  writeBytes("a: 1\n---\n,/\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const std::string target = argv[1];
  dir = argv[2];
  if (target == "fuzz_control") return controlSeeds();
  if (target == "fuzz_transfer") return transferSeeds();
  if (target == "fuzz_build_events") return buildEventSeeds();
  if (target == "fuzz_text") return textSeeds(argv[3]);
  return 2;
}

namespace {
int controlSeeds() {
  {
    imgpipe::proto::EnvelopeBuilder b;
    auto h = b.body().initHello();
    h.setName("build-1");
    h.setRole(imgpipe::proto::Role::BUILD);
    h.initLabels(2).set(0, "x86_64");
    h.initActiveTasks(1).set(0, "1.0.1");
    write(b);
  }
  {
    imgpipe::proto::EnvelopeBuilder b;
    auto t = b.body().initAssignTask();
    t.setTaskId("1.0.1");
    t.initKind().initFetch().setArtifactId(std::string(64, 'a'));
    write(b);
  }
  {
    imgpipe::proto::EnvelopeBuilder b;
    auto e = b.body().initTaskEvent();
    e.setTaskId("1.0.1");
    auto f = e.initKind().initFailed();
    f.setMessage("boom");
    f.initOutputTail(2).set(1, "E: x");
    write(b);
  }
  {
    imgpipe::proto::EnvelopeBuilder b;
    auto r = b.body().initRequest();
    r.initKind().initSubmit().setDefinition("name: x\n");
    write(b);
  }
  return 0;
}
}  // namespace
