#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>
#include <string_view>

namespace imgpipe::glance::http {

// libcurl's process-wide state, initialised once before the first handle exists (curl_global_init
// is not thread-safe, so it must not race with the first request of two tasks).
void ensureCurlGlobalInit();

// One easy handle. Resource type: move-only, cleaned up on destruction. Reusing it keeps the
// connection to Glance alive between requests.
class CurlEasy {
 public:
  CurlEasy();
  CURL* get() const { return handle_.get(); }

 private:
  struct Cleanup {
    void operator()(CURL* h) const { curl_easy_cleanup(h); }
  };
  std::unique_ptr<CURL, Cleanup> handle_;
};

// A curl_slist (request headers). Resource type: freed on destruction.
class CurlSlist {
 public:
  void append(const std::string& line);
  curl_slist* get() const { return list_.get(); }

 private:
  struct Cleanup {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
  };
  std::unique_ptr<curl_slist, Cleanup> list_;
};

}  // namespace imgpipe::glance::http
