#include "protocol/id_check.h"

#include "protocol/ids.h"

namespace imgpipe::proto {
namespace {

using ids::Kind;

// Collects the first problem; later checks are skipped once one is found.
class Checker {
 public:
  void id(const std::string& field, Kind kind, capnp::Text::Reader value) {
    if (!problem_)
      problem_ = ids::problem(field, kind, std::string_view(value.cStr(), value.size()));
  }
  // An optional id: empty is allowed (an absent artifact, an agent serving nothing).
  void optional(const std::string& field, Kind kind, capnp::Text::Reader value) {
    if (value.size() > 0) id(field, kind, value);
  }
  void artifact(const std::string& field, ArtifactSummary::Reader a) {
    id(field + ".id", Kind::imageId, a.getId());
    id(field + ".sha512", Kind::sha512, a.getSha512());
    id(field + ".manifestDigest", Kind::digest, a.getManifestDigest());
    id(field + ".imageName", Kind::imageName, a.getImageName());
    id(field + ".imageVersion", Kind::imageVersion, a.getImageVersion());
  }
  std::optional<std::string> take() { return std::move(problem_); }

 private:
  std::optional<std::string> problem_;
};

void checkTask(Checker& c, Task::Reader t) {
  c.id("assignTask.taskId", Kind::taskId, t.getTaskId());
  c.id("assignTask.jobId", Kind::jobId, t.getJobId());
  auto k = t.getKind();
  switch (k.which()) {
    case Task::Kind::BUILD: {
      auto b = k.getBuild();
      c.id("assignTask.build.definitionDigest", Kind::digest, b.getDefinitionDigest());
      c.id("assignTask.build.imageName", Kind::imageName, b.getImageName());
      c.id("assignTask.build.imageVersion", Kind::imageVersion, b.getImageVersion());
      c.optional("assignTask.build.definitionName", Kind::bundlePath, b.getDefinitionName());
      for (auto f : b.getBundle())
        c.id("assignTask.build.bundle.path", Kind::bundlePath, f.getPath());
      break;
    }
    case Task::Kind::FETCH: {
      auto f = k.getFetch();
      c.id("assignTask.fetch.artifactId", Kind::imageId, f.getArtifactId());
      c.id("assignTask.fetch.manifestDigest", Kind::digest, f.getManifestDigest());
      c.id("assignTask.fetch.imageName", Kind::imageName, f.getImageName());
      c.id("assignTask.fetch.imageVersion", Kind::imageVersion, f.getImageVersion());
      c.id("assignTask.fetch.upstreamName", Kind::agentName, f.getUpstreamName());
      c.id("assignTask.fetch.upstreamKey", Kind::curveKey, f.getUpstreamKey());
      break;
    }
    case Task::Kind::REGISTER: {
      auto r = k.getRegister();
      c.id("assignTask.register.artifactId", Kind::imageId, r.getArtifactId());
      c.id("assignTask.register.manifestDigest", Kind::digest, r.getManifestDigest());
      c.id("assignTask.register.buildId", Kind::buildId, r.getBuildId());
      c.id("assignTask.register.imageName", Kind::imageName, r.getImageName());
      c.id("assignTask.register.imageVersion", Kind::imageVersion, r.getImageVersion());
      c.id("assignTask.register.sha256", Kind::digest, r.getSha256());
      c.id("assignTask.register.sha512", Kind::sha512, r.getSha512());
      break;
    }
  }
}

}  // namespace

std::optional<std::string> checkArtifactIds(const std::string& field,
                                            ArtifactSummary::Reader artifact) {
  Checker c;
  c.artifact(field, artifact);
  return c.take();
}

std::optional<std::string> checkIds(Envelope::Reader env) {
  Checker c;
  auto body = env.getBody();
  switch (body.which()) {
    case Envelope::Body::HELLO: {
      auto h = body.getHello();
      c.id("hello.name", Kind::agentName, h.getName());
      // Empty: the agent serves nothing (a controller's glance agent may not).
      if (h.getDataEndpoint().size() > 0)
        c.id("hello.dataEndpoint", Kind::dataEndpoint, h.getDataEndpoint());
      for (auto t : h.getActiveTasks())
        c.id("hello.activeTasks", Kind::taskId, t);
      for (auto a : h.getInventory())
        c.artifact("hello.inventory", a);
      break;
    }
    case Envelope::Body::TASK_EVENT: {
      auto e = body.getTaskEvent();
      c.id("taskEvent.taskId", Kind::taskId, e.getTaskId());
      c.id("taskEvent.jobId", Kind::jobId, e.getJobId());
      auto k = e.getKind();
      if (k.which() == TaskEvent::Kind::COMPLETED) {
        auto r = k.getCompleted();
        if (r.hasArtifact() && r.getArtifact().getId().size() > 0)
          c.artifact("taskEvent.completed.artifact", r.getArtifact());
        for (auto a : r.getMoreArtifacts())
          c.artifact("taskEvent.completed.moreArtifacts", a);
      }
      break;
    }
    case Envelope::Body::ASSIGN_TASK:
      checkTask(c, body.getAssignTask());
      break;
    case Envelope::Body::CANCEL_TASK:
      c.id("cancelTask.taskId", Kind::taskId, body.getCancelTask().getTaskId());
      break;
    case Envelope::Body::TASK_EVENT_ACK:
      c.id("taskEventAck.taskId", Kind::taskId, body.getTaskEventAck().getTaskId());
      break;
    case Envelope::Body::GRANT: {
      auto g = body.getGrant();
      c.id("grant.artifactId", Kind::imageId, g.getArtifactId());
      c.id("grant.peerName", Kind::agentName, g.getPeerName());
      c.id("grant.peerKey", Kind::curveKey, g.getPeerKey());
      c.id("grant.jobId", Kind::jobId, g.getJobId());
      break;
    }
    default:
      break;  // operator requests are checked by the operator API, which answers with an error
  }
  return c.take();
}

}  // namespace imgpipe::proto
