#include "agent-glance/http/curl_handle.h"

#include <mutex>
#include <stdexcept>

namespace imgpipe::glance::http {

void ensureCurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("curl_global_init failed");
  });
}

CurlEasy::CurlEasy() {
  ensureCurlGlobalInit();
  handle_.reset(curl_easy_init());
  if (!handle_) throw std::runtime_error("curl_easy_init failed");
}

void CurlSlist::append(const std::string& line) {
  curl_slist* grown = curl_slist_append(list_.get(), line.c_str());
  if (grown == nullptr) throw std::bad_alloc();
  // curl_slist_append returns the same head once the list exists; only the first call changes it.
  (void)list_.release();
  list_.reset(grown);
}

}  // namespace imgpipe::glance::http
