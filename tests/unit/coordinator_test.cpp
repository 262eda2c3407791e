#include <gtest/gtest.h>

#include "common/error.h"
#include "common/temp_dir.h"
#include "common/yaml_reader.h"
#include "coordinator/definition_groups.h"
#include "coordinator/sqlite.h"
#include "coordinator/store.h"
#include "coordinator/topology.h"

using namespace imgpipe;
using namespace imgpipe::coord;

namespace {
Topology topo(const std::string& yaml) {
  return Topology::parse(YamlReader::fromString(yaml, "t.yaml"));
}
}  // namespace

TEST(Topology, PlansATreeWithSharedHopsOnce) {
  auto t = topo(R"(
sites: [{name: a, controller: ctrl-a}, {name: b, controller: ctrl-b}]
links:
  - {from: build, to: relay-1}
  - {from: relay-1, to: ctrl-a, rate_limit: 40mbit}
  - {from: relay-1, to: ctrl-b}
  - {from: build, to: relay-2}
  - {from: relay-2, to: relay-3}
  - {from: relay-3, to: ctrl-b}
)");
  auto plan = t.plan("build-7", {"ctrl-a", "ctrl-b"});
  ASSERT_EQ(plan.size(), 3u);  // build-7 -> relay-1 once, then both branches
  EXPECT_EQ(plan[0], (Hop{"build-7", "relay-1", "", 0}));
  EXPECT_EQ(plan[1], (Hop{"relay-1", "ctrl-a", "", 5'000'000}));
  EXPECT_EQ(plan[2], (Hop{"relay-1", "ctrl-b", "", 0}));  // the shorter of two paths
  EXPECT_EQ(*t.controllerFor("a"), "ctrl-a");
  EXPECT_EQ(*t.controllerFor("ctrl-b"), "ctrl-b");
  EXPECT_FALSE(t.controllerFor("nowhere"));
}

TEST(Topology, NoRouteNamesTheController) {
  auto t = topo("sites: [{name: a, controller: ctrl-a}]\nlinks: [{from: build, to: relay-1}]\n");
  try {
    t.plan("build-1", {"ctrl-a"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("no route from build agent 'build-1' to controller 'ctrl-a'"),
        std::string::npos)
        << e.what();
  }
}

TEST(Topology, WithoutLinksBuildAgentsSendStraightToControllers) {
  auto t = topo("");
  auto plan = t.plan("b", {"c1", "c2"});
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[1], (Hop{"b", "c2", "", 0}));
}

TEST(Topology, MistakesAreNamed) {
  auto err = [](const std::string& y) {
    try {
      topo(y);
    } catch (const YamlError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("links: [{from: a, to: a}]").find("to itself"), std::string::npos);
  EXPECT_NE(err("sites: [{name: a, controller: c}]\ndefault_targets: [x]").find("unknown site 'x'"),
            std::string::npos);
  EXPECT_NE(err("links: [{from: a, to: b, speed: 1}]").find("unknown key 'speed'"),
            std::string::npos);
}

TEST(Store, JobsAndStepsSurviveReopening) {
  TempDir dir;
  std::int64_t id;
  std::string coordinatorId;
  {
    Store store(dir.path());
    coordinatorId = store.coordinatorId();
    Job job;
    job.imageName = "img";
    job.imageVersion = "1";
    job.targets = {"ctrl-a"};
    job.labels = {"x86"};
    Step s;
    s.name = "build";
    s.unit = "permille";
    job.steps.push_back(s);
    Transaction tx(store.db());
    store.insertJob(job, "name: img\n");
    tx.commit();
    id = job.id;
  }
  Store store(dir.path());
  EXPECT_EQ(store.coordinatorId(), coordinatorId);
  auto jobs = store.loadActiveJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].id, id);
  EXPECT_EQ(jobs[0].labels, std::vector<std::string>{"x86"});
  EXPECT_EQ(jobs[0].steps.at(0).unit, "permille");
  EXPECT_EQ(store.loadDefinition(id), "name: img\n");
}

TEST(Store, UncommittedTransactionLeavesNothing) {
  TempDir dir;
  Store store(dir.path());
  {
    Transaction tx(store.db());
    Job job;
    job.imageName = "img";
    store.insertJob(job, "x");
  }  // no commit: rolled back
  EXPECT_TRUE(store.loadActiveJobs().empty());
}

