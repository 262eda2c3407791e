#include "definition/yaml_aliases.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <sstream>

#include "common/yaml_reader.h"

namespace imgpipe::definition {
namespace {

class AliasRefuser : public YAML::EventHandler {
 public:
  explicit AliasRefuser(const std::string& name) : name_(name) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t a) override { check(m, a); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { refuse(m, "an alias (*...)"); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t a,
                const std::string&) override {
    check(m, a);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a,
                       YAML::EmitterStyle::value) override {
    check(m, a);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a,
                  YAML::EmitterStyle::value) override {
    check(m, a);
  }
  void OnMapEnd() override {}

 private:
  void check(const YAML::Mark& m, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) refuse(m, "an anchor (&...)");
  }
  [[noreturn]] void refuse(const YAML::Mark& m, const std::string& what) {
    throw YamlError(name_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) +
                    ": " + what +
                    ": YAML anchors and aliases are not allowed in an image definition; write "
                    "the value out, or share it through a layer (extends:)");
  }
  const std::string& name_;
};

}  // namespace

void refuseAnchorsAndAliases(std::string_view text, const std::string& name) {
  std::istringstream in{std::string(text)};
  AliasRefuser refuser(name);
  try {
    // The first document only: it is all YAML::Load reads. And yaml-cpp 0.7's HandleNextDocument
    // keeps answering true without consuming a stray flow token (",/"), so a loop over documents
    // never ends.
    YAML::Parser parser(in);
    parser.HandleNextDocument(refuser);
  } catch (const YAML::ParserException&) {
    // Not valid YAML: the loader that comes next names the mistake as it always has.
  }
}

}  // namespace imgpipe::definition
