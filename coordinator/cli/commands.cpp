#include "coordinator/cli/commands.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/net/curve_keys.h"
#include "common/units.h"
#include "common/yaml_reader.h"
#include "coordinator/cli/render.h"
#include "coordinator/definition_check.h"
#include "definition/bundle.h"
#include "definition/definition_json.h"
#include "definition/images_yaml.h"
#include "definition/parse_definition.h"

namespace imgpipe::cli {
namespace {

std::string defaultConfigPath() {
  if (const char* env = std::getenv("IMGPIPE_CONFIG")) return env;
  return "/etc/imgpipe/imgpipe.yaml";
}

OperatorClient connect(const GlobalOptions& g) {
  auto c = resolveConnection(g);
  return OperatorClient(c.endpoint, c.coordinatorKey, c.keys, c.timeout);
}

bool terminal(proto::JobState s) {
  return s == proto::JobState::DONE || s == proto::JobState::FAILED ||
         s == proto::JobState::CANCELLED;
}

int exitFor(proto::JobState s) {
  return s == proto::JobState::DONE ? kOk : kJobFailed;
}

// Follows a job until it ends; returns the exit code for its final state.
int follow(OperatorClient& client, const GlobalOptions& g, const std::string& job) {
  const bool tty = ::isatty(STDOUT_FILENO) && !g.json;
  std::vector<std::string> previous;
  auto render = [&](proto::JobDetail::Reader d) {
    if (g.json) {
      std::cout << toJson(d).dump() << std::endl;
      return;
    }
    auto lines = watchLines(d);
    if (tty) {
      // Redraw in place: back to the first line of the previous frame, rewrite every line.
      if (!previous.empty()) std::cout << "\033[" << previous.size() << "F";
      for (const auto& l : lines)
        std::cout << "\033[2K" << l << "\n";
    } else {
      for (size_t i = 0; i < lines.size(); ++i)
        if (i >= previous.size() || previous[i] != lines[i])
          std::cout << clockTime(d.getSummary().getUpdatedMs() ? d.getSummary().getUpdatedMs() : 0)
                    << " " << lines[i] << "\n";
    }
    std::cout.flush();
    previous = std::move(lines);
  };
  auto subscribe = [&]() -> proto::JobState {
    auto reply = client.request([&](auto r) { r.initKind().setWatch(job); });
    auto d = reply->root().getBody().getReply().getKind().getJob();
    render(d);
    return d.getSummary().getState();
  };
  auto state = subscribe();
  auto lastHeard = std::chrono::steady_clock::now();
  while (!terminal(state)) {
    auto msg = client.next(std::chrono::milliseconds(1000));
    if (msg) {
      auto body = msg->root().getBody();
      if (body.which() != proto::Envelope::Body::JOB_UPDATE) continue;
      render(body.getJobUpdate());
      state = body.getJobUpdate().getSummary().getState();
      lastHeard = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - lastHeard > std::chrono::seconds(5)) {
      // Quiet for a while: ask again, which also re-subscribes after a coordinator restart.
      state = subscribe();
      lastHeard = std::chrono::steady_clock::now();
    }
  }
  return exitFor(state);
}

// A list reply, as a JSON array of its items.
template <typename List>
void printJsonArray(const List& items) {
  auto arr = nlohmann::json::array();
  for (auto item : items)
    arr.push_back(toJson(item));
  std::cout << arr.dump() << "\n";
}

}  // namespace

Connection resolveConnection(const GlobalOptions& g) {
  Connection c;
  const std::string path = g.config.empty() ? defaultConfigPath() : g.config;
  std::string keyPath, coordKey;
  if (std::filesystem::exists(path)) {
    auto doc = YamlReader::fromFile(path);
    auto coord = doc.at("coordinator");
    c.endpoint = coord.get<std::string>("endpoint", "");
    if (coord.has("public_key")) {
      auto k = coord.at("public_key").as<std::string>();
      coordKey = net::isValidZ85Key(k) ? k : coord.at("public_key").asPath().string();
    }
    coord.rejectUnknownKeys();
    if (doc.has("key")) keyPath = doc.at("key").asPath().string();
    if (auto t = doc.at("timeout"); !t.isNull()) c.timeout = t.asDuration();
    doc.rejectUnknownKeys();
  } else if (!g.config.empty()) {
    throw CliError(kUsage, "config file " + path + " does not exist");
  }
  if (!g.coordinator.empty()) c.endpoint = g.coordinator;
  if (!g.coordinatorKey.empty()) coordKey = g.coordinatorKey;
  if (!g.key.empty()) keyPath = g.key;
  if (g.timeout != "10s") c.timeout = parseDuration(g.timeout);
  if (c.endpoint.empty())
    throw CliError(kUsage, "no coordinator endpoint: set coordinator.endpoint in " + path +
                               " or pass --coordinator");
  if (coordKey.empty())
    throw CliError(kUsage, "no coordinator public key: set coordinator.public_key in " + path +
                               " or pass --coordinator-key");
  if (keyPath.empty())
    throw CliError(kUsage, "no operator key: set key in " + path + " or pass --key");
  c.coordinatorKey = net::loadPublicKey(coordKey);
  c.keys = net::loadSecretKey(keyPath);
  return c;
}

int cmdKeygen(const std::string& name, const std::string& dir, bool json) {
  if (name.empty() || name.find_first_of("/ \t") != std::string::npos)
    throw CliError(kUsage, "invalid key name '" + name + "'");
  auto keys = net::generateKeyPair(name);
  net::writeKeyPair(keys, dir);
  const auto secret = std::filesystem::path(dir) / (name + ".key");
  const auto pub = std::filesystem::path(dir) / (name + ".pub");
  if (json) {
    std::cout << nlohmann::json{{"name", name},
                                {"public_key", keys.publicKey},
                                {"secret_key_file", secret},
                                {"public_key_file", pub}}
                     .dump()
              << "\n";
  } else {
    std::cout << "wrote " << secret.string() << " (secret, mode 0600) and " << pub.string() << "\n"
              << "public key: " << keys.publicKey << "\n"
              << "authorize it on the coordinator with a line in authorized_keys:\n"
              << "  " << name << " <role> " << keys.publicKey << "\n";
  }
  return kOk;
}

int cmdValidate(const std::string& file, bool json) {
  // The same bundle `imgpipe submit` would send: the definition and every file it refers to,
  // read from beside it, with the coordinator's own checks.
  definition::Bundle bundle;
  try {
    bundle = definition::loadBundle(file);
  } catch (const YamlError&) {
    throw;
  } catch (const Error& e) {
    throw CliError(kUsage, e.what());
  }
  const auto merged = definition::mergedDefinition(bundle, file);
  auto def = definition::parseDefinition(merged.reader());
  const auto origins = merged.origins();
  auto originText = [](const definition::FieldOrigin& o) {
    return o.layer + (o.line ? ":" + std::to_string(o.line) : "");
  };
  if (json) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& [path, data] : bundle.files)
      if (path != bundle.rootPath) files.push_back({{"path", path}, {"bytes", data.size()}});
    nlohmann::json fields = nlohmann::json::object();
    for (const auto& o : origins)
      fields[o.field] = originText(o);
    std::cout << nlohmann::json{{"file", file},
                                {"valid", true},
                                {"name", def.name},
                                {"version", def.version},
                                {"digest", bundle.digest()},
                                {"bundle", files},
                                {"layers", merged.layers()},
                                {"origins", fields},
                                {"merged", merged.text()},
                                {"definition", definition::toJson(def)}}
                     .dump()
              << "\n";
  } else {
    std::cout << file << ": valid\n";
    if (merged.layered()) {
      std::cout << "  layers       ";
      for (std::size_t i = 0; i < merged.layers().size(); ++i)
        std::cout << (i ? " extends " : "") << merged.layers()[i];
      std::cout << "\n";
    }
    std::cout << definition::summarize(def) << "\n";
    for (const auto& [path, data] : bundle.files)
      if (path != bundle.rootPath)
        std::cout << "  sends        " << path << " (" << formatBytes(data.size()) << ")\n";
    if (merged.layered()) {
      // The merged definition, field by field, and the file each value was written in.
      std::size_t width = 0;
      for (const auto& o : origins)
        width = std::max(width, o.field.size());
      std::cout << "  fields (merged), each from:\n";
      for (const auto& o : origins)
        std::cout << "    " << o.field << std::string(width - o.field.size() + 2, ' ')
                  << originText(o) << "\n";
    }
  }
  return kOk;
}

