// planSubmission with real definitions and the coordinator's own check (inspectDefinition): the
// targets resolved, the sites grouped by merged definition, the versions fixed; and takeVersions,
// the one step that asks the store.
#include "coordinator/submission_plan.h"

#include <gtest/gtest.h>

#include <set>

#include "common/yaml_reader.h"
#include "definition/image_definition.h"

using namespace imgpipe;
using namespace imgpipe::coord;

namespace {

const auto kNow =
    std::chrono::system_clock::time_point(std::chrono::milliseconds(1'780'000'000'000));

Topology topology(const std::string& defaults = "default_targets: [site-a]\n") {
  return Topology::parse(YamlReader::fromString(
      "sites: [{name: site-a, controller: ctrl-a}, {name: site-b, controller: ctrl-b}, "
      "{name: site-c, controller: ctrl-c}]\n" +
          defaults,
      "topology.yaml"));
}

// A base and the layers of two sites: site-b changes what is built, site-c only a comment.
SubmissionRequest layered(std::string baseVersion = "version: '1.0'\n") {
  SubmissionRequest r;
  r.bundle = definition::bundleOf("base.yaml",
                                  "name: demo\n" + baseVersion + "base: {path: /srv/base.qcow2}\n");
  r.bundle.files["site-b.yaml"] = "extends: base.yaml\npackages: {install: [htop]}\n";
  r.bundle.files["site-c.yaml"] = "# as the base\nextends: base.yaml\n";
  r.targets = {"site-a"};
  r.siteDefinitions = {{"site-b", "site-b.yaml"}, {"site-c", "site-c.yaml"}};
  return r;
}

std::string refusalOf(const SubmissionPlan& plan) {
  EXPECT_TRUE(plan.jobs.empty());
  if (!plan.refusal) return "(not refused)";
  EXPECT_EQ(plan.refusal->kind(), ErrorKind::refused) << plan.refusal->what();
  return plan.refusal->what();
}

}  // namespace

TEST(SubmissionPlan, ADefinitionWithoutAVersionGetsOneOfTheSubmitsTime) {
  SubmissionRequest r;
  r.bundle = definition::bundleOf("img.yaml", "name: img\nbase: {path: /srv/base.qcow2}\n");
  auto plan = planSubmission(r, topology(), kNow);
  ASSERT_FALSE(plan.refusal) << plan.refusal->what();
  ASSERT_EQ(plan.jobs.size(), 1u);
  const auto& job = plan.jobs[0];
  EXPECT_EQ(job.imageName, "img");
  EXPECT_EQ(job.imageVersion, definition::deriveVersion(kNow));
  EXPECT_EQ(job.imageVersion, "2026.05.28-202640");
  EXPECT_TRUE(job.derivedVersion);
  EXPECT_EQ(job.bundle.rootPath, "img.yaml");
  EXPECT_EQ(job.definitionDigest, r.bundle.digest());
  ASSERT_EQ(job.targets.size(), 1u) << "the default target";
  EXPECT_EQ(job.targets[0].controller, "ctrl-a");
  EXPECT_EQ(job.targets[0].name, "site-a");
}

TEST(SubmissionPlan, ATakenDerivedVersionGetsTheNextFreeSuffix) {
  SubmissionRequest r;
  r.bundle = definition::bundleOf("img.yaml", "name: img\nbase: {path: /srv/base.qcow2}\n");
  const auto derived = definition::deriveVersion(kNow);
  // Two submits of one image in one second, planned at the same time: the first stored takes
  // the version, the second (its versions taken against the store after that) gets -2.
  std::set<std::pair<std::string, std::string>> store = {{"img", derived}};
  auto taken = [&](const std::string& n, const std::string& v) { return store.count({n, v}) > 0; };
  auto first = planSubmission(r, topology(), kNow), second = planSubmission(r, topology(), kNow);
  takeVersions(first.jobs, taken);
  EXPECT_EQ(first.jobs[0].imageVersion, derived + "-2");
  store.insert({"img", first.jobs[0].imageVersion});
  takeVersions(second.jobs, taken);
  EXPECT_EQ(second.jobs[0].imageVersion, derived + "-3");
  // A version the definition gives itself is never changed.
  auto own = planSubmission(layered(), topology(), kNow);
  store.insert({"demo", "1.0"});
  takeVersions(own.jobs, taken);
  EXPECT_EQ(own.jobs[0].imageVersion, "1.0");
}

