#include "common/agent/wire.h"

#include <chrono>

namespace imgpipe::agent {

TaskSpec toTaskSpec(proto::Task::Reader task) {
  TaskSpec spec;
  spec.taskId = task.getTaskId();
  spec.jobId = task.getJobId();
  spec.step = task.getStep();
  spec.attempt = task.getAttempt();
  auto kind = task.getKind();
  switch (kind.which()) {
    case proto::Task::Kind::BUILD: {
      auto b = kind.getBuild();
      BuildSpec build{b.getDefinition(),   b.getDefinitionName(), b.getDefinitionDigest(),
                      b.getImageVersion(), b.getImageName(),      {}};
      for (auto f : b.getBundle())
        build.bundleFiles[f.getPath()] = std::string(
            reinterpret_cast<const char*>(f.getContent().begin()), f.getContent().size());
      spec.kind = std::move(build);
      break;
    }
    case proto::Task::Kind::FETCH: {
      auto f = kind.getFetch();
      spec.kind = FetchSpec{f.getArtifactId(),   f.getManifestDigest(), f.getImageName(),
                            f.getImageVersion(), f.getUpstreamName(),   f.getUpstreamEndpoint(),
                            f.getUpstreamKey(),  f.getRateLimit(),      f.getSize()};
      break;
    }
    case proto::Task::Kind::REGISTER: {
      auto r = kind.getRegister();
      spec.kind = RegisterSpec{r.getArtifactId(), r.getManifestDigest(), r.getBuildId(),
                               r.getImageName(),  r.getImageVersion(),   r.getSha256(),
                               r.getSha512(),     r.getSize(),           r.getOutput()};
      break;
    }
  }
  return spec;
}

void fillTask(proto::Task::Builder out, const TaskSpec& spec) {
  out.setTaskId(spec.taskId);
  out.setJobId(spec.jobId);
  out.setStep(spec.step);
  out.setAttempt(spec.attempt);
  auto kind = out.initKind();
  if (auto* b = std::get_if<BuildSpec>(&spec.kind)) {
    auto o = kind.initBuild();
    o.setDefinition(b->definition);
    o.setDefinitionName(b->definitionName);
    o.setDefinitionDigest(b->definitionDigest);
    o.setImageVersion(b->imageVersion);
    o.setImageName(b->imageName);
    auto files = o.initBundle(static_cast<unsigned>(b->bundleFiles.size()));
    unsigned i = 0;
    for (const auto& [path, content] : b->bundleFiles) {
      files[i].setPath(path);
      files[i].setContent(
          kj::arrayPtr(reinterpret_cast<const capnp::byte*>(content.data()), content.size()));
      ++i;
    }
  } else if (auto* f = std::get_if<FetchSpec>(&spec.kind)) {
    auto o = kind.initFetch();
    o.setArtifactId(f->artifactId);
    o.setManifestDigest(f->manifestDigest);
    o.setImageName(f->imageName);
    o.setImageVersion(f->imageVersion);
    o.setUpstreamName(f->upstreamName);
    o.setUpstreamEndpoint(f->upstreamEndpoint);
    o.setUpstreamKey(f->upstreamKey);
    o.setRateLimit(f->rateLimit);
    o.setSize(f->size);
  } else if (auto* r = std::get_if<RegisterSpec>(&spec.kind)) {
    auto o = kind.initRegister();
    o.setArtifactId(r->artifactId);
    o.setManifestDigest(r->manifestDigest);
    o.setBuildId(r->buildId);
    o.setImageName(r->imageName);
    o.setImageVersion(r->imageVersion);
    o.setSha256(r->sha256);
    o.setSha512(r->sha512);
    o.setSize(r->size);
    o.setOutput(r->output);
  }
}

GrantSpec toGrantSpec(proto::Grant::Reader g) {
  return GrantSpec{g.getArtifactId(), g.getPeerName(), g.getPeerKey(), g.getJobId(), g.getRevoke()};
}

ArtifactInfo toArtifactInfo(proto::ArtifactSummary::Reader a) {
  ArtifactInfo info{
      a.getId(),        a.getSha512(),       a.getSize(), a.getVirtualSize(), a.getManifestDigest(),
      a.getImageName(), a.getImageVersion(), {},          a.getKind()};
  for (auto o : a.getOutputs())
    info.outputs.emplace_back(o);
  return info;
}

void fillArtifact(proto::ArtifactSummary::Builder out, const ArtifactInfo& a) {
  // With its size: an id holding a NUL goes out whole (and is refused whole), not cut short.
  out.setId(capnp::Text::Reader(a.id.data(), a.id.size()));
  out.setSha512(a.sha512);
  out.setSize(a.size);
  out.setVirtualSize(a.virtualSize);
  out.setManifestDigest(a.manifestDigest);
  out.setImageName(a.imageName);
  out.setImageVersion(a.imageVersion);
  auto outputs = out.initOutputs(static_cast<unsigned>(a.outputs.size()));
  for (unsigned i = 0; i < a.outputs.size(); ++i)
    outputs.set(i, a.outputs[i]);
  out.setKind(a.kind);
}

proto::Role toProto(Role role) {
  switch (role) {
    case Role::build:
      return proto::Role::BUILD;
    case Role::relay:
      return proto::Role::RELAY;
    case Role::glance:
      return proto::Role::GLANCE;
    case Role::operator_:
      return proto::Role::OPERATOR;
  }
  return proto::Role::UNKNOWN;
}

std::optional<Role> fromProto(proto::Role role) {
  switch (role) {
    case proto::Role::BUILD:
      return Role::build;
    case proto::Role::RELAY:
      return Role::relay;
    case proto::Role::GLANCE:
      return Role::glance;
    case proto::Role::OPERATOR:
      return Role::operator_;
    default:
      return std::nullopt;
  }
}

proto::LogLevel toProto(LogLevel level) {
  switch (level) {
    case LogLevel::info:
      return proto::LogLevel::INFO;
    case LogLevel::warn:
      return proto::LogLevel::WARN;
    case LogLevel::error:
      return proto::LogLevel::ERROR;
  }
  return proto::LogLevel::INFO;
}

std::int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace imgpipe::agent
