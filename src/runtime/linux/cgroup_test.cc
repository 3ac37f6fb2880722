#include "runtime/linux/cgroup.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(CgroupParseTest, ProcSelfCgroupOnAHybridMachine) {
  auto m = ParseProcCgroup(
      "9:name=systemd:/\n4:memory:/process_api/8d72\n1:cpu,cpuacct:/x\n0::/\n");
  EXPECT_EQ(m["memory"], "/process_api/8d72");
  EXPECT_EQ(m["cpu"], "/x");
  EXPECT_EQ(m["cpuacct"], "/x");
  EXPECT_EQ(m[""], "/");
}

TEST(CgroupParseTest, MountInfoFindsV1MemoryAndV2) {
  auto m = ParseCgroupMounts(
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "35 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "36 31 0:32 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "40 31 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(m["memory"], "/sys/fs/cgroup/memory");
  EXPECT_EQ(m["cgroup2"], "/sys/fs/cgroup/unified");
  EXPECT_EQ(m.count("cpu"), 0u);
}

TEST(CgroupParseTest, PureV2MountInfo) {
  auto m = ParseCgroupMounts(
      "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
  EXPECT_EQ(m["cgroup2"], "/sys/fs/cgroup");
  EXPECT_EQ(m.count("memory"), 0u);
}

TEST(CgroupParseTest, OomKillCounterFromV1AndV2) {
  EXPECT_EQ(ParseOomKillCount("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3);
  EXPECT_EQ(ParseOomKillCount("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"), 2);
  EXPECT_EQ(ParseOomKillCount("oom_kill_disable 0\n"), 0);
}

}  // namespace
}  // namespace berth