TEST(Store, MigratesASchemaVersionOneDatabase) {
  TempDir dir;
  {
    Database db(dir.path() / "coordinator.db");
    db.exec(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1'), ('coordinator_id', 'abc');"
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, image_name TEXT NOT NULL, "
        "image_version TEXT NOT NULL,"
        " definition TEXT NOT NULL, definition_name TEXT NOT NULL, definition_digest TEXT NOT "
        "NULL, targets TEXT NOT NULL,"
        " labels TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL, error TEXT NOT "
        "NULL DEFAULT '',"
        " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, artifact TEXT);"
        "INSERT INTO jobs VALUES (7, 'img', '1', 'd', 'd.yaml', 'x', '[]', '[]', 0, 'queued', '', "
        "1, 1, '');"
        "CREATE TABLE steps (job_id INTEGER NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, "
        "kind TEXT NOT NULL,"
        " agent TEXT NOT NULL, upstream TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT "
        "NULL,"
        " task_id TEXT NOT NULL, detail TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER NOT "
        "NULL,"
        " rate INTEGER NOT NULL, eta INTEGER NOT NULL, retries INTEGER NOT NULL, error TEXT NOT "
        "NULL,"
        " started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL, "
        "result TEXT NOT NULL,"
        " not_before_ms INTEGER NOT NULL, PRIMARY KEY (job_id, idx));"
        "INSERT INTO steps VALUES (7, 0, 'build', 'build', '', '', 'pending', 0, '', '', 0, 0, 0, "
        "0, 0, '', 0, 0, 0, '', 0);");
  }
  Store store(dir.path());
  EXPECT_EQ(store.coordinatorId(), "abc");
  auto jobs = store.loadActiveJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].steps.at(0).unit, "");
  EXPECT_EQ(jobs[0].steps.at(0).output, "");      // 3 -> 4: steps of before registered qcow2
  EXPECT_TRUE(store.loadBundleFiles(7).empty());  // 2 -> 3: jobs of before brought no files
  auto v = store.db().prepare("SELECT value FROM meta WHERE key='schema_version'");
  ASSERT_TRUE(v.step());
  EXPECT_EQ(v.getText(0), std::to_string(Store::kSchemaVersion));
}

TEST(DefinitionGroups, SitesWithTheSameMergedDefinitionShareOneImage) {
  definition::Bundle whole;
  whole.rootPath = "base.yaml";
  whole.files = {
      {"base.yaml", "name: demo\nversion: '1.0'\nbase: {path: /srv/base.qcow2}\n"},
      {"site-b.yaml", "extends: base.yaml\npackages: {install: [htop]}\n"},
      {"site-c.yaml", "extends: base.yaml\n"},
      {"site-d.yaml", "extends: base.yaml\nversion: '2.0'\npackages: {install: [jq]}\n"}};
  const std::vector<ResolvedTarget> targets = {
      {"ctrl-a", "site-a"}, {"ctrl-b", "site-b"}, {"ctrl-c", "site-c"}, {"ctrl-d", "site-d"}};
  auto groups = groupByDefinition(
      whole, targets,
      {{"ctrl-b", "site-b.yaml"}, {"ctrl-c", "site-c.yaml"}, {"ctrl-d", "site-d.yaml"}});
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].bundle.rootPath, "base.yaml");
  ASSERT_EQ(groups[0].targets.size(), 2u);
  EXPECT_EQ(groups[0].targets[1].controller, "ctrl-c");
  EXPECT_EQ(groups[1].bundle.rootPath, "site-b.yaml");
  EXPECT_EQ(groups[2].bundle.rootPath, "site-d.yaml");
  // site-b's image would share demo 1.0 with site-a's: it gets its site's name; site-d has its own.
  EXPECT_EQ(groupVersions(groups, {"demo", "demo", "demo"}, {"1.0", "1.0", "2.0"}),
            (std::vector<std::string>{"1.0", "1.0-site-b", "2.0"}));
  EXPECT_THROW(groupByDefinition(whole, targets, {{"ctrl-b", "nowhere.yaml"}}), Error);

  // site-c.yaml and site-d.yaml are sent but no target takes them: refused, naming it, not dropped.
  try {
    groupByDefinition(whole, {{"ctrl-a", "site-a"}, {"ctrl-b", "site-b"}},
                      {{"ctrl-b", "site-b.yaml"}});
    ADD_FAILURE() << "a file no definition names was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds 'site-c.yaml', which no definition of this "
                                         "submit (base.yaml, site-b.yaml) extends or refers to"),
              std::string::npos)
        << e.what();
  }
}

TEST(Topology, ASiteTakesItsOutputsAmongTheImagesAndNamesItselfWhenNoneFits) {
  using definition::OutputKind;
  auto t = topo(R"(
sites:
  - {name: ceph, controller: ctrl-ceph, outputs: [raw]}
  - {name: plain, controller: ctrl-plain}
)");
  const std::vector both{OutputKind::qcow2, OutputKind::raw};
  EXPECT_EQ(t.outputsAt("ctrl-ceph", both), std::vector{OutputKind::raw});
  EXPECT_EQ(t.outputsAt("ctrl-plain", both), both);
  EXPECT_EQ(t.outputsAt("no-site", {OutputKind::qcow2}), std::vector{OutputKind::qcow2});
  try {
    t.outputsAt("ctrl-ceph", {OutputKind::qcow2});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "site 'ceph' takes raw and this image is made as qcow2; add one of them to the "
                 "definition's outputs");
  }
  // An iso is delivered like the qcow2: a site that boots live nodes asks for it alone.
  const auto live = topo("sites: [{name: a, controller: c, outputs: [iso]}]");
  EXPECT_EQ(live.outputsAt("c", {OutputKind::qcow2, OutputKind::raw, OutputKind::iso}),
            std::vector{OutputKind::iso});
  try {
    topo("sites: [{name: a, controller: c, outputs: [qcow3]}]");
    FAIL();
  } catch (const YamlError& e) {
    EXPECT_NE(std::string(e.what()).find("'qcow3' is not an output"), std::string::npos)
        << e.what();
  }
}
