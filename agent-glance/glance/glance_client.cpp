#include "agent-glance/glance/glance_client.h"

namespace imgpipe::glance {
namespace {

using json = nlohmann::json;

json parseBody(const http::Response& resp, const std::string& what) {
  auto doc = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    throw Error("Glance answered " + what +
                " with something that is not JSON: " + resp.body.substr(0, 200));
  return doc;
}

}  // namespace

GlanceClient::GlanceClient(http::HttpClient& http, AuthProvider& auth, std::stop_token stop)
    : http_(http), auth_(auth), stop_(std::move(stop)) {}

std::string GlanceClient::endpoint() {
  return auth_.imageEndpoint(stop_);
}

http::Response GlanceClient::call(http::Request request, const std::string& path) {
  request.url = http::joinUrl(endpoint(), path);
  request.stop = stop_;
  const auto baseHeaders = request.headers;
  for (int attempt = 0;; ++attempt) {
    AuthHeaders auth = auth_.headers(stop_);
    request.headers = baseHeaders;
    request.headers.push_back({"Accept", "application/json"});
    for (auto& h : auth.headers)
      request.headers.push_back(std::move(h));
    http::Response resp = http_.perform(request);
    // A token that expired (or was revoked) mid-job: renew once and repeat the request.
    if (resp.status == 401 && attempt == 0 && auth_.invalidate(auth.generation)) continue;
    return resp;
  }
}

std::optional<Image> GlanceClient::get(const std::string& id) {
  const std::string path = "v2/images/" + http::urlEncode(id);
  auto resp = call({.method = "GET"}, path);
  if (resp.status == 404) return std::nullopt;
  if (!resp.ok())
    throw http::ApiError("Glance", "GET", http::joinUrl(endpoint(), path), resp.status,
                         http::extractServiceMessage(resp.body));
  return parseImage(parseBody(resp, "GET " + path));
}

Image GlanceClient::create(const json& body) {
  http::Request req{.method = "POST"};
  req.headers.push_back({"Content-Type", "application/json"});
  req.body = body.dump();
  auto resp = call(std::move(req), "v2/images");
  if (resp.status != 201)
    throw http::ApiError("Glance", "POST", http::joinUrl(endpoint(), "v2/images"), resp.status,
                         http::extractServiceMessage(resp.body));
  return parseImage(parseBody(resp, "POST /v2/images"));
}

std::vector<Image> GlanceClient::list(const ListFilter& filter) {
  std::vector<Image> out;
  std::string path = "v2/images?" + listQuery(filter);
  // Glance pages with "next" links; the cap only guards against a server looping forever.
  for (int page = 0; page < 1000 && !path.empty(); ++page) {
    auto resp = call({.method = "GET"}, path);
    if (!resp.ok())
      throw http::ApiError("Glance", "GET", http::joinUrl(endpoint(), path), resp.status,
                           http::extractServiceMessage(resp.body));
    json doc = parseBody(resp, "GET /v2/images");
    if (auto imgs = doc.find("images"); imgs != doc.end() && imgs->is_array())
      for (const auto& i : *imgs)
        out.push_back(parseImage(i));
    path.clear();
    if (auto next = doc.find("next"); next != doc.end() && next->is_string())
      path = next->get<std::string>();
  }
  return out;
}

Image GlanceClient::patch(const std::string& id, const json& ops) {
  const std::string path = "v2/images/" + http::urlEncode(id);
  http::Request req{.method = "PATCH"};
  // Glance accepts only its own JSON-patch media type here (anything else: 415).
  req.headers.push_back({"Content-Type", "application/openstack-images-v2.1-json-patch"});
  req.body = ops.dump();
  auto resp = call(std::move(req), path);
  if (!resp.ok())
    throw http::ApiError("Glance", "PATCH", http::joinUrl(endpoint(), path), resp.status,
                         http::extractServiceMessage(resp.body));
  return parseImage(parseBody(resp, "PATCH " + path));
}

bool GlanceClient::remove(const std::string& id) {
  const std::string path = "v2/images/" + http::urlEncode(id);
  auto resp = call({.method = "DELETE"}, path);
  if (resp.status == 404) return false;
  if (!resp.ok())
    throw http::ApiError("Glance", "DELETE", http::joinUrl(endpoint(), path), resp.status,
                         http::extractServiceMessage(resp.body));
  return true;
}

void GlanceClient::sendFile(const std::string& path, const std::filesystem::path& file,
                            const UploadObserver& observer) {
  http::Request req{.method = "PUT"};
  req.headers.push_back({"Content-Type", "application/octet-stream"});
  req.uploadFile = file;
  req.onUploadProgress = observer.progress;
  req.onUploadData = observer.data;
  auto resp = call(std::move(req), path);
  if (!resp.ok())
    throw http::ApiError("Glance", "PUT", http::joinUrl(endpoint(), path), resp.status,
                         http::extractServiceMessage(resp.body));
}

void GlanceClient::upload(const std::string& id, const std::filesystem::path& file,
                          const UploadObserver& observer) {
  sendFile("v2/images/" + http::urlEncode(id) + "/file", file, observer);
}

void GlanceClient::stage(const std::string& id, const std::filesystem::path& file,
                         const UploadObserver& observer) {
  sendFile("v2/images/" + http::urlEncode(id) + "/stage", file, observer);
}

void GlanceClient::importGlanceDirect(const std::string& id) {
  const std::string path = "v2/images/" + http::urlEncode(id) + "/import";
  http::Request req{.method = "POST"};
  req.headers.push_back({"Content-Type", "application/json"});
  req.body = json{{"method", {{"name", "glance-direct"}}}}.dump();
  auto resp = call(std::move(req), path);
  if (resp.status != 202 && !resp.ok())
    throw http::ApiError("Glance", "POST", http::joinUrl(endpoint(), path), resp.status,
                         http::extractServiceMessage(resp.body));
}

void GlanceClient::addTag(const std::string& id, const std::string& tag) {
  const std::string path = "v2/images/" + http::urlEncode(id) + "/tags/" + http::urlEncode(tag);
  auto resp = call({.method = "PUT"}, path);
  if (!resp.ok())
    throw http::ApiError("Glance", "PUT", http::joinUrl(endpoint(), path), resp.status,
                         http::extractServiceMessage(resp.body));
}

void GlanceClient::removeTag(const std::string& id, const std::string& tag) {
  const std::string path = "v2/images/" + http::urlEncode(id) + "/tags/" + http::urlEncode(tag);
  auto resp = call({.method = "DELETE"}, path);
  if (!resp.ok() && resp.status != 404)
    throw http::ApiError("Glance", "DELETE", http::joinUrl(endpoint(), path), resp.status,
                         http::extractServiceMessage(resp.body));
}

std::vector<std::string> GlanceClient::importMethods() {
  auto resp = call({.method = "GET"}, "v2/info/import");
  if (!resp.ok())
    throw http::ApiError("Glance", "GET", http::joinUrl(endpoint(), "v2/info/import"), resp.status,
                         http::extractServiceMessage(resp.body));
  json doc = parseBody(resp, "GET /v2/info/import");
  std::vector<std::string> out;
  if (auto m = doc.find("import-methods"); m != doc.end() && m->is_object())
    if (auto v = m->find("value"); v != m->end() && v->is_array())
      for (const auto& s : *v)
        if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

std::string listQuery(const ListFilter& f) {
  std::string q = "limit=" + std::to_string(f.pageSize);
  auto add = [&](const std::string& k, const std::string& v) {
    q += "&" + http::urlEncode(k) + "=" + http::urlEncode(v);
  };
  if (!f.name.empty()) add("name", f.name);
  for (const auto& t : f.tags)
    add("tag", t);
  for (const auto& [k, v] : f.properties)
    add(k, v);
  if (!f.status.empty()) add("status", f.status);
  if (!f.owner.empty()) add("owner", f.owner);
  if (!f.visibility.empty()) add("visibility", f.visibility);
  if (f.osHidden) add("os_hidden", *f.osHidden ? "true" : "false");
  return q;
}

}  // namespace imgpipe::glance
