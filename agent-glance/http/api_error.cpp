#include "agent-glance/http/api_error.h"

#include <nlohmann/json.hpp>

namespace imgpipe::glance::http {
namespace {

std::string compose(const std::string& service, const std::string& method, const std::string& url,
                    long status, const std::string& message) {
  std::string out = service + " refused " + method + " " + url + " (" + statusText(status) + ")";
  if (!message.empty()) out += ": " + message;
  return out;
}

// Drops markup (<br />, <h1>...) and collapses whitespace runs to one space.
std::string plainText(std::string_view text) {
  std::string out;
  bool inTag = false, space = false;
  for (char c : text) {
    if (c == '<') {
      inTag = true;
      space = true;
      continue;
    }
    if (inTag) {
      if (c == '>') inTag = false;
      continue;
    }
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  constexpr size_t kMax = 600;
  if (out.size() > kMax) out = out.substr(0, kMax) + "...";
  return out;
}

}  // namespace

ApiError::ApiError(std::string service, std::string method, std::string url, long status,
                   std::string serviceMessage)
    : Error(compose(service, method, url, status, serviceMessage),
            status >= 500 || status == 408 || status == 429 ? ErrorKind::transient
            : status == 401 || status == 403                ? ErrorKind::refused
                                                            : ErrorKind::failed),
      service_(std::move(service)),
      status_(status),
      serviceMessage_(std::move(serviceMessage)) {}

std::string extractServiceMessage(std::string_view body) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    if (auto m = json.find("message"); m != json.end() && m->is_string())
      return plainText(m->get<std::string>());
    if (auto e = json.find("error"); e != json.end() && e->is_object()) {
      if (auto m = e->find("message"); m != e->end() && m->is_string())
        return plainText(m->get<std::string>());
    }
  }
  std::string text = plainText(body);
  // An HTML error page repeats its title; the status is already in the message.
  return text;
}

std::string statusText(long status) {
  switch (status) {
    case 400:
      return "400 Bad Request";
    case 401:
      return "401 Unauthorized";
    case 403:
      return "403 Forbidden";
    case 404:
      return "404 Not Found";
    case 409:
      return "409 Conflict";
    case 410:
      return "410 Gone";
    case 413:
      return "413 Request Entity Too Large";
    case 415:
      return "415 Unsupported Media Type";
    case 429:
      return "429 Too Many Requests";
    case 500:
      return "500 Internal Server Error";
    case 502:
      return "502 Bad Gateway";
    case 503:
      return "503 Service Unavailable";
    case 504:
      return "504 Gateway Timeout";
    default:
      return std::to_string(status);
  }
}

}  // namespace imgpipe::glance::http
