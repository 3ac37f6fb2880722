// ApiClient: the CLI's blocking HTTP/1.1 client of the daemon's REST API.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace berth {

struct ApiResponse {
  int status = 0;
  boost::json::value body;  // null when the body is empty or not JSON
  std::string raw;
};

class ApiClient {
 public:
  // `base_url` like "http://127.0.0.1:8080"; `token` may be empty.
  ApiClient(std::string base_url, std::string token)
      : base_url_(std::move(base_url)), token_(std::move(token)) {}

  // Sends one request. Transport failures are Unavailable with a hint; API errors (status >=
  // 400) are returned as a Status carrying the server's message.
  Result<ApiResponse> Call(std::string_view method, std::string_view path,
                           const boost::json::value* body = nullptr) const;

  // Sends the file at `file_path` as the body of a PUT to `path`, calling `progress` with the
  // bytes sent so far. With `on_data`, the answer is read as Stream reads it (and the result
  // has no body).
  Result<ApiResponse> Upload(std::string_view path, const std::string& file_path,
                             const std::function<void(uint64_t sent, uint64_t total)>& progress,
                             const std::function<bool(std::string_view)>& on_data = {}) const;

  // Opens a streaming GET (e.g. logs?follow=1) and calls `on_data` with each piece of the body
  // as it arrives, until the server ends it or `on_data` returns false.
  Status Stream(std::string_view path, const std::function<bool(std::string_view)>& on_data) const;

  const std::string& base_url() const { return base_url_; }

 private:
  std::string base_url_;
  std::string token_;
};

// Maps an API error response to a Status with the server's message.
Status StatusFromResponse(const ApiResponse& r);

}  // namespace berth
