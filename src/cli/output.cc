#include "cli/output.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>

namespace berth {

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) {
    width[i] = header[i].size();
  }
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], r[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size() && i < width.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) {
        out += std::string(width[i] - cells[i].size() + 2, ' ');
      }
    }
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows) {
    out += line(r);
  }
  return out;
}

namespace {
void Pretty(const boost::json::value& v, int indent, std::string& out) {
  std::string pad(static_cast<size_t>(indent) * 2, ' ');
  if (v.is_object()) {
    const auto& o = v.get_object();
    if (o.empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    size_t i = 0;
    for (const auto& kv : o) {
      out += pad + "  " + boost::json::serialize(boost::json::value(kv.key())) + ": ";
      Pretty(kv.value(), indent + 1, out);
      out += ++i < o.size() ? ",\n" : "\n";
    }
    out += pad + "}";
  } else if (v.is_array()) {
    const auto& a = v.get_array();
    if (a.empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    for (size_t i = 0; i < a.size(); ++i) {
      out += pad + "  ";
      Pretty(a[i], indent + 1, out);
      out += i + 1 < a.size() ? ",\n" : "\n";
    }
    out += pad + "]";
  } else {
    out += boost::json::serialize(v);
  }
}

}  // namespace

std::string PrettyJson(const boost::json::value& v) {
  std::string out;
  Pretty(v, 0, out);
  return out + "\n";
}

Spinner::Spinner(std::ostream& out, bool tty, bool lines_when_piped)
    : out_(out), tty_(tty), lines_(lines_when_piped), start_(std::chrono::steady_clock::now()) {}

void Spinner::Show(const std::string& text) {
  if (!tty_) {
    if (lines_ && text != shown_) {
      out_ << text << "\n" << std::flush;
    }
    shown_ = text;
    return;
  }
  static const char* const kFrames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
  auto waited = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now() - start_)
                    .count();
  out_ << "\r\033[K" << kFrames[frame_++ % 10] << " " << text << " (" << waited << " s)"
       << std::flush;
  drawn_ = true;
  shown_ = text;
}

void Spinner::Clear() {
  if (drawn_) {
    out_ << "\r\033[K" << std::flush;
    drawn_ = false;
  }
}

}  // namespace berth
