#include "agent-glance/http/http_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include "common/unique_fd.h"

namespace imgpipe::glance::http {
namespace {

// A response body larger than this is not an API answer we can use; stop reading it.
constexpr size_t kMaxResponseBody = 64u << 20;

// Everything the libcurl callbacks of one request need. Lives on perform()'s stack.
struct Transfer {
  const Request* request = nullptr;
  Response* response = nullptr;
  bool bodyTooLarge = false;
  // File upload.
  int fd = -1;
  std::uint64_t fileSize = 0;
  std::uint64_t offset = 0;
  int readErrno = 0;
};

size_t onWrite(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->response->body.size() + n > kMaxResponseBody) {
    t->bodyTooLarge = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  t->response->body.append(data, n);
  return n;
}

size_t onHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n'))
    line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {
    // A new status line (after "100 Continue" or a redirect): earlier headers do not apply.
    t->response->headers.clear();
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  t->response->headers.push_back({std::string(line.substr(0, colon)), std::string(value)});
  return n;
}

size_t onRead(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t want = size * count;
  for (;;) {
    ssize_t got = ::read(t->fd, buffer, want);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      t->readErrno = errno;
      return CURL_READFUNC_ABORT;
    }
    t->offset += static_cast<std::uint64_t>(got);
    if (got > 0 && t->request->onUploadData)
      t->request->onUploadData(
          std::as_bytes(std::span<const char>(buffer, static_cast<size_t>(got))));
    return static_cast<size_t>(got);
  }
}

int onSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  // curl rewinds only to resend the whole body (a retried request); whoever hashes what was sent
  // starts again with it, so only a rewind to the start is supported.
  if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
  if (::lseek(t->fd, 0, SEEK_SET) != 0) return CURL_SEEKFUNC_FAIL;
  t->offset = 0;
  if (t->request->onUploadData) t->request->onUploadData({});  // empty span = rewound
  return CURL_SEEKFUNC_OK;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(user);
  if (t->request->stop.stop_requested()) return 1;  // aborts the transfer
  if (t->fd >= 0 && t->request->onUploadProgress)
    t->request->onUploadProgress(static_cast<std::uint64_t>(std::max<curl_off_t>(ulnow, 0)),
                                 t->fileSize);
  return 0;
}

template <typename T>
void set(CURL* h, CURLoption option, T value) {
  CURLcode rc = curl_easy_setopt(h, option, value);
  if (rc != CURLE_OK)
    throw std::runtime_error(std::string("curl_easy_setopt: ") + curl_easy_strerror(rc));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::optional<std::string> Response::header(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return h.value;
  return std::nullopt;
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {}

Response HttpClient::perform(const Request& request) {
  CURL* h = easy_.get();
  // Reset drops the previous request's options but keeps the open connection for reuse.
  curl_easy_reset(h);

  Response response;
  Transfer t;
  t.request = &request;
  t.response = &response;
  char errbuf[CURL_ERROR_SIZE] = {};

  set(h, CURLOPT_URL, request.url.c_str());
  set(h, CURLOPT_ERRORBUFFER, errbuf);
  set(h, CURLOPT_NOSIGNAL, 1L);  // several task threads; no SIGALRM-based DNS timeouts
  set(h, CURLOPT_USERAGENT, options_.userAgent.c_str());
  set(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connectTimeout.count()));
  set(h, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would resend credentials elsewhere
  set(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!options_.caBundle.empty()) set(h, CURLOPT_CAINFO, options_.caBundle.c_str());
  set(h, CURLOPT_WRITEFUNCTION, onWrite);
  set(h, CURLOPT_WRITEDATA, &t);
  set(h, CURLOPT_HEADERFUNCTION, onHeader);
  set(h, CURLOPT_HEADERDATA, &t);
  set(h, CURLOPT_NOPROGRESS, 0L);
  set(h, CURLOPT_XFERINFOFUNCTION, onProgress);
  set(h, CURLOPT_XFERINFODATA, &t);

  CurlSlist headers;
  for (const auto& hd : request.headers)
    headers.append(hd.name + ": " + hd.value);

  UniqueFd file;
  if (!request.uploadFile.empty()) {
    file = UniqueFd(::open(request.uploadFile.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) throwErrno("cannot open " + request.uploadFile.string());
    struct stat st {};
    if (::fstat(file.get(), &st) != 0) throwErrno("cannot stat " + request.uploadFile.string());
    ::posix_fadvise(file.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    t.fd = file.get();
    t.fileSize = static_cast<std::uint64_t>(st.st_size);
    set(h, CURLOPT_UPLOAD, 1L);
    if (request.method != "PUT") set(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    set(h, CURLOPT_READFUNCTION, onRead);
    set(h, CURLOPT_READDATA, &t);
    set(h, CURLOPT_SEEKFUNCTION, onSeek);
    set(h, CURLOPT_SEEKDATA, &t);
    set(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.fileSize));
    // No overall limit for a file, only for a stall (see HttpOptions::stallTimeout).
    set(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    set(h, CURLOPT_LOW_SPEED_TIME,
        std::max(1L, static_cast<long>(options_.stallTimeout.count() / 1000)));
    if (options_.uploadRateLimit > 0)
      set(h, CURLOPT_MAX_SEND_SPEED_LARGE, static_cast<curl_off_t>(options_.uploadRateLimit));
  } else {
    set(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.requestTimeout.count()));
    if (request.method == "GET") {
      set(h, CURLOPT_HTTPGET, 1L);
    } else if (request.method == "HEAD") {
      set(h, CURLOPT_NOBODY, 1L);
    } else {
      set(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      if (!request.body.empty() || request.method == "POST" || request.method == "PATCH" ||
          request.method == "PUT") {
        set(h, CURLOPT_POSTFIELDS, request.body.data());
        set(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      }
    }
  }
  set(h, CURLOPT_HTTPHEADER, headers.get());

  // Whoever hashes what is sent starts from the first byte with every request.
  if (t.fd >= 0 && request.onUploadData) request.onUploadData({});
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_ABORTED_BY_CALLBACK && request.stop.stop_requested())
    throw Error(request.method + " " + request.url + ": stopped", ErrorKind::stopped);
  if (rc != CURLE_OK) {
    std::string what = request.method + " " + request.url + ": ";
    if (t.readErrno != 0) {
      throwErrno(what + "cannot read " + request.uploadFile.string(), t.readErrno);
    }
    if (t.bodyTooLarge) throw Error(what + "response larger than 64 MiB", ErrorKind::transient);
    what += errbuf[0] != '\0' ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    if (rc == CURLE_OPERATION_TIMEDOUT && !request.uploadFile.empty())
      what += " (no progress for " + std::to_string(options_.stallTimeout.count() / 1000) + " s)";
    // No HTTP answer at all (refused, DNS, TLS, timeout, reset): worth trying again.
    throw Error(what, ErrorKind::transient);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string joinUrl(std::string_view base, std::string_view path) {
  std::string out(base);
  while (!out.empty() && out.back() == '/')
    out.pop_back();
  while (!path.empty() && path.front() == '/')
    path.remove_prefix(1);
  out += '/';
  out += path;
  return out;
}

std::string urlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace imgpipe::glance::http
