#include "model/names.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(NamesTest, AcceptsCloudFlowStyleNames) {
  EXPECT_TRUE(ValidateProjectName("experiment_2").ok());
  EXPECT_TRUE(ValidateServiceName("experiment_2", "hpc-preprocessor").ok());
  EXPECT_TRUE(ValidateServiceName("default", "a").ok());
  EXPECT_TRUE(ValidateServiceName("default", "a1-b2").ok());
}

TEST(NamesTest, RejectsServiceNamesBreakingEachRuleWithThatRule) {
  struct Case {
    std::string name;
    std::string rule;
  };
  for (const Case& c : std::vector<Case>{
           {"", "empty"},
           {"Bad", "begin with a lowercase letter"},
           {"1svc", "begin with a lowercase letter"},
           {"-svc", "begin with a lowercase letter"},
           {"svc-", "must end with a lowercase letter or digit"},
           {"a_b", "only lowercase letters"},
           {"caf\xc3\xa9", "only lowercase letters"},
           {"with space", "only lowercase letters"},
           {std::string(40, 'a'), "too long"},
       }) {
    Status s = ValidateServiceName("default", c.name);
    ASSERT_FALSE(s.ok()) << c.name;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.rule), std::string::npos) << s.message();
  }
}

TEST(NamesTest, LengthLimitCountsProjectAndDash) {
  // "default-" is 8 characters: 24 more reach exactly 32.
  EXPECT_TRUE(ValidateServiceName("default", std::string(24, 'a')).ok());
  Status s = ValidateServiceName("default", std::string(25, 'a'));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("33 characters"), std::string::npos) << s.message();
}

TEST(NamesTest, NonPrintableBytesAreEscapedInMessages) {
  Status s = ValidateServiceName("default", "a\x01");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("\\x01"), std::string::npos) << s.message();
}

TEST(NamesTest, RejectsBadProjectNames) {
  EXPECT_FALSE(ValidateProjectName("").ok());
  EXPECT_FALSE(ValidateProjectName("Experiment").ok());
  EXPECT_FALSE(ValidateProjectName("exp-1").ok());
  EXPECT_FALSE(ValidateProjectName("2exp").ok());
  EXPECT_FALSE(ValidateProjectName(std::string(25, 'a')).ok());
}

TEST(NamesTest, DeploymentPathJoinsProjectAndName) {
  EXPECT_EQ(DeploymentPath("experiment_2", "hpc-preprocessor"), "/experiment_2-hpc-preprocessor");
}

}  // namespace
}  // namespace berth
