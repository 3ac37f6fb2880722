#include "common/suggest.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

const std::vector<std::string> kCommands = {"deploy", "delete", "logs", "login", "ls", "push"};

TEST(SuggestTest, TyposFindWhatWasMeant) {
  EXPECT_EQ(Nearest("depoly", kCommands), "deploy");  // two letters swapped: one edit
  EXPECT_EQ(Nearest("deplyo", kCommands), "deploy");
  EXPECT_EQ(Nearest("lgos", kCommands), "logs");
  EXPECT_EQ(Nearest("DEPLOY", kCommands), "deploy");
  EXPECT_EQ(Nearest("memory-limt", {"memory-limit", "memory-reservation", "replicas"}),
            "memory-limit");
  EXPECT_EQ(Nearest("container_port", {"container-port", "container-tag"}), "container-port");
}

TEST(SuggestTest, NothingIsSuggestedForAWordFarFromEveryName) {
  EXPECT_EQ(Nearest("frobnicate", kCommands), "");
  EXPECT_EQ(Nearest("colour", {"command", "replicas"}), "");
  EXPECT_EQ(Nearest("", kCommands), "");
  EXPECT_EQ(Nearest("x", {"ls"}), "") << "no letter right is no suggestion";
  EXPECT_EQ(DidYouMean("frobnicate", kCommands), "");
  EXPECT_EQ(DidYouMean("pish", kCommands), "; did you mean 'push'?");
}

}  // namespace
}  // namespace berth
