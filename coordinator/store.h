#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/model.h"
#include "coordinator/sqlite.h"

namespace imgpipe::coord {

// Persistent state: jobs, their steps and events, and the agents ever seen. SQLite in WAL mode
// with synchronous=FULL: a transaction that returned from commit survives kill -9 and power loss.
// Not thread-safe; used from the coordinator's event loop only.
class Store {
 public:
  // The version of the schema this build creates and migrates older databases to.
  static constexpr int kSchemaVersion = 5;

  explicit Store(const std::filesystem::path& stateDir);

  Database& db() { return db_; }
  // A random id made when the database was created; names this coordinator's jobs everywhere.
  const std::string& coordinatorId() const { return coordinatorId_; }

  // Inserts the job (assigning job.id), its steps and the files its definition brings with it
  // (bundle path -> bytes); caller holds a Transaction.
  void insertJob(Job& job, const std::string& definition,
                 const std::map<std::string, std::string>& bundleFiles = {});
  std::map<std::string, std::string> loadBundleFiles(std::int64_t jobId);
  // Whether a job of this image already has this version (derived versions must be unique).
  bool versionTaken(const std::string& imageName, const std::string& version);
  void updateJob(const Job& job);
  void insertStep(std::int64_t jobId, const Step& step);
  void updateStep(std::int64_t jobId, const Step& step);
  std::uint64_t appendEvent(std::int64_t jobId, const JobEventRow& event);

  std::vector<Job> loadActiveJobs();
  std::optional<Job> loadJob(std::int64_t id);
  std::vector<Job> listJobs(const std::vector<JobState>& states, unsigned limit);
  std::string loadDefinition(std::int64_t jobId);
  std::vector<JobEventRow> events(std::int64_t jobId, std::uint64_t afterSeq);

  struct AgentRow {
    std::string name, role, version, dataEndpoint;
    std::vector<std::string> labels;
    unsigned capacity = 0;
    std::int64_t lastSeenMs = 0;
  };
  void saveAgent(const AgentRow& agent);
  std::vector<AgentRow> loadAgents();

 private:
  Job readJob(Statement& s);
  void loadSteps(Job& job);

  Database db_;
  std::string coordinatorId_;
};

}  // namespace imgpipe::coord