TEST(SubmissionPlan, SitesAreGroupedByMergedDefinitionAndASecondImageOfOneNameIsSuffixed) {
  auto plan = planSubmission(layered(), topology(), kNow);
  ASSERT_FALSE(plan.refusal) << plan.refusal->what();
  ASSERT_EQ(plan.jobs.size(), 2u);
  const auto& shared = plan.jobs[0];
  EXPECT_EQ(shared.bundle.rootPath, "base.yaml");
  EXPECT_EQ(shared.imageVersion, "1.0");
  ASSERT_EQ(shared.targets.size(), 2u) << "site-c's layer changes nothing the build reads";
  EXPECT_EQ(shared.targets[0].controller, "ctrl-a");
  EXPECT_EQ(shared.targets[1].controller, "ctrl-c");
  const auto& own = plan.jobs[1];
  EXPECT_EQ(own.bundle.rootPath, "site-b.yaml");
  EXPECT_EQ(own.imageName, "demo");
  EXPECT_EQ(own.imageVersion, "1.0-site-b");
  EXPECT_FALSE(own.derivedVersion);
  EXPECT_EQ(own.definitionDigest, own.bundle.digest());
  EXPECT_EQ(own.bundle.files.count("site-c.yaml"), 0u) << "a group carries only its own files";
  // Derived versions are suffixed the same way, and then both take -2 when taken.
  auto derived = planSubmission(layered(""), topology(), kNow);
  ASSERT_EQ(derived.jobs.size(), 2u);
  const auto v = definition::deriveVersion(kNow);
  EXPECT_EQ(derived.jobs[1].imageVersion, v + "-site-b");
  takeVersions(derived.jobs, [&](const std::string&, const std::string& version) {
    return version == v || version == v + "-site-b";
  });
  EXPECT_EQ(derived.jobs[0].imageVersion, v + "-2");
  EXPECT_EQ(derived.jobs[1].imageVersion, v + "-site-b-2");
}

TEST(SubmissionPlan, AnUnknownTargetIsRefusedNamingTheKnownSites) {
  auto r = layered();
  r.targets = {"site-z"};
  r.siteDefinitions.clear();
  EXPECT_EQ(
      refusalOf(planSubmission(r, topology(), kNow)),
      "unknown target site-z; known sites: site-a (ctrl-a), site-b (ctrl-b), site-c (ctrl-c)");
  r.targets.clear();
  r.siteDefinitions = {{"site-y", "site-b.yaml"}};
  EXPECT_NE(refusalOf(planSubmission(r, topology(), kNow)).find("unknown target site-y; known"),
            std::string::npos);
  r.siteDefinitions.clear();
  EXPECT_EQ(refusalOf(planSubmission(r, topology(""), kNow)),
            "no --target given and the coordinator has no topology.default_targets");
}

TEST(SubmissionPlan, ASiteDefinitionMissingFromTheBundleIsRefused) {
  auto r = layered();
  r.siteDefinitions = {{"site-b", "site-q.yaml"}};
  EXPECT_EQ(refusalOf(planSubmission(r, topology(), kNow)),
            "the definition of site-b ('site-q.yaml') is not in the definition bundle");
  r.siteDefinitions = {{"site-b", "site-b.yaml"}, {"ctrl-b", "site-c.yaml"}};
  EXPECT_EQ(refusalOf(planSubmission(r, topology(), kNow)),
            "ctrl-b is given two definitions (site-b.yaml and site-c.yaml)");
  // A layer that extends one the bundle lacks: named with the site.
  r = layered();
  r.bundle.files["site-b.yaml"] = "extends: gone.yaml\n";
  const auto missing = refusalOf(planSubmission(r, topology(), kNow));
  EXPECT_NE(missing.find("the definition of site-b (site-b.yaml)"), std::string::npos) << missing;
  EXPECT_NE(missing.find("gone.yaml"), std::string::npos) << missing;
}

TEST(SubmissionPlan, ABrokenOrHostileDefinitionIsRefusedNamingItsFile) {
  auto r = layered();
  r.bundle.files["site-b.yaml"] = "extends: base.yaml\npackages: 3\n";
  const auto broken = refusalOf(planSubmission(r, topology(), kNow));
  EXPECT_NE(broken.find("site-b.yaml"), std::string::npos) << broken;
  // Issue 23's alias bomb: refused before anything expands it.
  std::string bomb = "name: bomb\nbase: {path: base.qcow2}\nx0: &a0 [lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    const auto p = "*a" + std::to_string(i - 1);
    bomb += "x" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + p + ", " + p + ", " + p +
            ", " + p + ", " + p + "]\n";
  }
  SubmissionRequest b;
  b.bundle = definition::bundleOf("bomb.yaml", bomb);
  const auto aliases = refusalOf(planSubmission(b, topology(), kNow));
  EXPECT_NE(aliases.find("bomb.yaml:3:"), std::string::npos) << aliases;
  EXPECT_NE(aliases.find("YAML anchors and aliases are not allowed"), std::string::npos) << aliases;
}