namespace {

// `--target SITE=FILE`: the site gets FILE's definition (a layer over the submitted one, beside
// it, so that its `extends:` and files are bundle paths like the definition's own).
struct SiteDefinitionArg {
  std::string target, bundlePath;
};

}  // namespace

int cmdSubmit(const GlobalOptions& g, const std::string& file,
              const std::vector<std::string>& targetArgs, int priority,
              const std::vector<std::string>& labels, bool wait) {
  definition::Bundle bundle;
  std::vector<std::string> targets;
  std::vector<SiteDefinitionArg> siteDefinitions;
  try {
    bundle = definition::loadBundle(file);  // fail fast, before talking to anyone
    const auto dir = std::filesystem::absolute(file).parent_path();
    for (const auto& arg : targetArgs) {
      const auto eq = arg.find('=');
      if (eq == std::string::npos) {
        targets.push_back(arg);
        continue;
      }
      const std::string target = arg.substr(0, eq), siteFile = arg.substr(eq + 1);
      if (target.empty() || siteFile.empty())
        throw Error("--target " + arg + ": want SITE or SITE=DEFINITION");
      if (std::filesystem::absolute(siteFile).parent_path() != dir)
        throw Error("--target " + arg + ": " + siteFile + " is not beside " + file +
                    " (a site's definition is a layer in the same directory, so that the paths "
                    "it names are the same bundle paths)");
      auto site = definition::loadBundle(siteFile);
      for (auto& [path, data] : site.files)
        if (auto [it, added] = bundle.files.emplace(path, data); !added && it->second != data)
          throw Error(path + " changed while it was read");
      siteDefinitions.push_back({target, site.rootPath});
    }
    // The sites' layers joined the bundle: the whole must still fit one job.
    definition::checkBundleSize(bundle);
  } catch (const YamlError&) {
    throw;
  } catch (const Error& e) {
    throw CliError(kUsage, e.what());
  }
  auto client = connect(g);
  auto reply = client.request([&](auto r) {
    auto s = r.initKind().initSubmit();
    s.setDefinition(bundle.rootText());
    s.setDefinitionName(bundle.rootPath);
    auto files = s.initBundle(static_cast<unsigned>(bundle.files.size() - 1));
    unsigned i = 0;
    for (const auto& [path, data] : bundle.files) {
      if (path == bundle.rootPath) continue;
      files[i].setPath(path);
      files[i].setContent(
          kj::arrayPtr(reinterpret_cast<const capnp::byte*>(data.data()), data.size()));
      ++i;
    }
    auto t = s.initTargets(static_cast<unsigned>(targets.size()));
    for (unsigned k = 0; k < targets.size(); ++k)
      t.set(k, targets[k]);
    auto sd = s.initSiteDefinitions(static_cast<unsigned>(siteDefinitions.size()));
    for (unsigned k = 0; k < siteDefinitions.size(); ++k) {
      sd[k].setTarget(siteDefinitions[k].target);
      sd[k].setDefinitionName(siteDefinitions[k].bundlePath);
    }
    s.setPriority(priority);
    auto l = s.initLabels(static_cast<unsigned>(labels.size()));
    for (unsigned k = 0; k < labels.size(); ++k)
      l.set(k, labels[k]);
  });
  auto body = reply->root().getBody().getReply();
  std::vector<proto::JobSummary::Reader> jobs{body.getKind().getSubmitted()};
  for (auto also : body.getAlsoSubmitted())
    jobs.push_back(also);
  if (g.json && !wait) {
    auto out = toJson(jobs.front());
    if (jobs.size() > 1) {
      out["also_submitted"] = nlohmann::json::array();
      for (std::size_t k = 1; k < jobs.size(); ++k)
        out["also_submitted"].push_back(toJson(jobs[k]));
    }
    std::cout << out.dump() << "\n";
  } else if (!g.json) {
    for (const auto& job : jobs) {
      std::string t;
      for (auto x : job.getTargets())
        t += (t.empty() ? "" : ", ") + std::string(x);
      std::cout << "submitted job " << job.getId().cStr() << ": " << job.getImageName().cStr()
                << " " << job.getImageVersion().cStr() << " -> " << t << "\n";
    }
  }
  if (!wait) return kOk;
  // Each job to its end; the worst outcome is the exit code.
  std::vector<std::string> ids;
  for (const auto& job : jobs)
    ids.emplace_back(job.getId().cStr());
  int rc = kOk;
  for (const auto& id : ids)
    if (const int r = follow(client, g, id); r != kOk) rc = r;
  return rc;
}

