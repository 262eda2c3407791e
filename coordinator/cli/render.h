#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "protocol/schema/control.capnp.h"

namespace imgpipe::cli {

// --json output: the protocol's replies as JSON objects with snake_case keys.
nlohmann::json toJson(proto::JobSummary::Reader s);
nlohmann::json toJson(proto::JobDetail::Reader d);
nlohmann::json toJson(proto::AgentInfo::Reader a);
nlohmann::json toJson(proto::JobEvent::Reader e);

std::string stateName(proto::JobState s);
std::string stateName(proto::StepState s);

// A table whose columns are as wide as their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string age(std::int64_t sinceMs);        // "5s", "3m", "2h", "4d"
std::string clockTime(std::int64_t epochMs);  // "14:03:07"
std::string progressBar(std::uint64_t done, std::uint64_t total, int width);
// "[#######.......]  45%  4.2 MiB/s  ETA 1m05s  retries 2"
std::string stepProgress(proto::StepInfo::Reader s);

void printJobList(std::ostream& out, capnp::List<proto::JobSummary>::Reader jobs);
void printJobDetail(std::ostream& out, proto::JobDetail::Reader d);
void printAgents(std::ostream& out, capnp::List<proto::AgentInfo>::Reader agents);
void printEvent(std::ostream& out, proto::JobEvent::Reader e);

// Lines of the live view: a header, one line per step; redrawn in place on a terminal.
std::vector<std::string> watchLines(proto::JobDetail::Reader d);

}  // namespace imgpipe::cli
