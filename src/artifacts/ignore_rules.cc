#include "artifacts/ignore_rules.h"

#include <fnmatch.h>

namespace berth {
namespace {

std::vector<std::string> Split(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = s.find('/', start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) {
      return out;
    }
    start = end + 1;
  }
}

// Drops trailing whitespace that is not escaped with a backslash.
std::string_view TrimTrailingSpaces(std::string_view line) {
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
    if (line.size() >= 2 && line[line.size() - 2] == '\\' && line.back() != '\r') {
      break;
    }
    line.remove_suffix(1);
  }
  return line;
}

bool GlobMatches(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

// Matches pattern components [pi..) against path components [xi..count). "**" takes any number
// of components, at least one when it ends the pattern ("dir/**" is the contents, not dir).
bool MatchParts(const std::vector<std::string>& pat, size_t pi,
                const std::vector<std::string>& path, size_t xi, size_t count) {
  if (pi == pat.size()) {
    return xi == count;
  }
  if (pat[pi] == "**") {
    size_t min = pi + 1 == pat.size() ? 1 : 0;
    for (size_t skip = min; xi + skip <= count; ++skip) {
      if (MatchParts(pat, pi + 1, path, xi + skip, count)) {
        return true;
      }
    }
    return false;
  }
  return xi < count && GlobMatches(pat[pi], path[xi]) &&
         MatchParts(pat, pi + 1, path, xi + 1, count);
}

}  // namespace

IgnoreRules IgnoreRules::Parse(std::string_view text) {
  IgnoreRules rules;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = TrimTrailingSpaces(text.substr(start, end - start));
    start = end + 1;
    // A leading "\#" or "\!" is left for fnmatch, which reads the escaped character literally.
    if (line.empty() || line.front() == '#') {
      continue;
    }
    Rule rule;
    if (line.front() == '!') {
      rule.negated = true;
      line.remove_prefix(1);
    }
    if (!line.empty() && line.back() == '/') {
      rule.dir_only = true;
      line.remove_suffix(1);
    }
    rule.anchored = line.find('/') != std::string_view::npos;
    if (rule.anchored && line.front() == '/') {
      line.remove_prefix(1);
    }
    if (line.empty()) {
      continue;  // "/", "!" and the like
    }
    rule.parts = Split(line);
    rules.rules_.push_back(std::move(rule));
  }
  return rules;
}

bool IgnoreRules::MatchesItself(const std::vector<std::string>& parts, size_t count,
                                bool is_dir) const {
  bool ignored = false;
  for (const Rule& rule : rules_) {
    if (rule.dir_only && !is_dir) {
      continue;
    }
    bool hit = rule.anchored ? MatchParts(rule.parts, 0, parts, 0, count)
                             : GlobMatches(rule.parts[0], parts[count - 1]);
    if (hit) {
      ignored = !rule.negated;
    }
  }
  return ignored;
}

bool IgnoreRules::Matches(std::string_view rel_path, bool is_dir) const {
  if (rules_.empty() || rel_path.empty()) {
    return false;
  }
  std::vector<std::string> parts = Split(rel_path);
  for (size_t depth = 1; depth < parts.size(); ++depth) {
    if (MatchesItself(parts, depth, /*is_dir=*/true)) {
      return true;
    }
  }
  return MatchesItself(parts, parts.size(), is_dir);
}

}  // namespace berth
