#include "coordinator/store.h"

#include <spdlog/spdlog.h>

#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"

namespace imgpipe::coord {
namespace {

constexpr int kSchemaVersion = Store::kSchemaVersion;

// Steps from one schema version to the next, in order; kSchema always creates the newest.
// migrations[v - 1] takes a database from version v to v + 1.
const char* const kMigrations[] = {
    // 1 -> 2: progress units ("bytes", "seconds", "permille")
    "ALTER TABLE steps ADD COLUMN unit TEXT NOT NULL DEFAULT ''",
    // 2 -> 3: the files a definition brings with it (definition/bundle.h)
    "CREATE TABLE IF NOT EXISTS bundle_files (job_id INTEGER NOT NULL REFERENCES jobs(id), "
    "path TEXT NOT NULL, content BLOB NOT NULL, PRIMARY KEY (job_id, path))",
    // 3 -> 4: the output kind a register step registers (definition/outputs.h)
    "ALTER TABLE steps ADD COLUMN output TEXT NOT NULL DEFAULT ''",
    // 4 -> 5: a job's artifacts beside the qcow2 (the iso), a JSON list as `artifact`
    "ALTER TABLE jobs ADD COLUMN more_artifacts TEXT NOT NULL DEFAULT '[]'",
};
static_assert(std::size(kMigrations) == kSchemaVersion - 1);

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  image_name TEXT NOT NULL, image_version TEXT NOT NULL,
  definition TEXT NOT NULL, definition_name TEXT NOT NULL, definition_digest TEXT NOT NULL,
  targets TEXT NOT NULL, labels TEXT NOT NULL, priority INTEGER NOT NULL,
  state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
  artifact TEXT, more_artifacts TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS steps (
  job_id INTEGER NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL,
  name TEXT NOT NULL, kind TEXT NOT NULL, agent TEXT NOT NULL, upstream TEXT NOT NULL,
  state TEXT NOT NULL, attempt INTEGER NOT NULL, task_id TEXT NOT NULL, detail TEXT NOT NULL,
  done INTEGER NOT NULL, total INTEGER NOT NULL, rate INTEGER NOT NULL, eta INTEGER NOT NULL,
  retries INTEGER NOT NULL, error TEXT NOT NULL, started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL, result TEXT NOT NULL,
  not_before_ms INTEGER NOT NULL, unit TEXT NOT NULL DEFAULT '', output TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, time_ms INTEGER NOT NULL,
  level TEXT NOT NULL, step TEXT NOT NULL, agent TEXT NOT NULL, message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS bundle_files (
  job_id INTEGER NOT NULL REFERENCES jobs(id), path TEXT NOT NULL, content BLOB NOT NULL,
  PRIMARY KEY (job_id, path)
);
CREATE TABLE IF NOT EXISTS agents (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, labels TEXT NOT NULL, capacity INTEGER NOT NULL,
  version TEXT NOT NULL, data_endpoint TEXT NOT NULL, last_seen_ms INTEGER NOT NULL
);
)sql";

std::string randomId() {
  std::random_device rd;
  std::uniform_int_distribution<int> hex(0, 15);
  std::string out;
  for (int i = 0; i < 16; ++i)
    out.push_back("0123456789abcdef"[hex(rd)]);
  return out;
}

std::string toJson(const std::vector<std::string>& v) {
  return nlohmann::json(v).dump();
}
std::vector<std::string> fromJsonList(const std::string& s) {
  return s.empty() ? std::vector<std::string>{}
                   : nlohmann::json::parse(s).get<std::vector<std::string>>();
}

nlohmann::json toJson(const agent::ArtifactInfo& a) {
  return {{"id", a.id},
          {"sha512", a.sha512},
          {"size", a.size},
          {"virtual_size", a.virtualSize},
          {"manifest_digest", a.manifestDigest},
          {"image_name", a.imageName},
          {"image_version", a.imageVersion},
          {"outputs", a.outputs},
          {"kind", a.kind}};
}

agent::ArtifactInfo artifactFrom(const nlohmann::json& j) {
  return agent::ArtifactInfo{j.at("id"),
                             j.at("sha512"),
                             j.at("size"),
                             j.at("virtual_size"),
                             j.at("manifest_digest"),
                             j.at("image_name"),
                             j.at("image_version"),
                             j.value("outputs", std::vector<std::string>{}),
                             j.value("kind", "")};
}

std::string artifactJson(const std::optional<agent::ArtifactInfo>& a) {
  return a ? toJson(*a).dump() : "";
}

std::optional<agent::ArtifactInfo> artifactFromJson(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return artifactFrom(nlohmann::json::parse(s));
}

std::string artifactsJson(const std::vector<agent::ArtifactInfo>& list) {
  auto out = nlohmann::json::array();
  for (const auto& a : list)
    out.push_back(toJson(a));
  return out.dump();
}

std::vector<agent::ArtifactInfo> artifactsFromJson(const std::string& s) {
  std::vector<agent::ArtifactInfo> out;
  if (s.empty()) return out;
  for (const auto& j : nlohmann::json::parse(s))
    out.push_back(artifactFrom(j));
  return out;
}

std::string levelName(agent::LogLevel l) {
  return l == agent::LogLevel::error ? "error" : l == agent::LogLevel::warn ? "warn" : "info";
}
agent::LogLevel levelFrom(const std::string& s) {
  return s == "error"  ? agent::LogLevel::error
         : s == "warn" ? agent::LogLevel::warn
                       : agent::LogLevel::info;
}

constexpr const char* kJobColumns =
    "id, image_name, image_version, definition_name, definition_digest, targets, labels, priority, "
    "state, error, created_ms, updated_ms, artifact, more_artifacts";

}  // namespace

Store::Store(const std::filesystem::path& stateDir)
    : db_((std::filesystem::create_directories(stateDir), stateDir / "coordinator.db")) {
  db_.exec("PRAGMA journal_mode=WAL");
  db_.exec("PRAGMA synchronous=FULL");
  db_.exec("PRAGMA foreign_keys=ON");
  Transaction tx(db_);
  db_.exec(kSchema);
  auto get = db_.prepare("SELECT value FROM meta WHERE key = ?");
  get.bind(1, "schema_version");
  if (get.step()) {
    int version = std::stoi(get.getText(0));
    get.reset();
    if (version > kSchemaVersion)
      throw Error("database " + (stateDir / "coordinator.db").string() + " has schema version " +
                  std::to_string(version) + ", newer than this coordinator understands (" +
                  std::to_string(kSchemaVersion) + "); upgrade imgpipe");
    for (; version < kSchemaVersion; ++version) {
      spdlog::info("migrating the coordinator database from schema version {} to {}", version,
                   version + 1);
      db_.exec(kMigrations[version - 1]);
    }
    db_.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'")
        .bind(1, std::to_string(kSchemaVersion))
        .run();
  } else {
    db_.prepare("INSERT INTO meta(key, value) VALUES ('schema_version', ?)")
        .bind(1, std::to_string(kSchemaVersion))
        .run();
  }
  get.reset();
  get.bind(1, "coordinator_id");
  if (get.step()) {
    coordinatorId_ = get.getText(0);
  } else {
    coordinatorId_ = randomId();
    db_.prepare("INSERT INTO meta(key, value) VALUES ('coordinator_id', ?)")
        .bind(1, coordinatorId_)
        .run();
  }
  get.reset();
  tx.commit();
}

void Store::insertJob(Job& job, const std::string& definition,
                      const std::map<std::string, std::string>& bundleFiles) {
  auto s = db_.prepare(
      "INSERT INTO jobs(image_name, image_version, definition, definition_name, definition_digest, "
      "targets, labels, priority, state, error, created_ms, updated_ms, artifact, "
      "more_artifacts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, job.imageName)
      .bind(2, job.imageVersion)
      .bind(3, definition)
      .bind(4, job.definitionName);
  s.bind(5, job.definitionDigest).bind(6, toJson(job.targets)).bind(7, toJson(job.labels));
  s.bind(8, job.priority).bind(9, toString(job.state)).bind(10, job.error);
  s.bind(11, job.createdMs).bind(12, job.updatedMs).bind(13, artifactJson(job.artifact));
  s.bind(14, artifactsJson(job.moreArtifacts));
  s.run();
  job.id = db_.lastInsertId();
  for (const auto& step : job.steps)
    insertStep(job.id, step);
  auto f = db_.prepare("INSERT INTO bundle_files(job_id, path, content) VALUES (?,?,?)");
  for (const auto& [path, content] : bundleFiles) {
    f.bind(1, job.id).bind(2, path).bindBlob(3, content);
    f.run();
  }
}

std::map<std::string, std::string> Store::loadBundleFiles(std::int64_t jobId) {
  auto s = db_.prepare("SELECT path, content FROM bundle_files WHERE job_id=?");
  s.bind(1, jobId);
  std::map<std::string, std::string> out;
  while (s.step())
    out[s.getText(0)] = s.getBlob(1);
  return out;
}

bool Store::versionTaken(const std::string& imageName, const std::string& version) {
  auto s = db_.prepare("SELECT 1 FROM jobs WHERE image_name=? AND image_version=? LIMIT 1");
  s.bind(1, imageName).bind(2, version);
  return s.step();
}

void Store::updateJob(const Job& job) {
  auto s = db_.prepare(
      "UPDATE jobs SET image_version=?, targets=?, state=?, error=?, updated_ms=?, artifact=?, "
      "more_artifacts=? WHERE id=?");
  s.bind(1, job.imageVersion)
      .bind(2, toJson(job.targets))
      .bind(3, toString(job.state))
      .bind(4, job.error);
  s.bind(5, job.updatedMs).bind(6, artifactJson(job.artifact));
  s.bind(7, artifactsJson(job.moreArtifacts)).bind(8, job.id);
  s.run();
}

void Store::insertStep(std::int64_t jobId, const Step& st) {
  auto s = db_.prepare(
      "INSERT INTO steps(job_id, idx, name, kind, agent, upstream, state, attempt, task_id, "
      "detail, "
      "done, total, rate, eta, retries, error, started_ms, finished_ms, last_seq, result, "
      "not_before_ms, unit, output) "
      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, jobId).bind(2, st.index).bind(3, st.name).bind(4, toString(st.kind)).bind(5, st.agent);
  s.bind(6, st.upstream).bind(7, toString(st.state)).bind(8, st.attempt).bind(9, st.taskId);
  s.bind(10, st.detail).bind(11, st.done).bind(12, st.total).bind(13, st.rateBps).bind(14, st.etaS);
  s.bind(15, st.retries).bind(16, st.error).bind(17, st.startedMs).bind(18, st.finishedMs);
  s.bind(19, st.lastReliableSeq).bind(20, st.result).bind(21, st.notBeforeMs).bind(22, st.unit);
  s.bind(23, st.output);
  s.run();
}

void Store::updateStep(std::int64_t jobId, const Step& st) {
  auto s = db_.prepare(
      "UPDATE steps SET agent=?, state=?, attempt=?, task_id=?, detail=?, done=?, total=?, rate=?, "
      "eta=?, retries=?, error=?, started_ms=?, finished_ms=?, last_seq=?, result=?, "
      "not_before_ms=?, "
      "unit=? WHERE job_id=? AND idx=?");
  s.bind(1, st.agent).bind(2, toString(st.state)).bind(3, st.attempt).bind(4, st.taskId);
  s.bind(5, st.detail).bind(6, st.done).bind(7, st.total).bind(8, st.rateBps).bind(9, st.etaS);
  s.bind(10, st.retries).bind(11, st.error).bind(12, st.startedMs).bind(13, st.finishedMs);
  s.bind(14, st.lastReliableSeq).bind(15, st.result).bind(16, st.notBeforeMs).bind(17, st.unit);
  s.bind(18, jobId).bind(19, st.index);
  s.run();
}

std::uint64_t Store::appendEvent(std::int64_t jobId, const JobEventRow& e) {
  auto s = db_.prepare(
      "INSERT INTO events(job_id, time_ms, level, step, agent, message) VALUES (?,?,?,?,?,?)");
  s.bind(1, jobId).bind(2, e.timeMs).bind(3, levelName(e.level)).bind(4, e.step).bind(5, e.agent);
  s.bind(6, e.message);
  s.run();
  return static_cast<std::uint64_t>(db_.lastInsertId());
}

Job Store::readJob(Statement& s) {
  Job j;
  j.id = s.getInt(0);
  j.imageName = s.getText(1);
  j.imageVersion = s.getText(2);
  j.definitionName = s.getText(3);
  j.definitionDigest = s.getText(4);
  j.targets = fromJsonList(s.getText(5));
  j.labels = fromJsonList(s.getText(6));
  j.priority = static_cast<int>(s.getInt(7));
  j.state = parseJobState(s.getText(8)).value_or(JobState::failed);
  j.error = s.getText(9);
  j.createdMs = s.getInt(10);
  j.updatedMs = s.getInt(11);
  j.artifact = artifactFromJson(s.getText(12));
  j.moreArtifacts = artifactsFromJson(s.getText(13));
  return j;
}

void Store::loadSteps(Job& job) {
  auto s = db_.prepare(
      "SELECT idx, name, kind, agent, upstream, state, attempt, task_id, detail, done, total, "
      "rate, "
      "eta, retries, error, started_ms, finished_ms, last_seq, result, not_before_ms, unit, output "
      "FROM steps WHERE job_id=? ORDER BY idx");
  s.bind(1, job.id);
  while (s.step()) {
    Step st;
    st.index = static_cast<int>(s.getInt(0));
    st.name = s.getText(1);
    st.kind = parseStepKind(s.getText(2)).value_or(StepKind::build);
    st.agent = s.getText(3);
    st.upstream = s.getText(4);
    st.state = parseStepState(s.getText(5)).value_or(StepState::failed);
    st.attempt = static_cast<std::uint32_t>(s.getInt(6));
    st.taskId = s.getText(7);
    st.detail = s.getText(8);
    st.done = static_cast<std::uint64_t>(s.getInt(9));
    st.total = static_cast<std::uint64_t>(s.getInt(10));
    st.rateBps = static_cast<std::uint64_t>(s.getInt(11));
    st.etaS = static_cast<std::uint32_t>(s.getInt(12));
    st.retries = static_cast<std::uint32_t>(s.getInt(13));
    st.error = s.getText(14);
    st.startedMs = s.getInt(15);
    st.finishedMs = s.getInt(16);
    st.lastReliableSeq = static_cast<std::uint64_t>(s.getInt(17));
    st.result = s.getText(18);
    st.notBeforeMs = s.getInt(19);
    st.unit = s.getText(20);
    st.output = s.getText(21);
    job.steps.push_back(std::move(st));
  }
}

std::vector<Job> Store::loadActiveJobs() {
  auto s = db_.prepare(std::string("SELECT ") + kJobColumns +
                       " FROM jobs WHERE state NOT IN ('done','failed','cancelled') ORDER BY id");
  std::vector<Job> out;
  while (s.step())
    out.push_back(readJob(s));
  for (auto& j : out)
    loadSteps(j);
  return out;
}

std::optional<Job> Store::loadJob(std::int64_t id) {
  auto s = db_.prepare(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id=?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  Job j = readJob(s);
  loadSteps(j);
  return j;
}

std::vector<Job> Store::listJobs(const std::vector<JobState>& states, unsigned limit) {
  std::string sql = std::string("SELECT ") + kJobColumns + " FROM jobs";
  if (!states.empty()) {
    sql += " WHERE state IN (";
    for (size_t i = 0; i < states.size(); ++i)
      sql += (i ? ",'" : "'") + std::string(toString(states[i])) + "'";
    sql += ")";
  }
  sql += " ORDER BY id DESC LIMIT ?";
  auto s = db_.prepare(sql);
  s.bind(1, static_cast<std::int64_t>(limit));
  std::vector<Job> out;
  while (s.step())
    out.push_back(readJob(s));
  for (auto& j : out)
    loadSteps(j);
  return out;
}

std::string Store::loadDefinition(std::int64_t jobId) {
  auto s = db_.prepare("SELECT definition FROM jobs WHERE id=?");
  s.bind(1, jobId);
  if (!s.step()) throw Error("job " + std::to_string(jobId) + " not found");
  return s.getText(0);
}

std::vector<JobEventRow> Store::events(std::int64_t jobId, std::uint64_t afterSeq) {
  auto s = db_.prepare(
      "SELECT seq, time_ms, level, step, agent, message FROM events WHERE job_id=? AND seq>? ORDER "
      "BY seq");
  s.bind(1, jobId).bind(2, afterSeq);
  std::vector<JobEventRow> out;
  while (s.step())
    out.push_back({static_cast<std::uint64_t>(s.getInt(0)), s.getInt(1), levelFrom(s.getText(2)),
                   s.getText(3), s.getText(4), s.getText(5)});
  return out;
}

void Store::saveAgent(const AgentRow& a) {
  auto s = db_.prepare(
      "INSERT INTO agents(name, role, labels, capacity, version, data_endpoint, last_seen_ms) "
      "VALUES (?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET role=excluded.role, "
      "labels=excluded.labels, capacity=excluded.capacity, version=excluded.version, "
      "data_endpoint=excluded.data_endpoint, last_seen_ms=excluded.last_seen_ms");
  s.bind(1, a.name)
      .bind(2, a.role)
      .bind(3, toJson(a.labels))
      .bind(4, a.capacity)
      .bind(5, a.version);
  s.bind(6, a.dataEndpoint).bind(7, a.lastSeenMs);
  s.run();
}

std::vector<Store::AgentRow> Store::loadAgents() {
  auto s = db_.prepare(
      "SELECT name, role, labels, capacity, version, data_endpoint, last_seen_ms FROM agents ORDER "
      "BY name");
  std::vector<AgentRow> out;
  while (s.step()) {
    AgentRow a;
    a.name = s.getText(0);
    a.role = s.getText(1);
    a.labels = fromJsonList(s.getText(2));
    a.capacity = static_cast<unsigned>(s.getInt(3));
    a.version = s.getText(4);
    a.dataEndpoint = s.getText(5);
    a.lastSeenMs = s.getInt(6);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace imgpipe::coord
