#include "coordinator/cli/render.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/units.h"
#include "definition/outputs.h"

namespace imgpipe::cli {
namespace {

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string roleName(proto::Role r) {
  switch (r) {
    case proto::Role::BUILD:
      return "build";
    case proto::Role::RELAY:
      return "relay";
    case proto::Role::GLANCE:
      return "glance";
    case proto::Role::OPERATOR:
      return "operator";
    default:
      return "unknown";
  }
}

std::string levelName(proto::LogLevel l) {
  return l == proto::LogLevel::ERROR ? "error" : l == proto::LogLevel::WARN ? "warn" : "info";
}

std::vector<std::string> texts(capnp::List<capnp::Text>::Reader list) {
  std::vector<std::string> out;
  for (auto t : list)
    out.emplace_back(t);
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : sep) + s;
  return out;
}

// An artifact's kind as shown: "" from agents before 0.5 is the qcow2; an unknown one as sent.
std::string kindName(proto::ArtifactSummary::Reader a) {
  const auto kind = definition::parseOutputField(a.getKind().cStr());
  return kind ? std::string(definition::toString(*kind)) : std::string(a.getKind().cStr());
}

}  // namespace

std::string stateName(proto::JobState s) {
  switch (s) {
    case proto::JobState::QUEUED:
      return "queued";
    case proto::JobState::BUILDING:
      return "building";
    case proto::JobState::TRANSFERRING:
      return "transferring";
    case proto::JobState::REGISTERING:
      return "registering";
    case proto::JobState::DONE:
      return "done";
    case proto::JobState::FAILED:
      return "failed";
    case proto::JobState::CANCELLED:
      return "cancelled";
  }
  return "?";
}

std::string stateName(proto::StepState s) {
  switch (s) {
    case proto::StepState::PENDING:
      return "pending";
    case proto::StepState::RUNNING:
      return "running";
    case proto::StepState::DONE:
      return "done";
    case proto::StepState::FAILED:
      return "failed";
    case proto::StepState::CANCELLED:
      return "cancelled";
    case proto::StepState::WAITING:
      return "waiting";
  }
  return "?";
}

nlohmann::json toJson(proto::JobSummary::Reader s) {
  return {{"id", s.getId()},
          {"image", s.getImageName()},
          {"version", s.getImageVersion()},
          {"state", stateName(s.getState())},
          {"created_ms", s.getCreatedMs()},
          {"updated_ms", s.getUpdatedMs()},
          {"location", s.getLocation()},
          {"targets", texts(s.getTargets())},
          {"priority", s.getPriority()},
          {"error", s.getError()}};
}

nlohmann::json toJson(capnp::List<proto::CheckResult>::Reader checks) {
  auto out = nlohmann::json::array();
  for (auto c : checks)
    out.push_back({{"group", c.getGroup()},
                   {"check", c.getCheck()},
                   {"ok", c.getOk()},
                   {"skipped", c.getSkipped()},
                   {"detail", c.getDetail()}});
  return out;
}

nlohmann::json toJson(proto::JobDetail::Reader d) {
  auto j = toJson(d.getSummary());
  auto steps = nlohmann::json::array();
  for (auto s : d.getSteps())
    steps.push_back({{"name", s.getName()},
                     {"agent", s.getAgent()},
                     {"state", stateName(s.getState())},
                     {"detail", s.getDetail()},
                     {"done", s.getDone()},
                     {"total", s.getTotal()},
                     {"rate_bps", s.getRateBps()},
                     {"eta_s", s.getEtaS()},
                     {"attempts", s.getAttempts()},
                     {"retries", s.getRetries()},
                     {"unit", s.getUnit().size() ? std::string(s.getUnit()) : "bytes"},
                     {"error", s.getError()},
                     {"started_ms", s.getStartedMs()},
                     {"finished_ms", s.getFinishedMs()},
                     {"checks", toJson(s.getChecks())}});
  j["steps"] = steps;
  // "artifact": the qcow2, as before 0.5; "artifacts": every file the job delivers, by kind.
  auto artifacts = nlohmann::json::array();
  auto addArtifact = [&](proto::ArtifactSummary::Reader a) {
    auto outputs = nlohmann::json::array();
    for (auto o : a.getOutputs())
      outputs.push_back(std::string(o));
    const std::string kind = kindName(a);
    // Built before outputs: the qcow2 alone.
    if (outputs.empty() && kind == definition::toString(definition::OutputKind::qcow2))
      outputs.push_back(kind);
    nlohmann::json one = {{"kind", kind},
                          {"sha256", a.getId()},
                          {"sha512", a.getSha512()},
                          {"size", a.getSize()},
                          {"virtual_size", a.getVirtualSize()},
                          {"manifest_digest", a.getManifestDigest()},
                          {"version", a.getImageVersion()},
                          {"outputs", outputs}};
    artifacts.push_back(one);
    return one;
  };
  if (d.hasArtifact() && d.getArtifact().getId().size() > 0)
    j["artifact"] = addArtifact(d.getArtifact());
  for (auto a : d.getMoreArtifacts())
    addArtifact(a);
  j["artifacts"] = artifacts;
  j["definition_digest"] = d.getDefinitionDigest();
  j["definition_name"] = d.getDefinitionName();
  auto images = nlohmann::json::array();
  for (auto g : d.getGlanceImages())
    images.push_back({{"controller", g.getController()},
                      {"image_id", g.getImageId()},
                      {"output", g.getOutput()}});
  j["glance_images"] = images;
  return j;
}