int cmdList(const GlobalOptions& g, const std::vector<std::string>& states, unsigned limit) {
  static const std::vector<std::string> names = {
      "queued", "building", "transferring", "registering", "done", "failed", "cancelled"};
  std::vector<proto::JobState> filter;
  for (const auto& s : states) {
    auto it = std::find(names.begin(), names.end(), s);
    if (it == names.end())
      throw CliError(
          kUsage,
          "unknown state '" + s +
              "' (use queued, building, transferring, registering, done, failed or cancelled)");
    filter.push_back(static_cast<proto::JobState>(it - names.begin()));
  }
  auto client = connect(g);
  auto reply = client.request([&](auto r) {
    auto l = r.initKind().initList();
    auto st = l.initStates(static_cast<unsigned>(filter.size()));
    for (unsigned i = 0; i < filter.size(); ++i)
      st.set(i, filter[i]);
    l.setLimit(limit);
  });
  auto jobs = reply->root().getBody().getReply().getKind().getJobs();
  if (g.json)
    printJsonArray(jobs);
  else
    printJobList(std::cout, jobs);
  return kOk;
}

int cmdShow(const GlobalOptions& g, const std::string& job) {
  auto client = connect(g);
  auto reply = client.request([&](auto r) { r.initKind().setShow(job); });
  auto d = reply->root().getBody().getReply().getKind().getJob();
  if (g.json)
    std::cout << toJson(d).dump(2) << "\n";
  else
    printJobDetail(std::cout, d);
  return kOk;
}

