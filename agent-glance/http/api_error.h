#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace imgpipe::glance::http {

// An OpenStack API answered with an error status. The message carries the service's own words,
// e.g. "Glance refused POST /v2/images (409 Conflict): Image ID ... already exists!". Its kind:
// transient for server-side trouble that may pass (5xx, 408, 429), refused for 401 and 403,
// failed for every other definite answer.
class ApiError : public Error {
 public:
  ApiError(std::string service, std::string method, std::string url, long status,
           std::string serviceMessage);
  long status() const { return status_; }
  const std::string& service() const { return service_; }
  const std::string& serviceMessage() const { return serviceMessage_; }

 private:
  std::string service_;
  long status_;
  std::string serviceMessage_;
};

// The human-readable message inside an error body: Glance's {"message": ...}, Keystone's
// {"error": {"message": ...}}, or an HTML/text page with the markup removed. Whitespace is
// collapsed and the result is capped at 600 characters.
std::string extractServiceMessage(std::string_view body);

// "409 Conflict", "503 Service Unavailable", or just the number for unusual codes.
std::string statusText(long status);

}  // namespace imgpipe::glance::http
