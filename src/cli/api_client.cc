// Blocking Beast client; the CLI makes one request at a time, so a plain synchronous stream
// per call is all it needs.
#include "cli/api_client.h"

#include <fmt/format.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace berth {
namespace {
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

struct ParsedUrl {
  std::string host;
  std::string port;
  std::string prefix;  // path prefix without a trailing slash
};

Result<ParsedUrl> ParseUrl(std::string_view url) {
  constexpr std::string_view kHttp = "http://";
  if (!url.starts_with(kHttp)) {
    return Status::InvalidArgument(fmt::format(
        "berth URL '{}' must start with http:// (e.g. http://127.0.0.1:8080)", url));
  }
  std::string_view rest = url.substr(kHttp.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  ParsedUrl out;
  if (slash != std::string_view::npos) {
    out.prefix = std::string(rest.substr(slash));
    while (!out.prefix.empty() && out.prefix.back() == '/') {
      out.prefix.pop_back();
    }
  }
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    out.host = std::string(authority.substr(0, colon));
    out.port = std::string(authority.substr(colon + 1));
  } else {
    out.host = std::string(authority);
    out.port = "80";
  }
  if (out.host.size() >= 2 && out.host.front() == '[') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host.empty()) {
    return Status::InvalidArgument(fmt::format("berth URL '{}' has no host", url));
  }
  return out;
}
}  // namespace

Status StatusFromResponse(const ApiResponse& r) {
  std::string message;
  std::string code;
  if (r.body.is_object()) {
    const auto& o = r.body.get_object();
    if (const auto* e = o.if_contains("error"); e && e->is_object()) {
      if (const auto* m = e->get_object().if_contains("message"); m && m->is_string()) {
        message = std::string(m->get_string());
      }
      if (const auto* c = e->get_object().if_contains("code"); c && c->is_string()) {
        code = std::string(c->get_string());
      }
    }
  }
  if (message.empty()) {
    message = r.raw.empty() ? fmt::format("HTTP {}", r.status) : r.raw.substr(0, 500);
  }
  StatusCode sc = StatusCode::kInternal;
  switch (r.status) {
    case 400:
    case 413:
      sc = StatusCode::kInvalidArgument;
      break;
    case 401:
      sc = StatusCode::kUnauthenticated;
      message += " (log in again with 'berth login URL --token TOKEN')";
      break;
    case 403:
      sc = StatusCode::kPermissionDenied;
      break;
    case 404:
      sc = StatusCode::kNotFound;
      break;
    case 409:
      sc = code == "already_exists" ? StatusCode::kAlreadyExists
                                    : StatusCode::kFailedPrecondition;
      break;
    case 503:
      sc = StatusCode::kUnavailable;
      break;
    default:
      break;
  }
  return {sc, message};
}

namespace {
// One connection to the daemon for one request.
struct Connection {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  ParsedUrl url;
};

Status Connect(const std::string& base_url, Connection& c) {
  auto url = ParseUrl(base_url);
  if (!url.ok()) {
    return url.status();
  }
  c.url = *url;
  asio::ip::tcp::resolver resolver(c.ioc);
  boost::system::error_code ec;
  auto results = resolver.resolve(c.url.host, c.url.port, ec);
  if (ec) {
    return Status::Unavailable(fmt::format("cannot resolve {}: {}", c.url.host, ec.message()));
  }
  c.stream.connect(results, ec);
  if (ec) {
    return Status::Unavailable(fmt::format(
        "cannot reach berth at {}: {}; is 'berth serve' running there?", base_url, ec.message()));
  }
  return Status::Ok();
}

template <typename Body>
void SetCommonHeaders(http::request<Body>& req, const ParsedUrl& url, const std::string& token) {
  req.set(http::field::host, url.host + ":" + url.port);
  req.set(http::field::user_agent, "berth-cli");
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
}

Result<ApiResponse> ReadResponse(Connection& c, const std::string& base_url) {
  boost::system::error_code ec;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 << 20);
  c.stream.expires_after(std::chrono::minutes(30));
  http::read(c.stream, buffer, parser, ec);
  if (ec) {
    return Status::Unavailable(
        fmt::format("reading response from {}: {}", base_url, ec.message()));
  }
  ApiResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  out.raw = std::move(parser.get().body());
  if (!out.raw.empty()) {
    boost::system::error_code jec;
    out.body = boost::json::parse(out.raw, jec);
    if (jec) {
      out.body = nullptr;
    }
  }
  c.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  if (out.status >= 400) {
    return StatusFromResponse(out);
  }
  return out;
}