int cmdWatch(const GlobalOptions& g, const std::string& job) {
  auto client = connect(g);
  return follow(client, g, job);
}

int cmdEvents(const GlobalOptions& g, const std::string& job, bool followEvents) {
  auto client = connect(g);
  std::uint64_t after = 0;
  if (g.json && !followEvents) {
    // One JSON array; with --follow, one object per line as events arrive.
    auto reply = client.request([&](auto r) {
      auto e = r.initKind().initEvents();
      e.setJobId(job);
    });
    printJsonArray(reply->root().getBody().getReply().getKind().getEvents());
    return kOk;
  }
  for (;;) {
    auto reply = client.request([&](auto r) {
      auto e = r.initKind().initEvents();
      e.setJobId(job);
      e.setAfterSeq(after);
    });
    for (auto e : reply->root().getBody().getReply().getKind().getEvents()) {
      if (g.json)
        std::cout << toJson(e).dump() << "\n";
      else
        printEvent(std::cout, e);
      after = e.getSeq();
    }
    std::cout.flush();
    if (!followEvents) return kOk;
    auto show = client.request([&](auto r) { r.initKind().setShow(job); });
    if (terminal(show->root().getBody().getReply().getKind().getJob().getSummary().getState())) {
      followEvents = false;  // one more round picks up the final events
      continue;
    }
    ::usleep(1'000'000);
  }
}

