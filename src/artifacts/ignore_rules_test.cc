#include "artifacts/ignore_rules.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

struct Case {
  const char* rules;
  const char* path;
  bool is_dir;
  bool ignored;
};

class IgnoreRulesTest : public ::testing::TestWithParam<Case> {};

TEST_P(IgnoreRulesTest, Matches) {
  const Case& c = GetParam();
  EXPECT_EQ(IgnoreRules::Parse(c.rules).Matches(c.path, c.is_dir), c.ignored)
      << "rules:\n"
      << c.rules << "\npath: " << c.path << (c.is_dir ? "/" : "");
}

INSTANTIATE_TEST_SUITE_P(
    Table, IgnoreRulesTest,
    ::testing::Values(
        // No rules, comments and blank lines.
        Case{"", "a", false, false}, Case{"# a\n\n   \n", "a", false, false},
        Case{"#a", "#a", false, false}, Case{"\\#a", "#a", false, true},
        // A bare name matches at any depth, files and directories alike.
        Case{"build", "build", true, true}, Case{"build", "src/build", true, true},
        Case{"build", "src/build", false, true}, Case{"build", "builds", false, false},
        // Globs never cross '/'.
        Case{"*.pyc", "a/b/c.pyc", false, true}, Case{"*.pyc", "c.py", false, false},
        Case{"file?.txt", "file1.txt", false, true}, Case{"file?.txt", "file10.txt", false, false},
        Case{"[ab].log", "b.log", false, true}, Case{"[ab].log", "c.log", false, false},
        Case{"[!ab].log", "c.log", false, true}, Case{"*", ".hidden", false, true},
        // Anchored patterns.
        Case{"/build", "build", true, true}, Case{"/build", "src/build", true, false},
        Case{"docs/*.md", "docs/a.md", false, true}, Case{"docs/*.md", "x/docs/a.md", false, false},
        Case{"docs/*.md", "docs/sub/a.md", false, false}, Case{"a/b", "a/b", false, true},
        // Directory-only patterns.
        Case{"logs/", "logs", true, true}, Case{"logs/", "logs", false, false},
        Case{"logs/", "x/logs", true, true}, Case{"/logs/", "x/logs", true, false},
        // Everything below an ignored directory is ignored.
        Case{"logs/", "logs/today.txt", false, true},
        Case{"node_modules", "web/node_modules/x/y.js", false, true},
        // '**'.
        Case{"**/cache", "cache", true, true}, Case{"**/cache", "a/b/cache", true, true},
        Case{"a/**/z", "a/z", false, true}, Case{"a/**/z", "a/b/c/z", false, true},
        Case{"a/**/z", "b/a/z", false, false}, Case{"out/**", "out", true, false},
        Case{"out/**", "out/x", false, true}, Case{"out/**", "out/x/y", false, true},
        Case{"**/*.tmp", "deep/er/x.tmp", false, true},
        // Negation: the last matching rule wins.
        Case{"*.log\n!keep.log", "keep.log", false, false},
        Case{"*.log\n!keep.log", "drop.log", false, true},
        Case{"!keep.log\n*.log", "keep.log", false, true}, Case{"\\!x", "!x", false, true},
        // ...but cannot re-include below an ignored directory.
        Case{"logs/\n!logs/keep.txt", "logs/keep.txt", false, true},
        Case{"logs/*\n!logs/keep.txt", "logs/keep.txt", false, false},
        Case{"logs/*\n!logs/keep.txt", "logs/drop.txt", false, true},
        // Whitespace and line endings.
        Case{"a.txt   ", "a.txt", false, true}, Case{"a.txt\r\nb.txt\r\n", "b.txt", false, true},
        Case{"a\\ ", "a ", false, true}));

TEST(IgnoreRulesParseTest, EmptyAfterOnlyComments) {
  EXPECT_TRUE(IgnoreRules::Parse("# nothing\n\n/\n!\n").empty());
  EXPECT_FALSE(IgnoreRules::Parse("x").empty());
}

}  // namespace
}  // namespace berth