// Reads a response whose body comes in pieces (logs -f, a push's progress): an error status
// is returned with the server's message; otherwise `on_data` hears each piece until the body
// ends or it returns false.
Status ReadStreamed(Connection& c, const std::string& base_url,
                    const std::function<bool(std::string_view)>& on_data) {
  boost::system::error_code ec;
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  c.stream.expires_never();
  http::read_header(c.stream, buffer, parser, ec);
  if (ec) {
    return Status::Unavailable(fmt::format("reading from {}: {}", base_url, ec.message()));
  }
  // An error's body is collected (whatever arrives of it) and becomes the Status.
  bool failed = parser.get().result_int() >= 400;
  std::string raw;
  char buf[8192];
  while (!parser.is_done()) {
    parser.get().body().data = buf;
    parser.get().body().size = sizeof(buf);
    // read_some: what has arrived, at once (http::read would wait until buf is full, and a
    // quiet service's log line would sit here until 8 KB of others came).
    http::read_some(c.stream, buffer, parser, ec);
    if (ec && ec != http::error::need_buffer) {
      if (failed || ec == http::error::end_of_stream || ec == asio::error::eof) {
        break;
      }
      return Status::Unavailable(fmt::format("reading from {}: {}", base_url, ec.message()));
    }
    std::string_view got(buf, sizeof(buf) - parser.get().body().size);
    if (failed) {
      raw.append(got);
    } else if (!got.empty() && !on_data(got)) {
      break;
    }
  }
  if (failed) {
    ApiResponse r;
    r.status = static_cast<int>(parser.get().result_int());
    r.raw = raw;
    boost::system::error_code jec;
    r.body = boost::json::parse(raw, jec);
    return StatusFromResponse(r);
  }
  return Status::Ok();
}
}  // namespace

Result<ApiResponse> ApiClient::Upload(
    std::string_view path, const std::string& file_path,
    const std::function<void(uint64_t sent, uint64_t total)>& progress,
    const std::function<bool(std::string_view)>& on_data) const {
  try {
    Connection c;
    if (auto s = Connect(base_url_, c); !s.ok()) {
      return s;
    }
    http::request<http::file_body> req{http::verb::put, c.url.prefix + std::string(path), 11};
    SetCommonHeaders(req, c.url, token_);
    req.set(http::field::content_type, "application/gzip");
    boost::system::error_code ec;
    req.body().open(file_path.c_str(), beast::file_mode::scan, ec);
    if (ec) {
      return Status::NotFound(fmt::format("opening {}: {}", file_path, ec.message()));
    }
    req.prepare_payload();
    uint64_t total = req.body().size();
    http::request_serializer<http::file_body> sr{req};
    uint64_t sent = 0;
    while (!sr.is_done()) {
      c.stream.expires_after(std::chrono::minutes(5));
      size_t n = http::write_some(c.stream, sr, ec);
      if (ec) {
        return Status::Unavailable(fmt::format("uploading to {}: {}", base_url_, ec.message()));
      }
      sent += n;
      if (progress) {
        progress(std::min(sent, total), total);
      }
    }
    if (on_data) {
      if (auto s = ReadStreamed(c, base_url_, on_data); !s.ok()) {
        return s;
      }
      return ApiResponse{};
    }
    return ReadResponse(c, base_url_);
  } catch (const std::exception& e) {
    return Status::Unavailable(fmt::format("talking to {}: {}", base_url_, e.what()));
  }
}

Status ApiClient::Stream(std::string_view path,
                         const std::function<bool(std::string_view)>& on_data) const {
  try {
    Connection c;
    if (auto s = Connect(base_url_, c); !s.ok()) {
      return s;
    }
    http::request<http::empty_body> req{http::verb::get, c.url.prefix + std::string(path), 11};
    SetCommonHeaders(req, c.url, token_);
    boost::system::error_code ec;
    http::write(c.stream, req, ec);
    if (ec) {
      return Status::Unavailable(fmt::format("sending request to {}: {}", base_url_, ec.message()));
    }
    return ReadStreamed(c, base_url_, on_data);
  } catch (const std::exception& e) {
    return Status::Unavailable(fmt::format("talking to {}: {}", base_url_, e.what()));
  }
}

Result<ApiResponse> ApiClient::Call(std::string_view method, std::string_view path,
                                    const boost::json::value* body) const {
  try {
    Connection c;
    if (auto s = Connect(base_url_, c); !s.ok()) {
      return s;
    }
    http::request<http::string_body> req{http::string_to_verb(method),
                                         c.url.prefix + std::string(path), 11};
    SetCommonHeaders(req, c.url, token_);
    if (body != nullptr) {
      req.set(http::field::content_type, "application/json");
      req.body() = boost::json::serialize(*body);
    }
    req.prepare_payload();
    boost::system::error_code ec;
    c.stream.expires_after(std::chrono::seconds(60));
    http::write(c.stream, req, ec);
    if (ec) {
      return Status::Unavailable(fmt::format("sending request to {}: {}", base_url_, ec.message()));
    }
    return ReadResponse(c, base_url_);
  } catch (const std::exception& e) {
    return Status::Unavailable(fmt::format("talking to {}: {}", base_url_, e.what()));
  }
}

}  // namespace berth
