#include "runtime/health_check.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

ProbeResult Exec(std::vector<std::string> command, int timeout_s = 5) {
  HealthCheck check;
  check.type = "exec";
  check.command = std::move(command);
  check.timeout_s = timeout_s;
  auto codes = StatusCodeSet::Parse("200");
  return ProbeInstance("127.0.0.1", 5432, check, *codes, "/");
}

TEST(HealthCheckTest, ExecIsHealthyWhenTheCommandExitsZero) {
  EXPECT_TRUE(Exec({"true"}).healthy);
  ProbeResult r = Exec({"false"});
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.detail, "false exited 1");
}

TEST(HealthCheckTest, ExecSeesTheInstanceAddress) {
  EXPECT_TRUE(Exec({"sh", "-c", "test \"$HOST:$PORT\" = 127.0.0.1:5432"}).healthy);
  EXPECT_TRUE(Exec({"test", "$(HOST)", "=", "127.0.0.1"}).healthy);
}

TEST(HealthCheckTest, ExecThatHangsIsUnhealthyAfterTheTimeout) {
  ProbeResult r = Exec({"sleep", "30"}, 1);
  EXPECT_FALSE(r.healthy);
  EXPECT_NE(r.detail.find("within 1 s"), std::string::npos) << r.detail;
  EXPECT_FALSE(Exec({"/no/such/program"}).healthy);
}

}  // namespace
}  // namespace berth
