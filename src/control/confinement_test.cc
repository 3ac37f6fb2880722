#include "control/confinement.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace berth {
namespace {

namespace fs = std::filesystem;

bool HasBind(const Sandbox& sb, const BindMount& b) {
  return std::find(sb.binds.begin(), sb.binds.end(), b) != sb.binds.end();
}

// berth's own files under /tmp (a build tree there) or the data dir are shown read-only; those
// the sandbox does not hide need no mount.
TEST(ConfinementTest, SharedFilesShowThroughWhatTheSandboxHides) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "gives the project's directories to its user: needs root";
  }
  char tmpl[] = "/tmp/berth-confinement-test-XXXXXX";
  std::string root = ::mkdtemp(tmpl);
  fs::create_directories(root + "/sdk/python");
  ConfinementOptions o;
  o.enabled = true;
  o.data_dir = root + "/data";
  o.shared = {root + "/sdk/python", root + "/missing", "/usr/lib"};
  auto sb = ProjectSandbox(o, "p", 7);
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->uid, 2000000007u);
  EXPECT_TRUE(HasBind(*sb, {root + "/sdk/python", root + "/sdk/python", false}));
  EXPECT_TRUE(HasBind(*sb, {o.data_dir + "/projects/p/data", o.data_dir + "/projects/p/data",
                            true}));
  for (const auto& b : sb->binds) {
    EXPECT_NE(b.source, root + "/missing");
    EXPECT_NE(b.source, "/usr/lib");
  }
  o.tmp_bytes = 0;  // the host's /tmp: nothing there is hidden
  auto host_tmp = ProjectSandbox(o, "p", 7);
  ASSERT_TRUE(host_tmp.ok());
  EXPECT_FALSE(HasBind(*host_tmp, {root + "/sdk/python", root + "/sdk/python", false}));
  fs::remove_all(root);
}

}  // namespace
}  // namespace berth