nlohmann::json toJson(proto::AgentInfo::Reader a) {
  return {{"name", a.getName()},
          {"role", roleName(a.getRole())},
          {"online", a.getOnline()},
          {"capacity", a.getCapacity()},
          {"running", a.getRunning()},
          {"labels", texts(a.getLabels())},
          {"last_seen_ms", a.getLastSeenMs()},
          {"version", a.getVersion()},
          {"data_endpoint", a.getDataEndpoint()},
          {"free_bytes", a.getFreeBytes()}};
}

nlohmann::json toJson(proto::JobEvent::Reader e) {
  return {{"seq", e.getSeq()},   {"time_ms", e.getTimeMs()}, {"level", levelName(e.getLevel())},
          {"step", e.getStep()}, {"agent", e.getAgent()},    {"message", e.getMessage()}};
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

std::string age(std::int64_t sinceMs) {
  if (sinceMs <= 0) return "-";
  auto s = std::max<std::int64_t>(0, (nowMs() - sinceMs) / 1000);
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string clockTime(std::int64_t epochMs) {
  std::time_t t = epochMs / 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string progressBar(std::uint64_t done, std::uint64_t total, int width) {
  int filled = total ? static_cast<int>(static_cast<double>(std::min(done, total)) /
                                        static_cast<double>(total) * width)
                     : 0;
  return "[" + std::string(static_cast<size_t>(filled), '#') +
         std::string(static_cast<size_t>(width - filled), '.') + "]";
}

std::string stepProgress(proto::StepInfo::Reader s) {
  std::string out;
  const std::string unit = s.getUnit();
  const bool bytes = unit.empty() || unit == "bytes";
  if (s.getTotal() > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(s.getDone() * 100 / s.getTotal()));
    out += progressBar(s.getDone(), s.getTotal(), 20) + " " + pct;
    if (bytes)
      out += " " + formatBytes(s.getDone()) + "/" + formatBytes(s.getTotal());
    else if (unit == "seconds")
      out += " " + formatDuration(std::chrono::seconds(s.getDone())) + "/" +
             formatDuration(std::chrono::seconds(s.getTotal()));
  }
  if (s.getRateBps() > 0 && bytes) out += "  " + formatBytes(s.getRateBps()) + "/s";
  if (s.getEtaS() > 0 && s.getState() == proto::StepState::RUNNING)
    out += "  ETA " + formatDuration(std::chrono::seconds(s.getEtaS()));
  if (s.getRetries() > 0) out += "  retries " + std::to_string(s.getRetries());
  return out;
}

void printJobList(std::ostream& out, capnp::List<proto::JobSummary>::Reader jobs) {
  Table t({"ID", "STATE", "IMAGE", "VERSION", "AGE", "WHERE"});
  for (auto j : jobs)
    t.add({std::string(j.getId()), stateName(j.getState()), std::string(j.getImageName()),
           std::string(j.getImageVersion()), age(j.getCreatedMs()),
           j.getState() == proto::JobState::FAILED && j.getError().size()
               ? std::string(j.getError())
               : std::string(j.getLocation())});
  t.print(out);
}

void printJobDetail(std::ostream& out, proto::JobDetail::Reader d) {
  auto s = d.getSummary();
  out << "job " << s.getId().cStr() << ": " << s.getImageName().cStr() << " "
      << s.getImageVersion().cStr() << "  [" << stateName(s.getState()) << "]\n";
  out << "  definition: " << d.getDefinitionName().cStr() << " (sha256 "
      << d.getDefinitionDigest().cStr() << ")\n";
  out << "  targets:    " << join(texts(s.getTargets()), ", ") << "\n";
  out << "  created:    " << age(s.getCreatedMs()) << " ago, updated " << age(s.getUpdatedMs())
      << " ago\n";
  if (s.getError().size()) out << "  error:      " << s.getError().cStr() << "\n";
  auto printArtifact = [&](proto::ArtifactSummary::Reader a) {
    out << "  artifact:   " << kindName(a) << ", " << formatBytes(a.getSize()) << " (virtual "
        << formatBytes(a.getVirtualSize()) << ")\n";
    out << "    sha256    " << a.getId().cStr() << "\n";
    out << "    sha512    " << a.getSha512().cStr() << "\n";
    if (a.getOutputs().size() > 0)
      out << "    outputs   " << join(texts(a.getOutputs()), ", ") << "\n";
  };
  if (d.hasArtifact() && d.getArtifact().getId().size() > 0) printArtifact(d.getArtifact());
  for (auto a : d.getMoreArtifacts())
    printArtifact(a);
  for (auto g : d.getGlanceImages())
    out << "  glance:     " << g.getController().cStr() << " image " << g.getImageId().cStr()
        << " (" << g.getOutput().cStr() << ")\n";
  out << "\n";
  Table t({"STEP", "AGENT", "STATE", "ATTEMPT", "PROGRESS"});
  for (auto st : d.getSteps()) {
    std::string progress = stepProgress(st);
    if (st.getDetail().size())
      progress = std::string(st.getDetail()) + (progress.empty() ? "" : "  " + progress);
    if (st.getError().size()) progress = std::string(st.getError());
    t.add({std::string(st.getName()), st.getAgent().size() ? std::string(st.getAgent()) : "-",
           stateName(st.getState()), std::to_string(st.getAttempts()), progress});
  }
  t.print(out);
  // The image's checks (offline validation, acceptance boot): failed ones first, so that what
  // broke is the first thing read.
  for (auto st : d.getSteps()) {
    if (st.getChecks().size() == 0) continue;
    unsigned failed = 0, skipped = 0;
    for (auto c : st.getChecks()) {
      failed += !c.getOk() && !c.getSkipped();
      skipped += c.getSkipped();
    }
    out << "\n"
        << st.getName().cStr() << " checks: " << st.getChecks().size() - failed - skipped << " ok, "
        << failed << " failed, " << skipped << " skipped\n";
    Table c({"GROUP", "CHECK", "RESULT", "DETAIL"});
    for (bool wantFailed : {true, false})
      for (auto ck : st.getChecks()) {
        bool isFailed = !ck.getOk() && !ck.getSkipped();
        if (isFailed != wantFailed) continue;
        std::string detail = ck.getDetail();
        if (detail.size() > 100) detail = detail.substr(0, 97) + "...";
        c.add({std::string(ck.getGroup()), std::string(ck.getCheck()),
               ck.getSkipped() ? "skipped"
               : ck.getOk()    ? "ok"
                               : "FAILED",
               detail});
      }
    c.print(out);
  }
}

void printAgents(std::ostream& out, capnp::List<proto::AgentInfo>::Reader agents) {
  Table t({"NAME", "ROLE", "STATE", "TASKS", "LABELS", "LAST SEEN", "FREE", "ENDPOINT", "VERSION"});
  for (auto a : agents)
    t.add({std::string(a.getName()), roleName(a.getRole()), a.getOnline() ? "online" : "lost",
           std::to_string(a.getRunning()) + "/" + std::to_string(a.getCapacity()),
           join(texts(a.getLabels())), age(a.getLastSeenMs()),
           a.getFreeBytes() ? formatBytes(a.getFreeBytes()) : "-",
           a.getDataEndpoint().size() ? std::string(a.getDataEndpoint()) : "-",
           std::string(a.getVersion())});
  t.print(out);
}

void printEvent(std::ostream& out, proto::JobEvent::Reader e) {
  out << clockTime(e.getTimeMs()) << " " << levelName(e.getLevel());
  if (e.getStep().size()) out << " " << e.getStep().cStr();
  if (e.getAgent().size()) out << " [" << e.getAgent().cStr() << "]";
  out << " " << e.getMessage().cStr() << "\n";
}

std::vector<std::string> watchLines(proto::JobDetail::Reader d) {
  auto s = d.getSummary();
  std::vector<std::string> lines;
  lines.push_back("job " + std::string(s.getId()) + " " + std::string(s.getImageName()) + " " +
                  std::string(s.getImageVersion()) + ": " + stateName(s.getState()) +
                  (s.getError().size() ? " — " + std::string(s.getError()) : ""));
  size_t width = 0;
  for (auto st : d.getSteps())
    width = std::max(width, st.getName().size());
  for (auto st : d.getSteps()) {
    std::string name = st.getName();
    name.resize(width, ' ');
    std::string line = "  " + name + "  " + stateName(st.getState());
    line.resize(width + 14, ' ');
    if (st.getDetail().size()) line += std::string(st.getDetail()) + "  ";
    line += stepProgress(st);
    if (st.getError().size()) line += std::string(st.getError());
    lines.push_back(line);
  }
  return lines;
}

}  // namespace imgpipe::cli
