// IgnoreRules: the gitignore-like patterns of a bundle's `.berthignore`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace berth {

// Parsed rules, matched as gitignore does:
//   - blank lines and lines starting with '#' are ignored; "\#" and "\!" start a literal;
//     trailing spaces are dropped unless escaped with '\';
//   - '*', '?' and "[...]" are fnmatch globs that never match '/';
//   - a pattern with a '/' at its start or middle is anchored to the bundle root; otherwise it
//     matches a name at any depth;
//   - a trailing '/' matches directories only;
//   - "**/" matches any number of leading directories, "/**/" zero or more in the middle, and a
//     trailing "/**" everything inside;
//   - "!pattern" re-includes what an earlier rule excluded; the last matching rule wins.
// As in git, nothing below an ignored directory can be re-included.
// Immutable after Parse; safe to share between threads.
class IgnoreRules {
 public:
  // Never fails: any line is a pattern, one that matches nothing at worst.
  static IgnoreRules Parse(std::string_view text);

  // Whether `rel_path` ('/'-separated, relative to the bundle root, with no leading "./" or
  // trailing '/') is ignored, either itself or because a directory above it is.
  bool Matches(std::string_view rel_path, bool is_dir) const;

  bool empty() const { return rules_.empty(); }

 private:
  struct Rule {
    std::vector<std::string> parts;  // the pattern split at '/'
    bool negated = false;
    bool dir_only = false;
    bool anchored = false;
  };

  // The verdict of the last rule matching `parts[0..count)` itself, ignoring its parents.
  bool MatchesItself(const std::vector<std::string>& parts, size_t count, bool is_dir) const;

  std::vector<Rule> rules_;
};

}  // namespace berth
