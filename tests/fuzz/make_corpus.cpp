// Writes a seed corpus of valid messages (one file each) for the fuzzer to mutate.
#include <fstream>
#include <string>

#include "protocol/codec.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  int n = 0;
  auto write = [&](imgpipe::proto::EnvelopeBuilder& b) {
    auto f = b.frame();
    std::ofstream(dir + "/seed-" + std::to_string(n++), std::ios::binary)
        .write(f.data<char>(), f.size());
  };
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