int cmdCancel(const GlobalOptions& g, const std::string& job) {
  auto client = connect(g);
  auto reply = client.request([&](auto r) { r.initKind().setCancel(job); });
  std::string msg = reply->root().getBody().getReply().getKind().getOk();
  if (g.json)
    std::cout << nlohmann::json{{"job", job}, {"result", msg}}.dump() << "\n";
  else
    std::cout << msg << "\n";
  return kOk;
}

int cmdRetry(const GlobalOptions& g, const std::string& job) {
  auto client = connect(g);
  auto reply = client.request([&](auto r) { r.initKind().setRetry(job); });
  std::string msg = reply->root().getBody().getReply().getKind().getOk();
  if (g.json)
    std::cout << nlohmann::json{{"job", job}, {"result", msg}}.dump() << "\n";
  else
    std::cout << msg << "\n";
  return kOk;
}

int cmdAgents(const GlobalOptions& g) {
  auto client = connect(g);
  auto reply = client.request([&](auto r) { r.initKind().setAgents(); });
  auto agents = reply->root().getBody().getReply().getKind().getAgents();
  if (g.json)
    printJsonArray(agents);
  else
    printAgents(std::cout, agents);
  return kOk;
}

}  // namespace imgpipe::cli

namespace imgpipe::cli {

int cmdImportImagesYaml(const std::string& file, const std::string& base,
                        const std::string& baseSha256, const std::string& outDir, bool force,
                        bool json) {
  YAML::Emitter base_;
  base_ << YAML::Flow << YAML::BeginMap;
  if (base.rfind("debootstrap:", 0) == 0) {
    base_ << YAML::Key << "debootstrap" << YAML::Value << YAML::BeginMap << YAML::Key << "suite"
          << YAML::Value << base.substr(12) << YAML::EndMap;
  } else if (base.rfind("https://", 0) == 0 || base.rfind("http://", 0) == 0) {
    if (baseSha256.empty())
      throw CliError(kUsage, "--base " + base + " is a URL: give its SHA-256 with --base-sha256");
    base_ << YAML::Key << "url" << YAML::Value << base << YAML::Key << "sha256" << YAML::Value
          << baseSha256;
  } else {
    base_ << YAML::Key << "path" << YAML::Value << base;
  }
  base_ << YAML::EndMap;
  const std::string baseYaml = base_.c_str();
  const auto images = definition::importImagesYaml(
      readFile(file), std::filesystem::path(file).filename(), baseYaml);
  const std::filesystem::path out =
      outDir.empty() ? std::filesystem::path(file).parent_path() : std::filesystem::path(outDir);
  for (const auto& img : images) {
    const auto target = out / (img.name + ".yaml");
    if (std::filesystem::exists(target) && !force)
      throw CliError(kUsage, target.string() + " exists; pass --force to replace it");
  }
  nlohmann::json report = nlohmann::json::array();
  for (const auto& img : images) {
    const auto target = out / (img.name + ".yaml");
    writeFileAtomic(target, img.definitionYaml);
    report.push_back({{"image", img.name},
                      {"definition", target.string()},
                      {"mapped", img.mapped},
                      {"reported", img.reported}});
    if (!json) {
      std::cout << img.name << " -> " << target.string() << "\n";
      for (const auto& m : img.mapped)
        std::cout << "  mapped    " << m << "\n";
      for (const auto& r : img.reported)
        std::cout << "  not used  " << r << "\n";
    }
  }
  if (json) std::cout << report.dump() << "\n";
  return kOk;
}

}  // namespace imgpipe::cli
