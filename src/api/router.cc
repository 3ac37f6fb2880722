#include "api/router.h"

namespace berth {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') {
    path.remove_prefix(1);
  }
  if (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  if (path.empty()) {
    return out;
  }
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  return out;
}

void Router::Add(std::string_view method, std::string_view pattern, RouteHandler handler) {
  Route r{std::string(method), std::string(pattern), {}, std::move(handler)};
  for (std::string_view seg : SplitPath(pattern)) {
    r.segments.emplace_back(seg.starts_with('{') ? std::string_view("{}") : seg);
  }
  routes_.push_back(std::move(r));
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match m;
  std::vector<std::string_view> segs = SplitPath(path);
  for (const Route& r : routes_) {
    if (r.segments.size() != segs.size()) {
      continue;
    }
    PathParams params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      if (r.segments[i] == "{}") {
        if (segs[i].empty()) {
          ok = false;
        } else {
          params.emplace_back(segs[i]);
        }
      } else {
        ok = r.segments[i] == segs[i];
      }
    }
    if (!ok) {
      continue;
    }
    if (r.method == method || (method == "HEAD" && r.method == "GET")) {
      m.handler = &r.handler;
      m.params = std::move(params);
      return m;
    }
    m.allowed.push_back(r.method);
  }
  return m;
}

std::vector<Router::RouteInfo> Router::Routes() const {
  std::vector<RouteInfo> out;
  out.reserve(routes_.size());
  for (const Route& r : routes_) {
    out.push_back({r.method, r.pattern});
  }
  return out;
}

}  // namespace berth
