#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent-glance/glance/auth_provider.h"
#include "agent-glance/glance/image.h"
#include "agent-glance/http/api_error.h"
#include "agent-glance/http/http_client.h"

namespace imgpipe::glance {

// GET /v2/images filters; every field set narrows the result (Glance ANDs them).
struct ListFilter {
  std::string name;
  std::vector<std::string> tags;
  std::map<std::string, std::string> properties;
  std::string status;
  std::string owner;
  std::string visibility;        // "all" includes community images, left out by default
  std::optional<bool> osHidden;  // unset: Glance's default (hidden images are left out)
  unsigned pageSize = 100;
};

// Observes a file upload: progress, and every byte handed to the connection (an empty span
// means the transfer starts again from the first byte).
struct UploadObserver {
  std::function<void(std::uint64_t sent, std::uint64_t total)> progress;
  std::function<void(std::span<const std::byte>)> data;
};

// The Glance v2 image API. Borrows the HTTP client (one per task) and the shared auth provider.
// Every request asks for JSON; an error status throws http::ApiError with Glance's own message;
// a 401 renews the credential once and repeats the request.
class GlanceClient {
 public:
  GlanceClient(http::HttpClient& http, AuthProvider& auth, std::stop_token stop);

  std::optional<Image> get(const std::string& id);                // nullopt on 404
  Image create(const nlohmann::json& body);                       // POST /v2/images
  std::vector<Image> list(const ListFilter& filter);              // follows "next" pages
  Image patch(const std::string& id, const nlohmann::json& ops);  // JSON-patch operations
  bool remove(const std::string& id);                             // false when already gone (404)
  void upload(const std::string& id, const std::filesystem::path& file,
              const UploadObserver& observer);  // PUT /file, streamed
  void stage(const std::string& id, const std::filesystem::path& file,
             const UploadObserver& observer);      // PUT /stage, streamed
  void importGlanceDirect(const std::string& id);  // POST /import
  void addTag(const std::string& id, const std::string& tag);
  void removeTag(const std::string& id, const std::string& tag);
  std::vector<std::string> importMethods();  // GET /v2/info/import

  std::string endpoint();  // base URL in use (from the catalog or the config)

 private:
  http::Response call(http::Request request, const std::string& path);
  void sendFile(const std::string& path, const std::filesystem::path& file,
                const UploadObserver& observer);

  http::HttpClient& http_;
  AuthProvider& auth_;
  std::stop_token stop_;
};

// The query string for a list request (without "?"), values percent-encoded.
std::string listQuery(const ListFilter& filter);

}  // namespace imgpipe::glance
