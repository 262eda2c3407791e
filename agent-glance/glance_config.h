#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "agent-glance/glance/auth_provider.h"
#include "agent-glance/http/http_client.h"
#include "agent-glance/keystone/keystone_auth.h"
#include "agent-glance/registration/image_spec.h"
#include "common/yaml_reader.h"

namespace imgpipe::glance {

enum class AuthMode { keystone, trustedHeaders, none };
enum class UploadMethod { put, import };

// Retries of a registration when Glance or Keystone is unreachable or answers 5xx: the delay
// starts at `initial` and doubles up to `max`; the task fails after `giveUpAfter` in total, or
// after `maxAttempts` attempts if that is not 0.
struct RetryPolicy {
  std::chrono::milliseconds initial{1'000};
  std::chrono::milliseconds max{60'000};
  std::chrono::milliseconds giveUpAfter{3'600'000};
  unsigned maxAttempts = 0;
};

// The glance agent's `glance:` section. Every key, its default and meaning:
//
//   glance:
//     auth: keystone              # keystone | trusted-headers | none            (keystone)
//     endpoint: ""                # image API URL; default: from the Keystone catalog. Required
//                                 # with trusted-headers and none. With keystone it overrides
//                                 # the catalog.
//     keystone:                   # with auth: keystone
//       auth_url: ""              # required, e.g. https://keystone.site1:5000/v3 ("/v3"
//                                 # is appended when missing)
//       method: password          # password | application_credential         (password)
//       username: ""              # password auth: username (+ user domain) or user_id
//       user_id: ""
//       user_domain_name: ""      # default "Default" when neither name nor id is set
//       user_domain_id: ""
//       password_file: ""         # the password: first line of this file (not readable by
//       password_env: ""          # others), or this environment variable. Never inline.
//       application_credential_id: ""     # application_credential: the id, or the name
//       application_credential_name: ""   # together with the user (username + domain or id)
//       application_credential_secret_file: ""
//       application_credential_secret_env: ""
//       project_name: ""          # password auth: project_id, or project_name + its domain
//       project_id: ""
//       project_domain_name: ""   # default "Default" when neither name nor id is set
//       project_domain_id: ""
//       interface: public         # catalog interface: public | internal | admin  (public)
//       region: ""                # catalog region; default: any
//       service_type: image       # catalog service type                        (image)
//       renew_before: 5m          # renew a token this long before it expires    (5m)
//                                 # (at most half its lifetime)
//     trusted_headers:            # with auth: trusted-headers
//       project_id: ""            # required: the project that owns the images
//       user_id: ""               # optional X-User-Id
//       roles: [member, reader]   # X-Roles
//     ca_bundle: ""               # PEM file of CAs for https; default: the system's CAs
//     timeouts:
//       connect: 10s              # TCP + TLS connect                            (10s)
//       request: 60s              # whole API request without a file body         (60s)
//       stall: 2m                 # an upload moving no bytes for this long fails (2m)
//     upload_method: put          # put (PUT /file) | import (stage + glance-direct) (put)
//     upload_rate_limit: 0        # e.g. 40mbit; 0 = unlimited                   (0)
//     max_virtual_size: 1T        # refuse qcow2 images with a larger virtual size (1T)
//     older_versions: keep        # keep | hide | rename; the definition may override (keep)
//     retry:
//       initial: 1s               # first delay; doubles each attempt             (1s)
//       max: 1m                   # longest delay                                 (1m)
//       give_up_after: 1h         # fail the task after retrying this long        (1h)
//       max_attempts: 0           # 0 = no limit besides give_up_after            (0)
//     saving_grace: 15s           # an image of ours seen in 'saving' is given this long to
//                                 # finish before it is taken as stuck and deleted (15s)
//     import_timeout: 30m         # how long an import (glance-direct) may take  (30m)
//     qemu_img_timeout: 10m       # limit for each qemu-img info/check run        (10m)
struct GlanceConfig {
  AuthMode auth = AuthMode::keystone;
  std::string endpoint;
  // Plain http:// endpoints (Glance, Keystone) are refused unless this is set; doctor warns.
  bool allowInsecureHttp = false;
  keystone::KeystoneOptions keystone;
  TrustedHeaders trustedHeaders;
  http::HttpOptions http;  // ca_bundle, timeouts, upload_rate_limit
  UploadMethod uploadMethod = UploadMethod::put;
  std::uint64_t maxVirtualSize = 1ull << 40;
  definition::OlderVersions olderVersions = definition::OlderVersions::keep;
  RetryPolicy retry;
  std::chrono::milliseconds savingGrace{15'000};
  std::chrono::milliseconds importTimeout{1'800'000};
  std::chrono::milliseconds qemuImgTimeout{600'000};
};

// Reads the `glance:` section (a null reader gives the defaults, which fail validation for want
// of credentials). Unknown keys are errors naming the key; so are inline secrets.
GlanceConfig parseGlanceConfig(const YamlReader& section);

// A one-line summary for the startup log: where Glance is and how we authenticate, naming where
// secrets come from but never a secret.
std::string describe(const GlanceConfig& config);

// The auth provider the config asks for; shared by all tasks of the agent.
std::shared_ptr<AuthProvider> makeAuthProvider(const GlanceConfig& config);

}  // namespace imgpipe::glance
