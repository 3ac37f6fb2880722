// Output helpers for the CLI: aligned tables for people, indented JSON for scripts.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/yaml_json.h"

namespace berth {

// Prints `rows` under `header` with columns padded to their widest cell.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// Indented JSON, two spaces per level, keys in their stored order.
std::string PrettyJson(const boost::json::value& v);

// What a long wait is doing, on `out` (stderr). On a terminal: one line redrawn at each Show
// with a spinner and the seconds waited, erased when the wait ends (Clear, or the destructor
// on any way out). Elsewhere (a log, a test): with `lines_when_piped`, the text once per
// change, else nothing.
class Spinner {
 public:
  Spinner(std::ostream& out, bool tty, bool lines_when_piped);
  ~Spinner() { Clear(); }
  Spinner(const Spinner&) = delete;
  Spinner& operator=(const Spinner&) = delete;
  void Show(const std::string& text);
  void Clear();

 private:
  std::ostream& out_;
  bool tty_;
  bool lines_;
  bool drawn_ = false;
  int frame_ = 0;
  std::string shown_;
  std::chrono::steady_clock::time_point start_;
};


}  // namespace berth
