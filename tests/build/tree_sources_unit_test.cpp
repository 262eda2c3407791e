// What skopeo is told, without running it: the registries.conf a definition's mirrors make, and
// the reference an image is pulled or copied by.
#include <gtest/gtest.h>

#include "agent-build/base/tree_sources.h"
#include "common/error.h"

using namespace imgpipe;
using namespace imgpipe::build;

TEST(TreeSources, TheDefinitionsMirrorsBecomeRegistriesConf) {
  definition::MirrorSpec m;
  m.docker = definition::DockerMirrors{{"https://mirror.example/", "http://10.0.0.5:5000"},
                                       {"registry.lab:5000"}};
  definition::ContainerdMirrors c;
  c.registries.push_back({"registry.k8s.io", "", {{"https://k8s-mirror.example/v2-path"}}});
  m.containerd = c;
  const auto conf = registriesConf(m);
  EXPECT_NE(conf.find("unqualified-search-registries = []"), std::string::npos) << conf;
  EXPECT_NE(conf.find("prefix = \"docker.io\"\nlocation = \"docker.io\"\ninsecure = false\n\n"
                      "[[registry.mirror]]\nlocation = \"mirror.example\"\ninsecure = false\n\n"
                      "[[registry.mirror]]\nlocation = \"10.0.0.5:5000\"\ninsecure = true\n"),
            std::string::npos)
      << conf;
  EXPECT_NE(conf.find("prefix = \"registry.k8s.io\"\nlocation = \"registry.k8s.io\"\ninsecure = "
                      "false\n\n[[registry.mirror]]\nlocation = \"k8s-mirror.example/v2-path\""),
            std::string::npos)
      << conf;
  EXPECT_NE(conf.find("prefix = \"registry.lab:5000\"\nlocation = \"registry.lab:5000\"\ninsecure "
                      "= true"),
            std::string::npos)
      << conf;
  // No mirrors: nothing but the refusal of short names.
  EXPECT_EQ(registriesConf({}).find("[[registry]]"), std::string::npos);
}

TEST(TreeSources, ARegistryImageIsPulledByItsDigestNeverByItsTag) {
  definition::OciBase o;
  o.registry = "registry.lab:5000/team/debian:bookworm";
  o.file.sha256 = std::string(64, 'c');
  auto s = registryOciSource(o, {}, BuildProxy{"http://proxy:3128", "", "localhost"});
  EXPECT_EQ(s.reference, "docker://registry.lab:5000/team/debian@sha256:" + std::string(64, 'c'));
  EXPECT_EQ(s.env.at("https_proxy"), "http://proxy:3128");
  o.registry = "registry.lab:5000/team/debian";
  EXPECT_EQ(registryOciSource(o, {}, std::nullopt).reference,
            "docker://registry.lab:5000/team/debian@sha256:" + std::string(64, 'c'));
  EXPECT_EQ(localOciSource(definition::OciFormat::ociArchive, "/b/x.tar", "v1").reference,
            "oci-archive:/b/x.tar:v1");
  EXPECT_THROW(localOciSource(definition::OciFormat::layout, "/b/a:b", ""), Error);
}
